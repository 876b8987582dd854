/**
 * The campaigns' HTTP API, what `infermesh campaign` and the campaign pages call:
 *   POST /api/campaigns                 a spec (JSON) → 201 { campaign, joinUrl, dashboardUrl } (a key where the grid requires one)
 *   GET  /api/campaigns                 every campaign with its status
 *   GET  /api/campaigns/<id>            its spec, status, runs, refusals
 *   GET  /api/campaigns/<id>/spec       its spec and status (what a tab reads to run it)
 *   POST /api/campaigns/<id>/stop       stops it (results after are refused; a key where the grid requires one)
 *   GET  /api/campaigns/<id>/export?format=csv|jsonl|parquet|summary
 *   POST /api/campaigns/<id>/results    a tab's signed result (shared/campaign/result.ts)
 *   POST /api/campaigns/<id>/reports    a tab's signed report: joined, skipped, failed, finished, left
 *                                       (shared/campaign/tab-report.ts)
 * A result is taken only from a tab the grid has measured (its device handshake): signed by the
 * tab's peer key, for a workload and provider of the campaign, from the device it joined with,
 * and no faster than that device could be. Each refused result is answered by name and kept, so
 * the dashboard shows it. A sample of stored runs (the first of each device, provider and
 * workload, then one in CHECK_SAMPLE) is replayed against the reference, and its row says
 * whether its output was right.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { checkCampaignSpec, CampaignSpecError } from '../../shared/campaign/spec.ts';
import type { CampaignSpec } from '../../shared/campaign/spec.ts';
import { CampaignResultFormatError, CampaignResultSignatureError, verifyCampaignResult } from '../../shared/campaign/result.ts';
import type { CampaignResult } from '../../shared/campaign/result.ts';
import { verifyTabReport } from '../../shared/campaign/tab-report.ts';
import type { CampaignTabReport } from '../../shared/campaign/tab-report.ts';
import { InfermeshError } from '../../shared/errors.ts';
import type { DeviceSummary } from '../../shared/grid/protocol.ts';
import { HttpError } from '../http/errors.ts';
import { pathParameter } from '../http/request-target.ts';
import type { ApiHandler, ApiResponse } from '../http/server.ts';
import type { Campaign, CampaignStore } from './campaign-store.ts';
import { EXPORT_FORMATS, exportRuns, exportSummary } from './campaign-export.ts';
import type { ExportFormat } from './campaign-export.ts';

/**
 * A tab's measured time per layer divided by this is the fastest a result may claim. The
 * handshake measures one layer shape briefly, and a cold first measurement (a GPU compiling its
 * shaders, SwiftShader above all) can be several times slower than warm runs, so honest runs
 * differ from it by a few times; a claim ten times better than the device ever did is not one.
 */
export const IMPOSSIBLE_SPEEDUP = 10;

/** A result from a tab the grid has not measured, or from another device than the one it joined with. */
export class UnknownDeviceError extends InfermeshError {
  override name = 'UnknownDeviceError';
}

/** A result faster than its device could run (IMPOSSIBLE_SPEEDUP × its measured speed). */
export class ImpossibleFigureError extends InfermeshError {
  override name = 'ImpossibleFigureError';
}

/** A result for a workload, provider or repetition the campaign does not have, or for a stopped or ended one. */
export class OutsideCampaignError extends InfermeshError {
  override name = 'OutsideCampaignError';
}

export type CampaignState = 'scheduled' | 'running' | 'stopped' | 'ended';

export interface CampaignApiDeps {
  store: CampaignStore;
  /** the packages the grid serves: a spec's model must be one (by id or name) */
  packages(): { id: string; name: string; dtype: string }[];
  /** the device a peer joined the grid with (its handshake; msPerLayer the best it measured or served at), if it is on the grid */
  device(peerId: string): DeviceSummary | undefined;
  /** the server's public origin, for the join and dashboard links */
  origin(): string;
  /**
   * Lets a call that manages campaigns (create, stop) in, or throws why not: on a grid reachable
   * beyond its machine, the API keys the OpenAI gateway takes (api-keys/gateway-keys.ts), so a
   * stranger can neither stop a researcher's campaign nor fill the grid with campaigns. Reading
   * campaigns and tabs posting signed results and reports need no key. Default: anyone.
   */
  admit?: (headers: IncomingHttpHeaders) => void;
  /** replays a stored run and says whether its output was right (campaign-check.ts); without it no run is checked */
  check?: (run: CampaignResult, spec: CampaignSpec) => Promise<boolean>;
  /** whether to check a run beyond the first of its device, provider and workload (default: one in CHECK_SAMPLE) */
  sample?: () => boolean;
  /** told of a check that could not run (the replayer closed, a package file unreadable) */
  log?: (line: string) => void;
  now?: () => number;
}

