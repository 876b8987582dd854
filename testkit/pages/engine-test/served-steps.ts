/**
 * A stage serving requests step by step, as a donor does (prompt prefill, then one row per
 * decode step on the engine's KV cache), recording every step's output: what the cross-EP
 * trust calibration (e2e/trust-calibration.test.ts) holds against the validator's replay.
 * Isomorphic (only the engine's `step` and `end` are used), so the page's Web Worker engines
 * and the Node engine serve through the same code.
 */
import type { ShardEngine } from '../../../shared/engine/api.ts';
import { decodeFrame, encodeFrame } from '../../../shared/protocol/frame.ts';

/** One request's stage inputs: all its rows, the first `promptRows` of which are the prefill. */
export interface ServedRequest {
  /** [(promptRows + decode steps) × dim] hidden states, row after row */
  rows: Float32Array;
  promptRows: number;
}

/** Serves each request (one after the other) and returns each one's outputs in the layout of its rows. */
export async function serveSteps(engine: Pick<ShardEngine, 'step' | 'end'>, dim: number, requests: ServedRequest[], idPrefix = 'served'): Promise<Float32Array[]> {
  const outputs: Float32Array[] = [];
  for (const [r, request] of requests.entries()) {
    const requestId = `${idPrefix}-${r}`;
    const total = request.rows.length / dim;
    const out = new Float32Array(request.rows.length);
    let position = 0;
    for (let step = 0; position < total; step++) {
      const rows = step === 0 ? request.promptRows : 1;
      const data = request.rows.slice(position * dim, (position + rows) * dim);
      const answer = decodeFrame(await engine.step(encodeFrame({ requestId, step, position, dims: [1, rows, dim], data })));
      out.set(answer.data, position * dim);
      position += rows;
    }
    await engine.end(requestId);
    outputs.push(out);
  }
  return outputs;
}
