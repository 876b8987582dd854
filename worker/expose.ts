/**
 * Exposes a shard engine over a comlink endpoint (a Web Worker's global scope or a
 * worker_threads parent port): errors keep their class, and output frames are transferred
 * rather than copied (each frame owns its buffer, so the worker gives it away safely).
 */
import * as Comlink from 'comlink';
import { installErrorTransfer } from '../shared/engine/error-transfer.ts';
import type { ExposedShardEngine } from './engine.ts';

export function exposeEngine(engine: ExposedShardEngine, endpoint?: Comlink.Endpoint): void {
  installErrorTransfer(Comlink.transferHandlers as never);
  const api: ExposedShardEngine = {
    ...engine,
    async step(frame) {
      const out = await engine.step(frame);
      return Comlink.transfer(out, [out.buffer as ArrayBuffer]);
    },
  };
  Comlink.expose(api, endpoint);
}
