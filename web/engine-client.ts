/**
 * Starts a shard engine in a Web Worker and wraps it with comlink: the page side of the
 * engine contract (shared/engine/api.ts). Errors arrive with their class; frames sent with
 * `stepTransfer` give their buffer to the worker instead of copying it.
 */
import * as Comlink from 'comlink';
import { installErrorTransfer } from '../shared/engine/error-transfer.ts';
import type { ExposedShardEngine } from '../worker/engine.ts';

export interface EngineWorker<E extends ExposedShardEngine = ExposedShardEngine> {
  engine: Comlink.Remote<E>;
  /** Sends a frame without copying; the caller's buffer is detached afterwards. */
  stepTransfer(frame: Uint8Array): Promise<Uint8Array>;
  terminate(): void;
}

const engineWorker = () => new Worker(new URL('../worker/engine.worker.ts', import.meta.url), { type: 'module', name: 'infermesh-engine' });

/** `spawn` starts the worker (default: the product's engine worker, worker/engine.worker.ts). */
export function startEngineWorker<E extends ExposedShardEngine = ExposedShardEngine>(spawn: () => Worker = engineWorker): EngineWorker<E> {
  installErrorTransfer(Comlink.transferHandlers as never);
  const worker = spawn();
  const engine = Comlink.wrap<E>(worker);
  return {
    engine,
    stepTransfer: (frame) => engine.step(Comlink.transfer(frame, [frame.buffer as ArrayBuffer])) as Promise<Uint8Array>,
    terminate() {
      engine[Comlink.releaseProxy]();
      worker.terminate();
    },
  };
}
