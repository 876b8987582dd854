/**
 * An onnxruntime-node session whose run() runs at once. The public InferenceSession.run defers
 * every run to the next turn of the event loop (setImmediate) and then runs it synchronously
 * anyway, so the deferral buys a process that only chains sessions nothing: it costs a trip
 * through the event loop per run, and that code is cache-cold after the previous stage streamed
 * its weights. Per run this was ~0.1 ms of a 110m f32 decode step on 2 vCPUs, paid once per
 * stage (bench local): the local runner's in-process stages use inline sessions.
 *
 * An inline run does not let the event loop turn, so sessions run back to back would starve
 * its I/O: the local runner's pipeline turns it once per token (PipelineDeps.beforeStep), and
 * the server's sessions (the validator's replays, the grid client's head) stay public.
 *
 * It drives the same native session the public API wraps, through the package's typed binding
 * module (onnxruntime-node/dist/binding.js).
 */
import { binding, initOrt } from 'onnxruntime-node/dist/binding.js';
import type { OrtSession, OrtSessionOptions, OrtTensor } from '../../shared/runtime/ort.ts';

/** One turn of the event loop: what a chain of inline sessions awaits once per token. */
export const eventLoopTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

export function createInlineSession(model: string | Uint8Array, options: OrtSessionOptions): OrtSession {
  initOrt();
  const native = new binding.InferenceSession();
  if (typeof model === 'string') native.loadModel(model, options);
  else native.loadModel(model.buffer as ArrayBuffer, model.byteOffset, model.byteLength, options);
  const inputNames = native.inputMetadata.map((m) => m.name);
  const outputNames = native.outputMetadata.map((m) => m.name);
  const inputSet = new Set(inputNames);
  // Every output, onnxruntime allocating each (null); the native run only reads this.
  const fetches: Record<string, null> = Object.fromEntries(outputNames.map((name) => [name, null]));
  return {
    inputNames,
    outputNames,
    async run(feeds: Record<string, OrtTensor>) {
      // The native run checks types and shapes against the graph; names are checked here so a
      // missing input names itself as the public API's does.
      for (const name of inputNames) if (!(name in feeds)) throw new Error(`input '${name}' is missing in 'feeds'.`);
      for (const name in feeds) if (!inputSet.has(name)) throw new Error(`'${name}' is not an input of this graph.`);
      return native.run(feeds, fetches, {}) as Record<string, OrtTensor>;
    },
    async release() {
      native.dispose();
    },
  } as OrtSession;
}
