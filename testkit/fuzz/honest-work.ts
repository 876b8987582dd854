/**
 * A stage's work on one request as the validator expects to see it, made up but consistent:
 * step records over made-up inputs and outputs, the hand-offs an upstream sealed (with each
 * record's proof under the transcript), so a commitment over them passes every check up to
 * the replay, and the reveal after a challenge is accepted (a RECEIPT). The replay then fails
 * (the outputs are not the model's), which convicts the identity: the trust cases use
 * identities of their own. Used by trust-run.ts.
 */
import { revealRecords } from '../../shared/trust/commitment.ts';
import { handoffProofs, transcriptOf } from '../../shared/trust/handoff.ts';
import type { Transcript } from '../../shared/trust/handoff.ts';
import { encodeStepRecord, recordStep } from '../../shared/trust/step-record.ts';
import type { StepRecord } from '../../shared/trust/step-record.ts';
import { encodeReveal } from '../../shared/grid/trust-wire.ts';

export interface HonestWork {
  records: StepRecord[];
  inputs: Float32Array[];
  /** what the upstream seals: the Merkle root over the hand-offs of the inputs */
  transcript: Transcript;
}

/** `steps` one-row steps of width `dim`; 'huge' inputs sit near f32's largest value, 'nan' ones hold a NaN. */
export async function honestWork(steps: number, dim: number, requestId: string, inputs: 'normal' | 'nan' | 'huge'): Promise<HonestWork> {
  const records: StepRecord[] = [];
  const ins: Float32Array[] = [];
  for (let step = 0; step < steps; step++) {
    const input = Float32Array.from({ length: dim }, (_, i) => (inputs === 'huge' ? 3e38 : Math.sin(step * dim + i)));
    if (inputs === 'nan') input[step % dim] = Number.NaN;
    const output = Float32Array.from({ length: dim }, (_, i) => Math.cos(step * dim + i));
    records.push(await recordStep(input, output, { step, position: step, rows: 1 }));
    ins.push(input);
  }
  const handoffs = records.map((r) => ({ requestId, step: r.step, position: r.position, rows: r.rows, tensorSha256: r.inputSha256 }));
  const transcript = await transcriptOf(handoffs);
  const proofs = await handoffProofs(handoffs);
  records.forEach((r, i) => (r.handoffProof = proofs[i]));
  return { records, inputs: ins, transcript };
}

/** The REVEAL message answering a challenge of `steps`: records and inputs of steps 0..max(steps). */
export async function honestReveal(work: HonestWork, steps: number[], tamper = false): Promise<Uint8Array> {
  const last = steps.length > 0 ? Math.max(...steps) : -1;
  const indices = Array.from({ length: Math.min(last + 1, work.records.length) }, (_, i) => i);
  const revealed = await revealRecords(work.records, indices);
  const inputs = work.inputs.slice(0, indices.length).map((x) => Float32Array.from(x));
  if (tamper && inputs.length > 0) inputs[0][0] += 1;
  return encodeReveal({ records: revealed.map((r) => ({ index: r.index, record: encodeStepRecord(r.record), proof: r.proof })), inputs });
}