/** Beyond the first run of each device, provider and workload, one run in this many is replayed. */
export const CHECK_SAMPLE = 4;

const STATUS_OF: Record<string, number> = {
  CampaignResultFormatError: 400,
  CampaignResultSignatureError: 403,
  UnknownDeviceError: 403,
  ImpossibleFigureError: 422,
  OutsideCampaignError: 409,
  DuplicateResultError: 409,
  ReplayedResultError: 409,
  DuplicateReportError: 409,
};

export function campaignState(c: Campaign, now: number): CampaignState {
  if (c.stoppedAt !== undefined) return 'stopped';
  if (now >= Date.parse(c.spec.endsAt)) return 'ended';
  if (c.spec.startsAt && now < Date.parse(c.spec.startsAt)) return 'scheduled';
  return 'running';
}

/** The runs a campaign wants per device: every workload on every provider, each `repetitions` times. */
export const runsPerDevice = (spec: CampaignSpec) => spec.workloads.length * spec.providers.length * spec.repetitions;

/** The peer a body says it is from, before anything is verified: what a refusal is listed under. */
function claimedPeer(body: unknown, field: 'result' | 'report'): string {
  const peerId = (body as Record<string, { peerId?: unknown } | undefined> | null)?.[field]?.peerId;
  return typeof peerId === 'string' ? peerId : 'unknown';
}

