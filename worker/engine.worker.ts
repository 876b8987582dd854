/**
 * The browser Web Worker entry: one shard engine per worker, onnxruntime-web with the WebGPU
 * execution provider first and WASM second. The page wraps it with comlink
 * (web/engine-client.ts). onnxruntime's .wasm files are served under ORT_ASSET_PATH by whoever
 * serves the app (the signaling server, or the test server).
 */
import * as ort from 'onnxruntime-web/webgpu';
import { ORT_ASSET_PATH } from '../shared/engine/api.ts';
import { createShardEngine } from './engine.ts';
import type { EngineOrt } from './engine.ts';
import { exposeEngine } from './expose.ts';
import { runHandshake } from './device/handshake.ts';
import { browserHost } from './device/host.ts';

ort.env.wasm.wasmPaths = new URL(ORT_ASSET_PATH, self.location.href).href;
ort.env.logLevel = 'error';

const gpu = self.navigator.gpu ?? null;
exposeEngine(
  createShardEngine({
    ort: ort as unknown as EngineOrt,
    gpu,
    fetch: self.fetch.bind(self),
    handshake: (options) => runHandshake(options, { ort, host: browserHost(self.navigator), gpu }),
  }),
);
