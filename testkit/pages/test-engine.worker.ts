/**
 * The test pages' engine worker: the browser engine worker (worker/engine.worker.ts) with the
 * kit's cheats on top, so a test can make a tab serve dishonestly (setFault, before the load) or
 * lose its GPU (destroyGpuDevice). The donor page a visitor loads never starts this worker.
 */
import * as ort from 'onnxruntime-web/webgpu';
import { ORT_ASSET_PATH } from '../../shared/engine/api.ts';
import type { EngineOrt } from '../../worker/engine.ts';
import { exposeEngine } from '../../worker/expose.ts';
import { runHandshake } from '../../worker/device/handshake.ts';
import { browserHost } from '../../worker/device/host.ts';
import { createFaultyEngine } from '../engine/faulty-engine.ts';
import type { TestEngine } from './test-engine.ts';

ort.env.wasm.wasmPaths = new URL(ORT_ASSET_PATH, self.location.href).href;
ort.env.logLevel = 'error';

const gpu = self.navigator.gpu ?? null;
const engine: TestEngine = {
  ...createFaultyEngine({
    ort: ort as unknown as EngineOrt,
    gpu,
    fetch: self.fetch.bind(self),
    handshake: (options) => runHandshake(options, { ort, host: browserHost(self.navigator), gpu }),
  }),
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
