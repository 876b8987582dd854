/**
 * The worker_threads entry of the validator's replayer (replayer-thread.ts): onnxruntime-node's
 * `run` is synchronous, so a replay on the server's main thread would stall the relay, the
 * coordinator and the gateway's own generations for as long as it computes.
 */
import { parentPort, workerData } from 'node:worker_threads';
import * as Comlink from 'comlink';
import nodeEndpoint from 'comlink/dist/esm/node-adapter.mjs';
import { installErrorTransfer } from '../../shared/engine/error-transfer.ts';
import type { Manifest } from '../../shared/model/manifest.ts';
import type { LayerRange } from '../../shared/runtime/stage.ts';
import { createReplayer } from './replayer.ts';

if (!parentPort) throw new Error('replayer.worker.ts must run in a worker thread');
installErrorTransfer(Comlink.transferHandlers as never);
const replayer = createReplayer(workerData as { dir: string; manifest: Manifest });

const exposed = {
  async replay(layers: LayerRange, steps: Float32Array[], pass: 1 | 2) {
    const outputs = await replayer.replay(layers, { steps }, pass);
    return Comlink.transfer(outputs, outputs.map((o) => o.buffer as ArrayBuffer));
  },
  close: () => replayer.close(),
};
export type ExposedReplayer = typeof exposed;
Comlink.expose(exposed, nodeEndpoint(parentPort));
