/**
 * The largest reveal the validator reads (maxRevealBytes) against real reveals: every step of a
 * full context revealed, as one row per step (the most records and proofs) and as one prefill
 * of the whole context (the most input rows), each with its Merkle proofs.
 */
import { describe, expect, it } from 'vitest';
import { SYNTHETIC_PRESETS } from '../model/synthetic/presets.ts';
import { merkleProofs } from '../trust/merkle.ts';
import { encodeStepRecord, recordStep } from '../trust/step-record.ts';
import { encodeReveal, maxRevealBytes, type Reveal } from './trust-wire.ts';

const config = { dim: 64, maxSeqLen: 256 };

/** A reveal of `steps` steps of `rows` rows each, proofs as a real stage sends them. */
async function fullReveal(steps: number, rows: number): Promise<Reveal> {
  const inputs = Array.from({ length: steps }, () => Float32Array.from({ length: rows * config.dim }, (_, i) => Math.sin(i)));
  const records = await Promise.all(inputs.map((input, step) => recordStep(input, input.map((v) => v * 2), { step, position: step * rows, rows })));
  // The hand-off proof under the upstream's transcript is as deep as the commitment's own.
  const handoffProofs = await merkleProofs(records.map((_, i) => new Uint8Array([i])));
  records.forEach((r, i) => (r.handoffProof = handoffProofs[i]));
  const leaves = records.map(encodeStepRecord);
  const proofs = await merkleProofs(leaves);
  return { records: leaves.map((record, index) => ({ index, record, proof: proofs[index] })), inputs };
}

describe('maxRevealBytes', () => {
  it('holds the reveal of every step of a full context, one row a step', async () => {
    const bytes = encodeReveal(await fullReveal(config.maxSeqLen, 1)).byteLength;
    expect(bytes).toBeLessThanOrEqual(maxRevealBytes(config));
    // A bound, not a guess: within a few percent of the real thing.
    expect(bytes).toBeGreaterThan(0.9 * maxRevealBytes(config));
  });

  it('holds the reveal of one prefill of the whole context', async () => {
    expect(encodeReveal(await fullReveal(1, config.maxSeqLen)).byteLength).toBeLessThanOrEqual(maxRevealBytes(config));
  });

  it('is over the 4 MiB a libp2p stream buffers by default for the default 110M-parameter model', () => {
    expect(maxRevealBytes(SYNTHETIC_PRESETS['110m'])).toBeGreaterThan(4 << 20);
  });
});
