/**
 * A donor tab's part in a benchmark campaign (`/donor/?campaign=<id>`): once the tab serves its
 * layers, it runs each workload of the campaign on them (warm-up runs first, then the
 * repetitions), each when the tab has served nothing for a moment, so requests keep their speed.
 * Each repetition is signed with the tab's peer key and posted to the server, which refuses it
 * by name when it is not acceptable (signaling-server/campaigns/campaign-api.ts). A workload the
 * tab cannot run (another provider than its engine's, other layers than it serves) is reported
 * as skipped, with why. The visitor may close the tab at any time: runs already posted count.
 */
import type { PrivateKey } from '@libp2p/interface';
import type { CampaignSpec } from '../../shared/campaign/spec.ts';
import { signCampaignResult } from '../../shared/campaign/result.ts';
import type { CampaignResult, SignedCampaignResult } from '../../shared/campaign/result.ts';
import { runSeed, runWorkload } from '../../shared/campaign/workload-run.ts';
import type { WorkloadEngine } from '../../shared/campaign/workload-run.ts';
import type { DeviceSummary } from '../../shared/grid/protocol.ts';
import type { LayerRange } from '../../shared/runtime/stage.ts';

/** A run starts only after the tab has served no step for this long. */
const IDLE_BEFORE_RUN_MS = 1000;

export interface CampaignProgress {
  id: string;
  name?: string;
  /** repetitions posted and accepted, of all this tab will run */
  done: number;
  total: number;
  refused: number;
  status: 'starting' | 'running' | 'finished' | 'failed';
  /** the last refusal, a skipped workload, or why it failed */
  note?: string;
}

export interface CampaignRunnerOptions {
  serverUrl: string;
  campaignId: string;
  peerId: string;
  device: DeviceSummary;
  layers: LayerRange;
  dim: number;
}

export interface CampaignRunnerDeps {
  engine: WorkloadEngine;
  privateKey: PrivateKey;
  /** when the tab last served a step (performance.now()) */
  lastServedAt(): number;
  progress(p: CampaignProgress): void;
  /** the test kit's cheating tab changes what is posted; default: the signed result as it is */
  post?: (signed: SignedCampaignResult, send: (body: unknown) => Promise<Response>) => Promise<Response>;
  fetch?: typeof fetch;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export async function runCampaign(o: CampaignRunnerOptions, deps: CampaignRunnerDeps): Promise<CampaignProgress> {
  const fetchFn = deps.fetch ?? fetch;
  const base = new URL(`/api/campaigns/${encodeURIComponent(o.campaignId)}`, o.serverUrl).href;
  const progress: CampaignProgress = { id: o.campaignId, done: 0, total: 0, refused: 0, status: 'starting' };
  const tell = (change: Partial<CampaignProgress>) => deps.progress(Object.assign(progress, change));
  const answer = await fetchFn(`${base}/spec`);
  if (!answer.ok) return (tell({ status: 'failed', note: `the server has no campaign ${o.campaignId} (${answer.status})` }), progress);
  const { spec } = (await answer.json()) as { spec: CampaignSpec };
  const provider = o.device.executionProvider;
  const skipped: string[] = [];
  const runnable = spec.workloads.filter((w) => {
    if (!spec.providers.includes(provider as never)) return skipped.push(`${w.name}: this tab runs on ${provider}, not ${spec.providers.join(' or ')}`) && false;
    if (w.layers !== 'all' && (w.layers.start !== o.layers.start || w.layers.end !== o.layers.end)) {
      return skipped.push(`${w.name}: layers ${w.layers.start}-${w.layers.end}, this tab serves ${o.layers.start}-${o.layers.end}`) && false;
    }
    return true;
  });
  tell({ name: spec.name, total: runnable.length * spec.repetitions, status: 'running', note: skipped.length ? `skipped ${skipped.join('; ')}` : undefined });
  const send = (body: unknown) => fetchFn(`${base}/results`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  for (const workload of runnable) {
    for (let repetition = -spec.warmup; repetition < spec.repetitions; repetition++) {
      while (performance.now() - deps.lastServedAt() < IDLE_BEFORE_RUN_MS) await sleep(IDLE_BEFORE_RUN_MS / 4);
      const seed = runSeed(o.campaignId, o.peerId, workload.name, repetition);
      const run = await runWorkload(deps.engine, { workload, dim: o.dim, layers: o.layers.end - o.layers.start, seed, requestId: `campaign-${crypto.randomUUID()}` });
      if (repetition < 0) continue;
      const result: CampaignResult = {
        campaignId: o.campaignId,
        peerId: o.peerId,
        deviceSignature: o.device.signature,
        provider: provider as CampaignResult['provider'],
        adapter: o.device.label,
        workload: workload.name,
        repetition,
        layers: { start: o.layers.start, end: o.layers.end },
        ...run,
        finishedAt: Date.now(),
      };
      const signed = await signCampaignResult(result, deps.privateKey);
      const res = await (deps.post ? deps.post(signed, send) : send(signed));
      if (res.ok) tell({ done: progress.done + 1 });
      else {
        const error = ((await res.json().catch(() => null)) as { error?: { code?: string; message?: string } } | null)?.error;
        tell({ refused: progress.refused + 1, note: `refused: ${error?.code ?? res.status}: ${error?.message ?? ''}` });
        // A campaign that stopped or ended takes nothing more.
        if (error?.code === 'OutsideCampaignError' && /is (stopped|ended)/.test(error.message ?? '')) return (tell({ status: 'finished' }), progress);
      }
    }
  }
  tell({ status: 'finished' });
  return progress;
}
