/**
 * What a shard engine runs on in a browser Web Worker: onnxruntime-web (WebGPU, then WASM with
 * a donor's threads), navigator.gpu, fetch and the device handshake. Shared by the product's
 * engine worker (engine.worker.ts) and the test pages' faulty one.
 */
import * as ort from 'onnxruntime-web/webgpu';
import { ORT_ASSET_PATH } from '../shared/engine/api.ts';
import { defaultThreads } from './engine.ts';
import type { EngineDeps, EngineOrt } from './engine.ts';
import { runHandshake } from './device/handshake.ts';
import { browserHost } from './device/host.ts';
import { spawnGemvHelper } from './gemv-helpers.ts';

export function browserEngineDeps(): EngineDeps {
  ort.env.wasm.wasmPaths = new URL(ORT_ASSET_PATH, self.location.href).href;
  ort.env.logLevel = 'error';
  const cores = self.navigator.hardwareConcurrency || 1;
  // Set here so that what the engine reports is what onnxruntime will start; a donor's setting replaces it before any session.
  ort.env.wasm.numThreads = defaultThreads(cores);
  const gpu = self.navigator.gpu ?? null;
  return {
    ort: ort as unknown as EngineOrt,
    gpu,
    fetch: self.fetch.bind(self),
    handshake: (options, kernels) => runHandshake(options, { ort, host: browserHost(self.navigator), gpu, kernels }),
    computeThreads: {
      get: () => ort.env.wasm.numThreads ?? 1,
      set: (threads) => (ort.env.wasm.numThreads = threads),
      cores,
      isolated: self.crossOriginIsolated,
    },
    spawnKernelThread: spawnGemvHelper,
  };
}

/** The onnxruntime module those deps run on (the test worker reaches its WebGPU device through it). */
export { ort };
