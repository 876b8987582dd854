/**
 * A donor tab's part in a benchmark campaign (`/donor/?campaign=<id>`, or opted in on the donor
 * page): once the tab serves its layers, it runs each workload of the campaign on them (warm-up
 * runs first, then the repetitions), each when the tab has served nothing for a moment, so
 * requests keep their speed. Each repetition is signed with the tab's peer key and posted to the
 * server, which refuses it by name when it is not acceptable
 * (signaling-server/campaigns/campaign-api.ts).
 *
 * The tab also tells the campaign, signed the same way (shared/campaign/tab-report.ts), that it
 * joined and how many runs it plans, what it skips and why (a provider other than its engine's,
 * layers other than it serves, another model), a workload that failed with its error, and that it
 * finished, or left: when its visitor opts out (the signal) or closes it (a report kept signed
 * for the page to send as it goes, `leave`). Runs already posted count.
 */
import type { PrivateKey } from '@libp2p/interface';
import type { CampaignSpec, CampaignWorkload, ExecutionProviderName } from '../../shared/campaign/spec.ts';
import { signCampaignResult } from '../../shared/campaign/result.ts';
import type { CampaignResult, SignedCampaignResult } from '../../shared/campaign/result.ts';
import { reasonText, signTabReport } from '../../shared/campaign/tab-report.ts';
import type { CampaignTabReport, SignedTabReport } from '../../shared/campaign/tab-report.ts';
import { runSeed, runWorkload } from '../../shared/campaign/workload-run.ts';
import type { WorkloadEngine } from '../../shared/campaign/workload-run.ts';
import type { DeviceSummary } from '../../shared/grid/protocol.ts';
import type { LayerRange } from '../../shared/runtime/stage.ts';

/** A run starts only after the tab has served no step for this long. */
const IDLE_BEFORE_RUN_MS = 1000;
/** A scheduled campaign is asked again this often once its start is near (the tab's clock may be ahead). */
const SCHEDULED_RECHECK_MS = 5000;
/** A joined report the server did not get is sent again this many times, a second apart and more. */
const JOIN_TRIES = 3;

export interface CampaignProgress {
  id: string;
  name?: string;
  /** repetitions posted and accepted, of all this tab will run */
  done: number;
  total: number;
  refused: number;
  status: 'starting' | 'waiting' | 'running' | 'finished' | 'left' | 'failed';
  /** the last refusal, what was skipped, or why it failed */
  note?: string;
}

export interface CampaignRunnerOptions {
  serverUrl: string;
  campaignId: string;
  peerId: string;
  device: DeviceSummary;
  layers: LayerRange;
  dim: number;
  /** the package the tab serves: a campaign of other models is skipped */
  model: { id: string; name: string };
  /** why the tab computes on its provider and not another, said when a campaign asks for another */
  providerReason: string;
}

export interface CampaignRunnerDeps {
  engine: WorkloadEngine;
  privateKey: PrivateKey;
  /** when the tab last served a step (performance.now()) */
  lastServedAt(): number;
  progress(p: CampaignProgress): void;
  /** the visitor left or opted out: the run under way ends, `left` is reported (with the abort's reason when it is text) and nothing more runs */
  signal?: AbortSignal;
  /** handed the `left` report to send should the page close before the campaign ends (a beacon), signed again after each run; undefined once the tab finished or left */
  leave?: (url: string, report: SignedTabReport | undefined) => void;
  /** the test kit's cheating tab changes what is posted; default: the signed result as it is */
  post?: (signed: SignedCampaignResult, send: (body: unknown) => Promise<Response>) => Promise<Response>;
  fetch?: typeof fetch;
}

interface Skip {
  provider: ExecutionProviderName | '';
  workload: string;
  reason: string;
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
  });

