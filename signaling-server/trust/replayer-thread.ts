/**
 * The validator's replayer in a worker thread (replayer.worker.ts), behind the same Replayer
 * interface as the in-process one (replayer.ts): the server's event loop keeps relaying,
 * coordinating and answering while a replay computes.
 */
import { Worker } from 'node:worker_threads';
import * as Comlink from 'comlink';
import nodeEndpoint from 'comlink/dist/esm/node-adapter.mjs';
import { installErrorTransfer } from '../../shared/engine/error-transfer.ts';
import type { Replayer, ReplayerOptions } from './replayer.ts';
import type { ExposedReplayer } from './replayer.worker.ts';

export function startReplayerThread(options: ReplayerOptions): Replayer {
  installErrorTransfer(Comlink.transferHandlers as never);
  const worker = new Worker(new URL('./replayer.worker.ts', import.meta.url), { workerData: options });
  const remote = Comlink.wrap<ExposedReplayer>(nodeEndpoint(worker));
  return {
    replay: (layers, input, pass = 1) => remote.replay(layers, input.steps, pass),
    async close() {
      await remote.close().catch(() => undefined);
      remote[Comlink.releaseProxy]();
      await worker.terminate();
    },
  };
}
