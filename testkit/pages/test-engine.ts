/**
 * The page side of the test engine worker (test-engine.worker.ts): the engine client
 * (web/engine-client.ts) started on that worker instead of the product's.
 */
import type { FaultyEngine } from '../engine/faulty-engine.ts';
import { startEngineWorker } from '../../web/engine-client.ts';
import type { EngineWorker } from '../../web/engine-client.ts';

export interface TestEngine extends FaultyEngine {
  /** destroys the WebGPU device the shard runs on, as a driver reset would; false when it runs on none */
  destroyGpuDevice(): Promise<boolean>;
}

export function startTestEngineWorker(): EngineWorker<TestEngine> {
  return startEngineWorker<TestEngine>(() => new Worker(new URL('./test-engine.worker.ts', import.meta.url), { type: 'module', name: 'infermesh-test-engine' }));
}
