/**
 * `infermesh campaign create|list|status|stop|export|report`: benchmark campaigns on a running grid
 * server (`--url`, default the local `npm start`), through its HTTP API
 * (signaling-server/campaigns/campaign-api.ts). `create` checks the spec file (JSON or YAML)
 * here first, so a bad field is named before anything is sent (or started), and prints the
 * campaign id, the join link for visitors and the dashboard link. `create --serve` runs the
 * grid server in this process instead, as `infermesh serve` does (cli/serve-command.ts; its
 * --port, --data and --model are passed on, INFERMESH_* variables apply), creates the campaign
 * on it and serves until Ctrl-C; the campaign is kept in the data folder's campaigns.sqlite, so
 * a later `npm start` on that folder still has it. `report` writes the dashboard as one static
 * HTML file (web/campaign/static-report.ts).
 */
import { readFile, writeFile } from 'node:fs/promises';
import { InfermeshError, UsageError } from '../shared/errors.ts';
import { parseCampaignSpec } from '../shared/campaign/spec.ts';
import { failureRows, refusedTab, tabRows, tabStateText } from '../shared/campaign/summary.ts';
import type { CampaignStatus } from '../shared/campaign/summary.ts';
import { campaignReportHtml } from '../web/campaign/static-report.ts';
import { serveCommand } from './serve-command.ts';

/** The grid server answered a campaign call with an error (its message is the server's). */
export class CampaignApiError extends InfermeshError {
  override name = 'CampaignApiError';
}

export const DEFAULT_GRID_URL = 'http://127.0.0.1:8470';

export interface CampaignCommandOptions {
  url?: string;
  json?: boolean;
  /** an API key of the grid (`infermesh keys create`): creating and stopping campaigns take one where the grid requires keys */
  key?: string;
}

export interface CampaignCreateOptions extends CampaignCommandOptions {
  /** run the grid server in this process (as `infermesh serve`), create the campaign on it, serve until Ctrl-C */
  serve?: boolean;
  /** serve's --port, --data and --model, passed on with --serve */
  port?: string;
  data?: string;
  model?: string;
}

/** The flags of `create` that go on to the embedded server, in serve's spelling. */
const SERVE_FLAGS = [['port', '--port'], ['data', '--data'], ['model', '--model']] as const;

interface Summary {
  id: string;
  name: string;
  state: string;
  runs: number;
  devices: number;
  target: { devices?: number; runs?: number };
  runsPerDevice: number;
  refused: number;
  endsAt: string;
  joinUrl: string;
  dashboardUrl: string;
}

async function call(opts: CampaignCommandOptions, path: string, init: RequestInit = {}): Promise<Response> {
  const url = new URL(path, opts.url ?? DEFAULT_GRID_URL);
  const headers = { ...(init.headers as Record<string, string>), ...(opts.key && { authorization: `Bearer ${opts.key}` }) };
  const res = await fetch(url, { ...init, headers }).catch((err: Error) => {
    throw new CampaignApiError(`no grid server answers at ${url.origin} (${(err.cause as Error)?.message ?? err.message}); start one with npm start, pass --url, or add --serve to run one in this process`);
  });
  if (!res.ok) {
    const body = (await res.json().catch(() => null)) as { error?: { message?: string } } | null;
    const hint = res.status === 401 ? ' (pass it with --key or INFERMESH_API_KEY; `infermesh keys create --data <the server\'s data folder>` makes one)' : '';
    throw new CampaignApiError(`${body?.error?.message ?? `${url.pathname} answered ${res.status}`}${hint}`);
  }
  return res;
}

const json = async <T>(res: Response) => (await res.json()) as T;
const target = (s: Summary) => [s.target.devices !== undefined && `${s.devices} of ${s.target.devices} devices`, s.target.runs !== undefined && `${s.runs} of ${s.target.runs} runs`].filter(Boolean).join(', ') || `${s.runs} runs`;
const line = (s: Summary) => `${s.id}  ${JSON.stringify(s.name)}  ${s.state}; ${target(s)}; ${s.runs} runs stored, ${s.refused} refused; ends ${s.endsAt}`;
const print = (opts: CampaignCommandOptions, value: unknown, text: string) => process.stdout.write(opts.json ? `${JSON.stringify(value, null, 2)}\n` : `${text}\n`);

