/**
 * Whether a campaign run computed right: its inputs are drawn again from the run's seed
 * (shared/campaign/workload-run.ts), the run's layers replayed over them on the validator's
 * replayer (trust/replayer.ts, the reference package on onnxruntime-node), and the output the
 * tab fingerprinted (the first decode step's, the prefill's without one) compared with the
 * tab's fingerprint, within the package dtype's tolerance, as the validator checks a stage.
 * A replay covers the prefill and the first decode step as one prefill: attention is causal,
 * so the last row is the decode step's output.
 */
import type { CampaignResult } from '../../shared/campaign/result.ts';
import type { CampaignSpec } from '../../shared/campaign/spec.ts';
import { runSeed, workloadFrames } from '../../shared/campaign/workload-run.ts';
import { decodeFrame } from '../../shared/protocol/frame.ts';
import { compareFingerprint, decodeFingerprint } from '../../shared/trust/fingerprint.ts';
import type { FingerprintThresholds } from '../../shared/trust/fingerprint.ts';
import type { Replayer } from '../trust/replayer.ts';

export interface RunCheckDeps {
  replayer: Pick<Replayer, 'replay'>;
  /** the model's hidden width */
  dim: number;
  thresholds: FingerprintThresholds;
}

export async function checkCampaignRun(run: CampaignResult, spec: CampaignSpec, deps: RunCheckDeps): Promise<boolean> {
  const workload = spec.workloads.find((w) => w.name === run.workload);
  if (!workload) return false;
  const seed = runSeed(run.campaignId, run.peerId, run.workload, run.repetition);
  const frames = workloadFrames({ workload, dim: deps.dim, layers: run.layers.end - run.layers.start, seed, requestId: 'campaign-check' }, 2);
  const outputs = await deps.replayer.replay(run.layers, { steps: frames.map((f) => decodeFrame(f).data) });
  const last = outputs[outputs.length - 1];
  const row = last.subarray(last.length - deps.dim);
  let fingerprint;
  try {
    fingerprint = decodeFingerprint(Uint8Array.from(run.fingerprint.match(/../g) ?? [], (h) => parseInt(h, 16)));
  } catch {
    return false;
  }
  if (fingerprint.rows !== 1 || fingerprint.width !== deps.dim) return false;
  return compareFingerprint(fingerprint, row, deps.thresholds).ok;
}
