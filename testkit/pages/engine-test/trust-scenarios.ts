/**
 * The cross-EP trust calibration's page side (e2e/trust-calibration.test.ts): one engine in a
 * Web Worker serves a layer range on the provider asked for, over the stage inputs the test
 * computed in Node, and hands every step's output back. Inputs and outputs cross
 * page.evaluate as Float32Arrays (Playwright carries typed arrays as base64 of their bytes).
 */
import type { ExecutionProvider } from '../../../shared/engine/api.ts';
import type { LayerRange } from '../../../shared/runtime/stage.ts';
import { manifestOf, packageUrl } from './engine-scenarios.ts';
import { serveSteps } from './served-steps.ts';
import type { ServedRequest } from './served-steps.ts';
import { startEngineWorker } from '../../../web/engine-client.ts';

export async function serveForCalibration(name: string, provider: ExecutionProvider, layers: LayerRange, requests: ServedRequest[]) {
  const manifest = await manifestOf(name);
  const worker = startEngineWorker();
  try {
    const report = await worker.engine.load({ modelId: manifest.id, layers, source: { kind: 'url', baseUrl: packageUrl(name) }, executionProviders: [provider] });
    const started = performance.now();
    const outputs = await serveSteps(worker.engine, manifest.config.dim, requests, `${provider}-${layers.start}-${layers.end}`);
    return { report, outputs, serveMs: performance.now() - started };
  } finally {
    worker.terminate();
  }
}
