/**
 * One run of a campaign workload on a tab's engine: the layers it has loaded take a prefill of
 * the workload's prompt tokens, then its decode steps one token at a time, as a stage serves a
 * request. The hidden states are seeded noise (a middle stage never sees tokens), the same for
 * the same seed, so a run can be replayed elsewhere and its output compared: the fingerprint of
 * the first decode step's output (the prefill's when there is no decode step) is what the
 * result carries for that check.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { decodeFrame, encodeFrame } from '../protocol/frame.ts';
import { encodeFingerprint, fingerprintHidden } from '../trust/fingerprint.ts';
import type { StageEngine } from '../grid/stage-server.ts';
import { seededUniform } from '../seeded-random.ts';
import type { CampaignWorkload } from './spec.ts';

/** What runs a workload: a stage's engine, as the stage server drives it. */
export type WorkloadEngine = StageEngine;

export interface WorkloadRun {
  promptMs: number;
  decodeMs: number;
  tokensPerSecond: number;
  msPerLayer: number;
  /** hex of the encoded fingerprint (shared/trust/fingerprint.ts) */
  fingerprint: string;
}

export interface WorkloadRunOptions {
  workload: Pick<CampaignWorkload, 'promptTokens' | 'decodeTokens'>;
  /** the model's hidden width */
  dim: number;
  /** how many layers the engine runs */
  layers: number;
  /** what the inputs are drawn from (runSeed) */
  seed: number;
  requestId: string;
}

/** The seed of one run: the same campaign, tab, workload and repetition draw the same inputs. */
export function runSeed(campaignId: string, peerId: string, workload: string, repetition: number): number {
  const digest = sha256(new TextEncoder().encode(`${campaignId}\n${peerId}\n${workload}\n${repetition}`));
  return new DataView(digest.buffer, digest.byteOffset).getUint32(0, true);
}

/**
 * The frames of a run, in order: the prefill, then one per decode step; `count` stops after
 * that many (a check needs the first two only, and they are drawn first).
 */
export function workloadFrames(o: WorkloadRunOptions, count = 1 + o.workload.decodeTokens): Uint8Array[] {
  const uniform = seededUniform(o.seed);
  const next = () => uniform() - 0.5;
  const frame = (step: number, position: number, rows: number) =>
    encodeFrame({ requestId: o.requestId, step, position, dims: [1, rows, o.dim], data: Float32Array.from({ length: rows * o.dim }, next) });
  const frames = [frame(0, 0, o.workload.promptTokens)];
  for (let i = 0; i < Math.min(o.workload.decodeTokens, count - 1); i++) frames.push(frame(i + 1, o.workload.promptTokens + i, 1));
  return frames;
}

/** The fingerprint a run's output frame is checked by, as hex. */
export function outputFingerprint(output: Uint8Array): string {
  const frame = decodeFrame(output);
  const rows = frame.dims.length >= 2 ? frame.dims[frame.dims.length - 2] : 1;
  const width = frame.dims[frame.dims.length - 1];
  // The last row: the one the next token comes from.
  const last = frame.data.subarray((rows - 1) * width, rows * width);
  return Array.from(encodeFingerprint(fingerprintHidden(last, 1, width)), (b) => b.toString(16).padStart(2, '0')).join('');
}

export async function runWorkload(engine: WorkloadEngine, o: WorkloadRunOptions): Promise<WorkloadRun> {
  const [prefill, ...decode] = workloadFrames(o);
  try {
    let started = performance.now();
    let output = await engine.step(prefill);
    const promptMs = performance.now() - started;
    let fingerprint = outputFingerprint(output);
    started = performance.now();
    for (const [i, frame] of decode.entries()) {
      output = await engine.step(frame);
      if (i === 0) fingerprint = outputFingerprint(output);
    }
    const decodeMs = performance.now() - started;
    const steps = decode.length;
    return {
      promptMs,
      decodeMs,
      tokensPerSecond: steps > 0 && decodeMs > 0 ? steps / (decodeMs / 1000) : 0,
      msPerLayer: steps > 0 ? decodeMs / steps / o.layers : promptMs / o.layers,
      fingerprint,
    };
  } finally {
    await engine.end(o.requestId);
  }
}