export async function campaignCreate(specFile: string, opts: CampaignCreateOptions): Promise<void> {
  if (opts.serve && opts.url !== undefined) throw new UsageError('--serve and --url do not go together: --serve runs the grid server in this process, --url names another one');
  const serveArgv = SERVE_FLAGS.flatMap(([key, flag]) => (opts[key] === undefined ? [] : [flag, opts[key]]));
  if (!opts.serve && serveArgv.length > 0) throw new UsageError('is for the server --serve starts: add --serve, or drop it', { source: serveArgv[0] });
  const text = await readFile(specFile, 'utf8').catch((err: Error) => {
    throw new CampaignApiError(`cannot read the spec file ${specFile}: ${err.message}`);
  });
  // Checked before anything is sent or started: a bad field is named in one line.
  const spec = parseCampaignSpec(text, specFile);
  const create = async (target: CampaignCommandOptions) => {
    const created = await json<{ campaign: Summary; joinUrl: string; dashboardUrl: string }>(await call(target, '/api/campaigns', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(spec) }));
    print(opts, created, `campaign ${created.campaign.id} created\n  join link (visitors open it): ${created.joinUrl}\n  dashboard: ${created.dashboardUrl}`);
  };
  if (!opts.serve) return create(opts);
  // The server's own loopback origin (plain http even when it speaks TLS); the links it answers
  // with are its public URL's.
  await serveCommand(serveArgv, {
    ready: async (server) => {
      await create({ url: server.http.localUrl, key: opts.key });
      process.stderr.write('infermesh: serving the campaign until Ctrl-C\n');
    },
  });
}

export async function campaignList(opts: CampaignCommandOptions): Promise<void> {
  const { campaigns } = await json<{ campaigns: Summary[] }>(await call(opts, '/api/campaigns'));
  print(opts, campaigns, campaigns.length > 0 ? campaigns.map(line).join('\n') : 'no campaigns on this grid');
}

export async function campaignStatus(id: string, opts: CampaignCommandOptions): Promise<void> {
  const status = await json<CampaignStatus & { campaign: Summary }>(await call(opts, `/api/campaigns/${encodeURIComponent(id)}`));
  const tabs = tabRows(status.runs, status.reports, status.serverTime);
  const stragglers = tabs.filter((t) => t.state === 'quiet' || t.state === 'left').map((t) => `  ${t.peerId} (${t.adapter}, ${t.provider}): ${tabStateText(t, status.serverTime)}`);
  const failures = failureRows(status.reports).slice(-5).map((f) => `  ${f.event} ${f.what} on ${f.peerId}: ${f.reason}`);
  const refusals = status.refusals.slice(-5).map((r) => `  refused ${refusedTab(r)}: ${r.reason}: ${r.message}`);
  const counts = `  tabs: ${tabs.length} (${tabs.filter((t) => t.state === 'finished').length} finished, ${tabs.filter((t) => t.state === 'running').length} running, ${stragglers.length} stragglers)`;
  print(opts, status, [line(status.campaign), `  dashboard: ${status.campaign.dashboardUrl}`, counts, ...stragglers, ...failures, ...refusals].join('\n'));
}

export async function campaignStop(id: string, opts: CampaignCommandOptions): Promise<void> {
  const { campaign } = await json<{ campaign: Summary }>(await call(opts, `/api/campaigns/${encodeURIComponent(id)}/stop`, { method: 'POST' }));
  print(opts, campaign, line(campaign));
}

export async function campaignExport(id: string, opts: CampaignCommandOptions & { format: string; out?: string }): Promise<void> {
  if (opts.format === 'parquet' && !opts.out && process.stdout.isTTY) throw new UsageError('Parquet is binary: name a file with --out, or redirect stdout', { source: '--format' });
  const res = await call(opts, `/api/campaigns/${encodeURIComponent(id)}/export?format=${encodeURIComponent(opts.format)}`);
  const bytes = new Uint8Array(await res.arrayBuffer());
  if (!opts.out) return void process.stdout.write(bytes);
  await writeFile(opts.out, bytes);
  process.stderr.write(`wrote ${opts.out} (${opts.format})\n`);
}

export async function campaignReport(id: string, opts: CampaignCommandOptions & { out: string }): Promise<void> {
  const status = await json<CampaignStatus>(await call(opts, `/api/campaigns/${encodeURIComponent(id)}`));
  await writeFile(opts.out, campaignReportHtml(status));
  process.stderr.write(`wrote ${opts.out}: ${status.campaign.runs} runs from ${status.campaign.devices} devices, ${status.campaign.refused} refused\n`);
}
