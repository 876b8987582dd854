/**
 * Runs a shard engine in a Node worker thread, for headless providers and the validator's
 * replays: the same engine and comlink contract as a browser tab's Web Worker, on
 * onnxruntime-node. Errors cross with their class (shared/engine/error-transfer.ts).
 */
import { Worker } from 'node:worker_threads';
import * as Comlink from 'comlink';
import nodeEndpoint from 'comlink/dist/esm/node-adapter.mjs';
import { installErrorTransfer } from '../../shared/engine/error-transfer.ts';
import type { ExposedShardEngine } from '../engine.ts';

export interface NodeEngineHost {
  engine: Comlink.Remote<ExposedShardEngine>;
  terminate(): Promise<void>;
}

export function startNodeEngine(): NodeEngineHost {
  installErrorTransfer(Comlink.transferHandlers as never);
  const worker = new Worker(new URL('./engine.node-worker.ts', import.meta.url));
  const engine = Comlink.wrap<ExposedShardEngine>(nodeEndpoint(worker));
  return {
    engine,
    async terminate() {
      // Unloaded first (its running steps finish, its session is released): a thread terminated
      // inside an onnxruntime-node call aborts the whole process (see signaling-server/trust/replayer-thread.ts).
      await engine.unload().catch(() => undefined);
      engine[Comlink.releaseProxy]();
      await worker.terminate();
    },
  };
}
