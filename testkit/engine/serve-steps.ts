/**
 * Sends a request's steps through a chain of stages, with their KV caches, as a donor route
 * does, and returns each step's output frame: the tests that compare what stages computed with
 * the validator's replay (stage faults, fingerprint calibration). A shard engine joins a chain as
 * `engineStage(engine)` (shared/runtime/pipeline.ts).
 */
import { decodeFrame, encodeFrame } from '../../shared/protocol/frame.ts';
import type { HiddenFrame } from '../../shared/protocol/frame.ts';
import type { StageLink } from '../../shared/runtime/pipeline.ts';

/** `steps[i]` is step i's input, rows × `dim` values; the request ends on every stage afterwards. */
export async function serveSteps(chain: StageLink[], steps: Float32Array[], requestId: string, dim: number): Promise<HiddenFrame[]> {
  const outputs: HiddenFrame[] = [];
  let position = 0;
  for (const [step, data] of steps.entries()) {
    const rows = data.length / dim;
    let frame = encodeFrame({ requestId, step, position, dims: [1, rows, dim], data });
    for (const stage of chain) frame = await stage.forward(frame);
    outputs.push(decodeFrame(frame));
    position += rows;
  }
  await Promise.all(chain.map((stage) => stage.end(requestId)));
  return outputs;
}