/** What a tab with this provider, layers and model leaves out of the campaign, and why. */
export function campaignSkips(spec: CampaignSpec, o: Pick<CampaignRunnerOptions, 'layers' | 'model' | 'providerReason'> & { provider: string }): Skip[] {
  if (!spec.models.some((m) => m.package === o.model.id || m.package === o.model.name)) {
    return [{ provider: '', workload: '', reason: `this tab serves ${o.model.name}, the campaign measures ${spec.models.map((m) => m.package).join(', ')}` }];
  }
  const skips: Skip[] = spec.providers.filter((p) => p !== o.provider).map((p) => ({ provider: p, workload: '', reason: `this tab computes on ${o.provider}: ${o.providerReason}` }));
  if (!spec.providers.includes(o.provider as ExecutionProviderName)) return skips;
  for (const w of spec.workloads) {
    if (w.layers !== 'all' && (w.layers.start !== o.layers.start || w.layers.end !== o.layers.end)) {
      skips.push({ provider: o.provider as ExecutionProviderName, workload: w.name, reason: `layers ${w.layers.start}-${w.layers.end}; this tab serves ${o.layers.start}-${o.layers.end}` });
    }
  }
  return skips;
}

export async function runCampaign(o: CampaignRunnerOptions, deps: CampaignRunnerDeps): Promise<CampaignProgress> {
  const fetchFn = deps.fetch ?? fetch;
  const { signal } = deps;
  const base = new URL(`/api/campaigns/${encodeURIComponent(o.campaignId)}`, o.serverUrl).href;
  const progress: CampaignProgress = { id: o.campaignId, done: 0, total: 0, refused: 0, status: 'starting' };
  const tell = (change: Partial<CampaignProgress>) => deps.progress(Object.assign(progress, change));
  const readSpec = async () => {
    const answer = await fetchFn(`${base}/spec`);
    return answer.ok ? ((await answer.json()) as { spec: CampaignSpec; campaign: { state: string } }) : answer.status;
  };
  let read = await readSpec();
  // A scheduled campaign is waited for, then asked again: the server's clock says when it starts.
  while (typeof read !== 'number' && read.campaign.state === 'scheduled' && !signal?.aborted) {
    tell({ name: read.spec.name, status: 'waiting', note: `starts ${read.spec.startsAt}` });
    const wait = Date.parse(read.spec.startsAt ?? '') - Date.now();
    // At most an hour at a time: a timer longer than 2^31 ms (24.8 days) fires at once.
    await sleep(Math.min(Math.max(wait, SCHEDULED_RECHECK_MS), 3_600_000), signal);
    read = await readSpec();
  }
  if (typeof read === 'number') return (tell({ status: 'failed', note: `the server has no campaign ${o.campaignId} (${read})` }), progress);
  const { spec, campaign } = read;
  if (signal?.aborted) return (tell({ name: spec.name, status: 'left', note: 'left before it started' }), progress);
  if (campaign.state !== 'running') return (tell({ name: spec.name, status: 'finished', note: `the campaign is ${campaign.state}` }), progress);

  const provider = o.device.executionProvider as ExecutionProviderName;
  const skips = campaignSkips(spec, { ...o, provider });
  const skipped = new Set(skips.map((s) => `${s.provider}\n${s.workload}`));
  const measures = spec.providers.includes(provider) && !skipped.has('\n');
  const runnable = measures ? spec.workloads.filter((w) => !skipped.has(`${provider}\n${w.name}`)) : [];
  const post = (path: string, body: unknown) => fetchFn(`${base}/${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const report = (event: CampaignTabReport['event'], more: Partial<CampaignTabReport> = {}) =>
    signTabReport({ campaignId: o.campaignId, peerId: o.peerId, deviceSignature: o.device.signature, adapter: o.device.label, tabProvider: provider, event, provider: '', workload: '', planned: 0, reason: '', at: Date.now(), ...more }, deps.privateKey);
  /** A report refused is shown as a refused result is, one the server did not get as a note; the runs go on either way. Whether the server took it. */
  const send = async (signed: SignedTabReport, tries = 1): Promise<boolean> => {
    for (let attempt = 1; ; attempt++) {
      try {
        const res = await post('reports', signed);
        if (!res.ok) await refusal(res);
        return res.ok;
      } catch (err) {
        if (attempt >= tries) return (tell({ note: `could not report ${signed.report.event}: ${(err as Error).message}` }), false);
        await sleep(1000 * attempt, signal);
      }
    }
  };
  const refusal = async (res: Response) => {
    const error = ((await res.json().catch(() => null)) as { error?: { code?: string; message?: string } } | null)?.error;
    tell({ refused: progress.refused + 1, note: `refused: ${error?.code ?? res.status}: ${error?.message ?? ''}` });
    return error;
  };
  const leaveUrl = `${base}/reports`;
  const armLeave = async () => deps.leave?.(leaveUrl, await report('left', { reason: `closed after ${progress.done} of ${progress.total} runs` }));

  tell({ name: spec.name, total: runnable.length * spec.repetitions, status: 'running', note: skips.length ? `skipped ${skips.map((s) => `${s.workload || s.provider || 'all'}: ${s.reason}`).join('; ')}` : undefined });
  // Every later report needs the joined one, so a network error is tried again.
  await send(await report('joined', { planned: progress.total }), JOIN_TRIES);
  for (const s of skips) await send(await report('skipped', { ...s, reason: reasonText(s.reason) }));
  await armLeave();

  const runWorkloadRepetitions = async (workload: CampaignWorkload): Promise<'next' | 'closed'> => {
    for (let repetition = -spec.warmup; repetition < spec.repetitions; repetition++) {
      while (!signal?.aborted && performance.now() - deps.lastServedAt() < IDLE_BEFORE_RUN_MS) await sleep(IDLE_BEFORE_RUN_MS / 4, signal);
      if (signal?.aborted) return 'closed';
      const seed = runSeed(o.campaignId, o.peerId, workload.name, repetition);
      const run = await runWorkload(deps.engine, { workload, dim: o.dim, layers: o.layers.end - o.layers.start, seed, requestId: `campaign-${crypto.randomUUID()}` });
      if (repetition < 0) continue;
      const result: CampaignResult = {
        campaignId: o.campaignId,
        peerId: o.peerId,
        deviceSignature: o.device.signature,
        provider,
        adapter: o.device.label,
        workload: workload.name,
        repetition,
        layers: { start: o.layers.start, end: o.layers.end },
        ...run,
        finishedAt: Date.now(),
      };
      const signed = await signCampaignResult(result, deps.privateKey);
      const res = await (deps.post ? deps.post(signed, (body) => post('results', body)) : post('results', signed));
      if (res.ok) tell({ done: progress.done + 1 });
      else {
        const error = await refusal(res);
        // A campaign that stopped or ended takes nothing more.
        if (error?.code === 'OutsideCampaignError' && /is (stopped|ended)/.test(error.message ?? '')) return 'closed';
      }
      await armLeave();
    }
    return 'next';
  };

  /** set when the campaign stopped or ended under the tab */
  let closedEarly = false;
  for (const workload of runnable) {
    let outcome: 'next' | 'closed';
    try {
      outcome = await runWorkloadRepetitions(workload);
    } catch (err) {
      // Left mid-run (the donor stopped, its engine with it): not the workload's failure.
      if (signal?.aborted) break;
      // A workload that throws (the engine out of memory, a device lost) is reported; the next one may still run.
      const reason = reasonText(`${(err as Error).name}: ${(err as Error).message}`);
      tell({ note: `${workload.name} failed: ${reason}` });
      await send(await report('failed', { provider, workload: workload.name, reason }));
      continue;
    }
    if (outcome === 'closed') {
      closedEarly = !signal?.aborted;
      break;
    }
  }
  deps.leave?.(leaveUrl, undefined);
  if (signal?.aborted) {
    const why = typeof signal.reason === 'string' ? signal.reason : 'left';
    await send(await report('left', { reason: `${why} after ${progress.done} of ${progress.total} runs` }));
    return (tell({ status: 'left' }), progress);
  }
  await send(await report('finished', { reason: `${progress.done} of ${progress.total} runs stored${closedEarly ? ': the campaign stopped or ended first' : ''}` }));
  tell({ status: 'finished' });
  return progress;
}