export function campaignHandlers(deps: CampaignApiDeps): ApiHandler[] {
  const now = deps.now ?? Date.now;
  const { store } = deps;
  const sample = deps.sample ?? (() => Math.random() < 1 / CHECK_SAMPLE);
  /** device, provider and workload of the runs checked so far: each gets its first run checked */
  const firstChecked = new Set<string>();

  /** Checks a stored run off the request's path; its row says so when the replay ends. */
  function maybeCheck(run: CampaignResult, spec: CampaignSpec): void {
    if (!deps.check) return;
    const key = `${run.campaignId}\n${run.deviceSignature}\n${run.provider}\n${run.workload}`;
    if (firstChecked.has(key) && !sample()) return;
    firstChecked.add(key);
    deps.check(run, spec).then(
      (ok) => store.setCorrect(run, ok),
      (err: Error) => deps.log?.(`campaigns: could not check ${run.peerId}'s ${run.workload} run ${run.repetition}: ${err.message}`),
    );
  }
  const links = (id: string) => ({ joinUrl: new URL(`/donor/?campaign=${id}`, deps.origin()).href, dashboardUrl: new URL(`/campaign/?id=${id}`, deps.origin()).href });

  const summary = (c: Campaign) => ({
    id: c.id,
    name: c.spec.name,
    state: campaignState(c, now()),
    /** the packages it measures: an opted-in tab runs the campaigns of the model it serves */
    models: c.spec.models.map((m) => m.package),
    createdAt: new Date(c.createdAt).toISOString(),
    ...(c.stoppedAt !== undefined && { stoppedAt: new Date(c.stoppedAt).toISOString() }),
    endsAt: c.spec.endsAt,
    ...store.counts(c.id),
    target: c.spec.target,
    runsPerDevice: runsPerDevice(c.spec),
    ...links(c.id),
  });

  function campaignOf(path: string): { campaign: Campaign; action: string } {
    const rest = pathParameter(new URL(path, 'http://x'), '/api/campaigns/', 'campaign id');
    const [id, action = '', ...more] = rest.split('/');
    const campaign = store.get(id);
    if (!campaign || more.length > 0) throw new HttpError(404, `no campaign ${JSON.stringify(id)} on this grid`, { code: 'campaign_not_found', param: 'id' });
    return { campaign, action };
  }

  function create(body: unknown): ApiResponse {
    let spec: CampaignSpec;
    try {
      spec = checkCampaignSpec(body);
      spec.models.forEach((m, i) => {
        const served = deps.packages().find((p) => p.id === m.package || p.name === m.package);
        if (!served) throw new CampaignSpecError(`models[${i}].package`, `this grid serves no model ${JSON.stringify(m.package)} (it serves ${deps.packages().map((p) => p.name).join(', ')})`);
        if (m.dtypes && !m.dtypes.includes(served.dtype as never)) throw new CampaignSpecError(`models[${i}].dtypes`, `the grid's ${served.name} is ${served.dtype}, not ${m.dtypes.join(' or ')}`);
      });
    } catch (err) {
      if (err instanceof CampaignSpecError) throw new HttpError(400, err.message, { code: 'invalid_campaign_spec', param: err.field || undefined, cause: err });
      throw err;
    }
    const campaign = store.create(spec, now());
    return { status: 201, json: { campaign: summary(campaign), spec, ...links(campaign.id) } };
  }

  /** The checks a verified result must pass before it is stored; the device it ran on. */
  function admit(campaign: Campaign, r: CampaignResult): DeviceSummary {
    const { spec } = campaign;
    const state = campaignState(campaign, now());
    if (state !== 'running') throw new OutsideCampaignError(`campaign ${campaign.id} is ${state}: it takes no results`);
    if (r.campaignId !== campaign.id) throw new OutsideCampaignError(`the result is signed for campaign ${r.campaignId}, not ${campaign.id}`);
    if (!spec.workloads.some((w) => w.name === r.workload)) throw new OutsideCampaignError(`campaign ${campaign.id} has no workload ${JSON.stringify(r.workload)}`);
    if (!spec.providers.includes(r.provider)) throw new OutsideCampaignError(`campaign ${campaign.id} does not run on ${r.provider}`);
    if (r.repetition >= spec.repetitions) throw new OutsideCampaignError(`repetition ${r.repetition} is past the campaign's ${spec.repetitions}`);
    const device = deps.device(r.peerId);
    if (!device) throw new UnknownDeviceError(`${r.peerId} is not on the grid: results come from tabs whose device the grid measured`);
    if (device.signature !== r.deviceSignature) throw new UnknownDeviceError(`${r.peerId} joined with device ${device.signature}, not ${r.deviceSignature}`);
    const floor = device.msPerLayer / IMPOSSIBLE_SPEEDUP;
    if (device.executionProvider === r.provider && r.msPerLayer < floor) {
      throw new ImpossibleFigureError(`${r.msPerLayer} ms per layer is more than ${IMPOSSIBLE_SPEEDUP}× faster than this device measured (${device.msPerLayer} ms) on ${r.provider}`);
    }
    return device;
  }

  /**
   * The checks a verified tab report must pass: a tab joins from the device the grid measured,
   * on its provider; what it says after (skipped, failed, finished, left) it says having joined,
   * and `left` or `finished` may come after the campaign stopped or ended.
   */
  function admitReport(campaign: Campaign, r: CampaignTabReport): void {
    const { spec } = campaign;
    const state = campaignState(campaign, now());
    if (r.campaignId !== campaign.id) throw new OutsideCampaignError(`the report is signed for campaign ${r.campaignId}, not ${campaign.id}`);
    const closing = r.event === 'left' || r.event === 'finished';
    if (state !== 'running' && !(closing && state !== 'scheduled')) throw new OutsideCampaignError(`campaign ${campaign.id} is ${state}: it takes no ${r.event} reports`);
    if (r.workload !== '' && !spec.workloads.some((w) => w.name === r.workload)) throw new OutsideCampaignError(`campaign ${campaign.id} has no workload ${JSON.stringify(r.workload)}`);
    if (r.event !== 'joined') {
      if (!store.hasReport(campaign.id, r.peerId, 'joined')) throw new OutsideCampaignError(`${r.peerId} has not joined campaign ${campaign.id}: a tab reports joined first`);
      return;
    }
    if (r.planned > runsPerDevice(spec)) throw new OutsideCampaignError(`${r.planned} runs planned is more than the campaign's ${runsPerDevice(spec)} per device`);
    const device = deps.device(r.peerId);
    if (!device) throw new UnknownDeviceError(`${r.peerId} is not on the grid: tabs whose device the grid measured join campaigns`);
    if (device.signature !== r.deviceSignature) throw new UnknownDeviceError(`${r.peerId} joined the grid with device ${device.signature}, not ${r.deviceSignature}`);
    if (device.executionProvider !== r.tabProvider) throw new UnknownDeviceError(`${r.peerId} computes on ${device.executionProvider}, not ${r.tabProvider}`);
  }

  async function submit(campaign: Campaign, body: unknown): Promise<ApiResponse> {
    const peerId = claimedPeer(body, 'result');
    try {
      const signed = await verifyCampaignResult(body);
      const device = admit(campaign, signed.result);
      // Stored unchecked; a sample is replayed against the reference and its row updated (maybeCheck).
      const run = store.addRun(signed.result, { signature: signed.signature, correct: null, deviceGflops: device.gflops }, now());
      maybeCheck(signed.result, campaign.spec);
      return { status: 201, json: { run } };
    } catch (err) {
      throw refused(campaign, peerId, err);
    }
  }

  async function report(campaign: Campaign, body: unknown): Promise<ApiResponse> {
    const peerId = claimedPeer(body, 'report');
    try {
      const signed = await verifyTabReport(body);
      admitReport(campaign, signed.report);
      return { status: 201, json: { report: store.addReport(signed.report, signed.signature, now()) } };
    } catch (err) {
      throw refused(campaign, peerId, err);
    }
  }

  /** A submission refused by name is kept (the dashboard lists it) and answered with its status; anything else is the server's fault. */
  function refused(campaign: Campaign, peerId: string, err: unknown): unknown {
    const status = err instanceof InfermeshError ? STATUS_OF[err.name] : undefined;
    if (!(err instanceof InfermeshError) || status === undefined) return err;
    // Before its signature is checked, a submission may name any tab: it is kept as that tab's claim only.
    const verified = !(err instanceof CampaignResultFormatError || err instanceof CampaignResultSignatureError);
    store.refuse(campaign.id, { peerId: peerId.slice(0, 128), verified, reason: err.name, message: err.message, receivedAt: now() });
    return new HttpError(status, err.message, { code: err.name, cause: err });
  }

  return [
    {
      method: 'POST',
      path: '/api/campaigns',
      handle: (req, body) => {
        deps.admit?.(req.headers);
        return create(body);
      },
    },
    { method: 'GET', path: '/api/campaigns', handle: () => ({ json: { campaigns: store.list().map(summary) } }) },
    {
      method: 'GET',
      path: '/api/campaigns/*',
      handle: (req) => {
        const { campaign, action } = campaignOf(req.url.pathname);
        if (action === 'export') {
          const format = (req.url.searchParams.get('format') ?? 'csv') as ExportFormat;
          if (!EXPORT_FORMATS.includes(format)) throw new HttpError(400, `format must be one of ${EXPORT_FORMATS.join(', ')}, not ${JSON.stringify(format)}`, { code: 'invalid_format', param: 'format' });
          const { document, contentType } =
            format === 'summary' ? exportSummary(summary(campaign), store.runs(campaign.id), store.reports(campaign.id), store.refusals(campaign.id), now()) : exportRuns(store.runs(campaign.id), format);
          const file = format === 'summary' ? `${campaign.id}-summary.json` : `${campaign.id}.${format}`;
          return { document, contentType, headers: { 'content-disposition': `attachment; filename="${file}"` } };
        }
        // What a tab needs to run it, without every run stored so far.
        if (action === 'spec') return { json: { campaign: summary(campaign), spec: campaign.spec } };
        if (action !== '') throw new HttpError(404, `no ${JSON.stringify(action)} under a campaign (spec, export, stop, results)`, { code: 'not_found' });
        // serverTime: the dashboard tells how long a tab has been quiet by the server's clock, not the viewer's.
        return { json: { campaign: summary(campaign), spec: campaign.spec, runs: store.runs(campaign.id), reports: store.reports(campaign.id), refusals: store.refusals(campaign.id), serverTime: now() } };
      },
    },
    {
      method: 'POST',
      path: '/api/campaigns/*',
      handle: (req, body) => {
        const { campaign, action } = campaignOf(req.url.pathname);
        if (action === 'stop') {
          deps.admit?.(req.headers);
          store.stop(campaign.id, now());
          return { json: { campaign: summary(store.get(campaign.id)!) } };
        }
        if (action === 'results') return submit(campaign, body);
        if (action === 'reports') return report(campaign, body);
        throw new HttpError(404, `no ${JSON.stringify(action)} to post to under a campaign (stop, results, reports)`, { code: 'not_found' });
      },
    },
  ];
}

