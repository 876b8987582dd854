/**
 * The test pages' engine worker: the browser engine worker (worker/engine.worker.ts) with the
 * kit's cheats on top, so a test can make a tab serve dishonestly (setFault, before the load) or
 * lose its GPU (destroyGpuDevice). The donor page a visitor loads never starts this worker.
 */
import { exposeEngine } from '../../worker/expose.ts';
import { browserEngineDeps, ort } from '../../worker/browser-deps.ts';
import { createFaultyEngine } from '../engine/faulty-engine.ts';
import type { TestEngine } from './test-engine.ts';

const engine: TestEngine = {
  ...createFaultyEngine(browserEngineDeps()),
  async destroyGpuDevice() {
    // The device onnxruntime runs the shard on, which is the engine's (worker/engine.ts reads it there too).
    const device = await (ort.env.webgpu as { device?: Promise<GPUDevice> | GPUDevice }).device;
    if (!device) return false;
    device.destroy();
    await device.lost;
    return true;
  },
};
exposeEngine(engine);
