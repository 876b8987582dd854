/**
 * The engine scenarios of testkit/engine/scenarios.ts, run in this page with engines in Web
 * Workers and packages served under /packages/<name>/. The page runs the embedding and head
 * itself on onnxruntime-web's WASM provider, as a client tab does. (The WebGPU bundle also
 * carries the WASM provider; the bench functions need both in one onnxruntime instance.)
 */
import * as ort from 'onnxruntime-web/webgpu';
import { ORT_ASSET_PATH } from '../../../shared/engine/api.ts';
import type { ExecutionProvider, ShardSource } from '../../../shared/engine/api.ts';
import { parseManifest } from '../../../shared/model/manifest.ts';
import { encodeFrame } from '../../../shared/protocol/frame.ts';
import type { EngineOrt } from '../../../worker/engine.ts';
import { generateThroughEngines, interleavedRequests, refusals } from '../../engine/scenarios.ts';
import { startEngineWorker } from '../../../web/engine-client.ts';
import type { EngineWorker } from '../../../web/engine-client.ts';
import { startTestEngineWorker } from '../test-engine.ts';

ort.env.wasm.wasmPaths = new URL(ORT_ASSET_PATH, location.href).href;
ort.env.logLevel = 'error';

export { ort };
export const packageUrl = (name: string) => new URL(`/packages/${name}`, location.href).href;
export const read = (name: string) => async (path: string) => {
  const response = await fetch(`${packageUrl(name)}/${path}`);
  if (!response.ok) throw new Error(`GET ${path}: HTTP ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
};
export const manifestOf = async (name: string) => parseManifest(new TextDecoder().decode(await read(name)('manifest.json')), name);

/** Two engines (two Web Workers), the blocks split between them; greedy generation. */
/** `threads`: each engine's, as a donor sets them (default: the engine's own default). */
export async function twoStage(name: string, providers: ExecutionProvider[], maxTokens: number, threads?: number) {
  const manifest = await manifestOf(name);
  const split = Math.ceil(manifest.config.nLayers / 2);
  const workers = [startEngineWorker(), startEngineWorker()];
  try {
    if (threads !== undefined) await Promise.all(workers.map((w) => w.engine.threads(threads)));
    return await generateThroughEngines({
      ort: ort as unknown as EngineOrt,
      read: read(name),
      source: { kind: 'url', baseUrl: packageUrl(name) },
      engines: workers.map((w) => w.engine),
      ranges: [{ start: 0, end: split }, { start: split, end: manifest.config.nLayers }],
      prompt: 'Once upon a time',
      maxTokens,
      executionProviders: providers,
    });
  } finally {
    workers.forEach((w) => w.terminate());
  }
}

async function loadedWorker<W extends EngineWorker>(name: string, providers: ExecutionProvider[], layers?: { start: number; end: number }, start: () => W = startEngineWorker as () => W) {
  const manifest = await manifestOf(name);
  const worker = start();
  const report = await worker.engine.load({
    modelId: manifest.id,
    layers: layers ?? { start: 0, end: manifest.config.nLayers },
    source: { kind: 'url', baseUrl: packageUrl(name) },
    executionProviders: providers,
  });
  return { manifest, worker, report };
}

export async function interleaved(name: string, providers: ExecutionProvider[]) {
  const { manifest, worker, report } = await loadedWorker(name, providers);
  try {
    return { report, ...(await interleavedRequests(worker.engine, manifest.config.dim)) };
  } finally {
    worker.terminate();
  }
}

export async function refused(name: string, otherName: string, providers: ExecutionProvider[]) {
  const layers = { start: 0, end: 2 };
  const { manifest, worker, report } = await loadedWorker(name, providers, layers);
  try {
    const files: Record<string, Uint8Array> = {};
    for (const f of manifest.files) files[f.path] = await read(name)(f.path);
    files['block-1.data'][files['block-1.data'].length >> 1] ^= 0xff;
    const corrupt: ShardSource = { kind: 'bytes', manifest: new TextDecoder().decode(await read(name)('manifest.json')), files };
    const other = await manifestOf(otherName);
    const cases = await refusals(worker.engine, {
      dim: manifest.config.dim,
      modelId: manifest.id,
      layers,
      corruptSource: corrupt,
      otherModelId: other.id,
      goodSource: { kind: 'url', baseUrl: packageUrl(name) },
    });
    return { report, cases };
  } finally {
    worker.terminate();
  }
}

/** Destroys the worker's GPU device mid-request and records what the engine does next. */
export async function deviceLoss(name: string) {
  // The test engine worker: the product's cannot be told to lose its device.
  const { manifest, worker, report } = await loadedWorker(name, ['webgpu', 'wasm'], undefined, startTestEngineWorker);
  const dim = manifest.config.dim;
  const frame = (id: string, position: number) => encodeFrame({ requestId: id, step: position, position, dims: [1, 1, dim], data: new Float32Array(dim).fill(0.25) });
  const outcome = async (p: Promise<unknown>) => p.then(() => 'ok', (e: Error) => `${e.name}: ${e.message}`);
  try {
    const before = await outcome(worker.engine.step(frame('a', 0)));
    const destroyed = await worker.engine.destroyGpuDevice();
    const lostRequest = await outcome(worker.engine.step(frame('a', 1)));
    const newRequest = await outcome(worker.engine.step(frame('b', 0)));
    const memory = await worker.engine.memory();
    const events = await worker.engine.events();
    return { report, before, destroyed, lostRequest, newRequest, memory, events };
  } finally {
    worker.terminate();
  }
}
