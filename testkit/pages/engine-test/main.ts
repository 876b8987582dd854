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
import { benchEngine, handshake } from './engine-bench.ts';
import { serveForCalibration } from './trust-scenarios.ts';

/** What this browser offers the shard engine: isolation (threaded WASM) and a WebGPU adapter. */
export interface GpuReport {
  /** True when the page is served with COOP/COEP, which threaded WASM (SharedArrayBuffer) needs. */
  crossOriginIsolated: boolean;
  adapter: { vendor: string; architecture: string; device: string; description: string } | null;
  features: string[];
}

async function gpu(): Promise<GpuReport> {
  const adapter = (await navigator.gpu?.requestAdapter()) ?? null;
  if (!adapter) return { crossOriginIsolated, adapter: null, features: [] };
  // GPUAdapterInfo's fields are prototype getters, invisible to JSON: copy them.
  const { vendor, architecture, device, description } = adapter.info;
  return {
    crossOriginIsolated,
    adapter: { vendor, architecture, device, description },
    features: [...adapter.features].sort(),
  };
}

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
  // The device handshake, measured in an engine worker as a donor tab's is (e2e/handshake.test.ts, bench engine).
  handshake,
  // A stage's every step on one provider, for the cross-EP fingerprint check (e2e/trust-calibration.test.ts).
  serveForCalibration,
};

export type EngineTestHarness = typeof harness;

declare global {
  interface Window {
    harness?: EngineTestHarness;
  }
}

window.harness = harness;
