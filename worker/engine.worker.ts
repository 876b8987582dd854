/**
 * The browser Web Worker entry: one shard engine per worker, onnxruntime-web with the WebGPU
 * execution provider first and WASM second (browser-deps.ts). The page wraps it with comlink
 * (web/engine-client.ts). onnxruntime's .wasm files are served under ORT_ASSET_PATH by whoever
 * serves the app (the signaling server, or the test server).
 */
import { createShardEngine } from './engine.ts';
import { exposeEngine } from './expose.ts';
import { browserEngineDeps } from './browser-deps.ts';

exposeEngine(createShardEngine(browserEngineDeps()));
