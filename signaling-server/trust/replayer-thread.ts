/**
 * The validator's replayer in a worker thread (replayer.worker.ts), behind the same Replayer
 * interface as the in-process one (replayer.ts): the server's event loop keeps relaying,
 * coordinating and answering while a replay computes.
 */
import { Worker } from 'node:worker_threads';
import * as Comlink from 'comlink';
import nodeEndpoint from 'comlink/dist/esm/node-adapter.mjs';
import { installErrorTransfer } from '../../shared/engine/error-transfer.ts';
import { replayerClosed } from './replayer.ts';
import type { Replayer, ReplayerOptions } from './replayer.ts';
import type { ExposedReplayer } from './replayer.worker.ts';

/** The thread starts with the first replay: a grid that nobody commits to never loads onnxruntime for it. */
export function startReplayerThread(options: ReplayerOptions): Replayer {
  let thread: { worker: Worker; remote: Comlink.Remote<ExposedReplayer> } | undefined;
  let closed = false;
  const started = () => {
    if (!thread) {
      installErrorTransfer(Comlink.transferHandlers as never);
      const worker = new Worker(new URL('./replayer.worker.ts', import.meta.url), { workerData: options });
      thread = { worker, remote: Comlink.wrap<ExposedReplayer>(nodeEndpoint(worker)) };
    }
    return thread;
  };
  return {
    replay(layers, input, pass = 1) {
      // After close() a replay would start a thread nobody ends, keeping the server's process alive.
      if (closed) return replayerClosed();
      return started().remote.replay(layers, input.steps, pass);
    },
    async close() {
      closed = true;
      if (!thread) return;
      const { worker, remote } = thread;
      thread = undefined;
      // The thread is terminated only once its replayer has closed (running replays finished, sessions
      // released): a thread terminated inside an onnxruntime-node call aborts the whole process, as the
      // binding's error cannot be thrown into a stopping thread ("terminate called after throwing an
      // instance of 'Napi::Error'", seen when the server closed while a replay ran).
      await remote.close().catch(() => undefined);
      remote[Comlink.releaseProxy]();
      await worker.terminate();
    },
  };
}
