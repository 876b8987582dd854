/**
 * The e2e tests' engine page: no UI, only `window.harness`, a set of async functions that
 * Playwright calls with `page.evaluate(() => window.harness.x())` (e2e/harness.test.ts and the
 * engine tests). Everything a harness function returns crosses to Node as JSON, so it returns
 * plain objects (copies of browser objects, never the objects themselves).
 *
 * To add a capability: write an async function below and list it in `harness`; its type reaches
 * the tests through `EngineTestHarness`.
 */

import { deviceLoss, interleaved, refused, twoStage } from './engine-scenarios.ts';
import { benchEngine, handshakeInWorker } from './engine-bench.ts';

/** What this browser offers the shard engine: isolation (threaded WASM) and a WebGPU adapter. */
export interface GpuReport {
  /** True when the page is served with COOP/COEP, which threaded WASM (SharedArrayBuffer) needs. */
  crossOriginIsolated: boolean;
  adapter: { vendor: string; architecture: string; device: string; description: string } | null;
  features: string[];
}

// The few WebGPU members used here; the project does not carry @webgpu/types.
interface GpuAdapterLike {
  readonly info: { vendor: string; architecture: string; device: string; description: string };
  readonly features: ReadonlySet<string>;
}
interface GpuLike {
  requestAdapter(): Promise<GpuAdapterLike | null>;
}

async function gpu(): Promise<GpuReport> {
  const webgpu = (navigator as Navigator & { gpu?: GpuLike }).gpu;
  const adapter = (await webgpu?.requestAdapter()) ?? null;
  if (!adapter) return { crossOriginIsolated, adapter: null, features: [] };
  // GPUAdapterInfo's fields are prototype getters, invisible to JSON: copy them.
  const { vendor, architecture, device, description } = adapter.info;
  return {
    crossOriginIsolated,
    adapter: { vendor, architecture, device, description },
    features: [...adapter.features].sort(),
  };
}

// --- Device handshake (worker/device/handshake.ts; e2e/handshake.test.ts) -------------------
// Loaded on first call, so pages that never measure do not fetch onnxruntime.

/** Measures this browser as a donor would be measured: WebGPU (SwiftShader here), WASM, one block. */
async function handshake(options: import('../../worker/device/handshake.ts').HandshakeOptions = {}) {
  const [ort, { runHandshake }, { browserHost }] = await Promise.all([
    import('onnxruntime-web/webgpu'),
    import('../../worker/device/handshake.ts'),
    import('../../worker/device/host.ts'),
  ]);
  ort.env.wasm.wasmPaths = new URL('/ort/', location.href).href;
  ort.env.logLevel = 'error'; // as the engine worker: node-placement warnings are not errors
  return runHandshake(options, { ort, host: browserHost(navigator), gpu: navigator.gpu ?? null });
}

// --- end device handshake ------------------------------------------------------------------

const harness = {
  /** Set once this module has run; tests wait for it before calling anything else. */
  ready: true as const,
  gpu,
  // Shard engines in Web Workers (e2e/engine.test.ts).
  twoStage,
  interleaved,
  refused,
  deviceLoss,
  // bench/engine-bench.ts
  benchEngine,
  handshakeInWorker,
  // Device handshake (e2e/handshake.test.ts).
  handshake,
};

export type EngineTestHarness = typeof harness;

declare global {
  interface Window {
    harness?: EngineTestHarness;
  }
}

window.harness = harness;
