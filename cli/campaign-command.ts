/**
 * `infermesh campaign create|list|status|stop|export`: benchmark campaigns on a running grid
 * server (`--url`, default the local `npm start`), through its HTTP API
 * (signaling-server/campaigns/campaign-api.ts). `create` checks the spec file (JSON or YAML)
 * here first, so a bad field is named before anything is sent, and prints the campaign id, the
 * join link for visitors and the dashboard link. `report` writes the dashboard as one static
 * HTML file (web/campaign/static-report.ts).
 */
import { readFile, writeFile } from 'node:fs/promises';
import { InfermeshError } from '../shared/errors.ts';
import { parseCampaignSpec } from '../shared/campaign/spec.ts';
import { campaignReportHtml } from '../web/campaign/static-report.ts';
import type { ReportStatus } from '../web/campaign/static-report.ts';

/** The grid server answered a campaign call with an error (its message is the server's). */
export class CampaignApiError extends InfermeshError {
  override name = 'CampaignApiError';
}

export const DEFAULT_GRID_URL = 'http://127.0.0.1:8470';

export interface CampaignCommandOptions {
  url?: string;
  json?: boolean;
}

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

async function call(opts: CampaignCommandOptions, path: string, init?: RequestInit): Promise<Response> {
  const url = new URL(path, opts.url ?? DEFAULT_GRID_URL);
  const res = await fetch(url, init).catch((err: Error) => {
    throw new CampaignApiError(`no grid server answers at ${url.origin} (${(err.cause as Error)?.message ?? err.message}); start one with npm start, or pass --url`);
  });
  if (!res.ok) {
    const body = (await res.json().catch(() => null)) as { error?: { message?: string } } | null;
    throw new CampaignApiError(body?.error?.message ?? `${url.pathname} answered ${res.status}`);
  }
  return res;
}

const json = async <T>(res: Response) => (await res.json()) as T;
const target = (s: Summary) => [s.target.devices !== undefined && `${s.devices} of ${s.target.devices} devices`, s.target.runs !== undefined && `${s.runs} of ${s.target.runs} runs`].filter(Boolean).join(', ') || `${s.runs} runs`;
const line = (s: Summary) => `${s.id}  ${JSON.stringify(s.name)}  ${s.state}; ${target(s)}; ${s.runs} runs stored, ${s.refused} refused; ends ${s.endsAt}`;
const print = (opts: CampaignCommandOptions, value: unknown, text: string) => process.stdout.write(opts.json ? `${JSON.stringify(value, null, 2)}\n` : `${text}\n`);

export async function campaignCreate(specFile: string, opts: CampaignCommandOptions): Promise<void> {
  const text = await readFile(specFile, 'utf8').catch((err: Error) => {
    throw new CampaignApiError(`cannot read the spec file ${specFile}: ${err.message}`);
  });
  const spec = parseCampaignSpec(text, specFile);
  const created = await json<{ campaign: Summary; joinUrl: string; dashboardUrl: string }>(await call(opts, '/api/campaigns', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(spec) }));
  print(opts, created, `campaign ${created.campaign.id} created\n  join link (visitors open it): ${created.joinUrl}\n  dashboard: ${created.dashboardUrl}`);
}

export async function campaignList(opts: CampaignCommandOptions): Promise<void> {
  const { campaigns } = await json<{ campaigns: Summary[] }>(await call(opts, '/api/campaigns'));
  print(opts, campaigns, campaigns.length > 0 ? campaigns.map(line).join('\n') : 'no campaigns on this grid');
}

export async function campaignStatus(id: string, opts: CampaignCommandOptions): Promise<void> {
  const status = await json<{ campaign: Summary; refusals: { peerId: string; reason: string; message: string }[] }>(await call(opts, `/api/campaigns/${encodeURIComponent(id)}`));
  const refusals = status.refusals.slice(-5).map((r) => `  refused ${r.peerId}: ${r.reason}: ${r.message}`);
  print(opts, status, [line(status.campaign), `  dashboard: ${status.campaign.dashboardUrl}`, ...refusals].join('\n'));
}

export async function campaignStop(id: string, opts: CampaignCommandOptions): Promise<void> {
  const { campaign } = await json<{ campaign: Summary }>(await call(opts, `/api/campaigns/${encodeURIComponent(id)}/stop`, { method: 'POST' }));
  print(opts, campaign, line(campaign));
}

export async function campaignExport(id: string, opts: CampaignCommandOptions & { format: string; out?: string }): Promise<void> {
  const res = await call(opts, `/api/campaigns/${encodeURIComponent(id)}/export?format=${encodeURIComponent(opts.format)}`);
  const text = await res.text();
  if (!opts.out) return void process.stdout.write(text);
  await writeFile(opts.out, text);
  process.stderr.write(`wrote ${opts.out} (${opts.format})\n`);
}

export async function campaignReport(id: string, opts: CampaignCommandOptions & { out: string }): Promise<void> {
  const status = await json<ReportStatus>(await call(opts, `/api/campaigns/${encodeURIComponent(id)}`));
  await writeFile(opts.out, campaignReportHtml(status));
  process.stderr.write(`wrote ${opts.out}: ${status.campaign.runs} runs from ${status.campaign.devices} devices, ${status.campaign.refused} refused\n`);
}
