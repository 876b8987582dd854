/**
 * The device handshake in headless Chromium (worker/device/handshake.ts, run by an engine Web
 * Worker through the engine test page's `harness.handshake`): the WGSL matmul really runs and is checked on WebGPU (SwiftShader
 * here: correct, slow), onnxruntime-web's WASM is measured, and one block is timed per decode
 * step on either provider. Node's own tests (worker/device/*.test.ts) cover the rest with
 * onnxruntime-node and a fake GPU.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openApp, type App } from '../testkit/browser-app.ts';
import { syntheticConfig } from '../shared/model/synthetic/presets.ts';
import type { DeviceHandshake, HandshakeOptions } from '../worker/device/handshake.ts';
import type { LayerProbeReport } from '../worker/device/layer-probe.ts';
import { MATMUL_WGSL } from '../worker/device/webgpu-probe.ts';
import type { WebGpuProbeReport } from '../worker/device/webgpu-probe.ts';

let app: App;

beforeAll(async () => {
  app = await openApp('test/engine-test/', { waitFor: 'window.harness?.ready === true' });
});
afterAll(async () => {
  await app?.close();
});

const handshake = (options: HandshakeOptions): Promise<DeviceHandshake> => app.page.evaluate((o) => window.harness!.handshake(o), options);
const positiveFinite = (x: number) => Number.isFinite(x) && x > 0;

/** Short measurements: SwiftShader multiplies on the CPU, ~50x slower than WASM. */
const quick: HandshakeOptions = { targetMs: 100 };

describe('device handshake in Chromium', () => {
  it('measures WebGPU with a checked WGSL matmul, WASM, and a q4 block per decode step on WebGPU', async () => {
    const result = await handshake({ ...quick, layer: { config: syntheticConfig('tiny'), dtype: 'q4', decodeSteps: 8 } });
    expect(result.runtime).toBe('browser');
    expect(result.signature).toMatch(/^[0-9a-f]{64}$/);

    const webgpu = result.webgpu as WebGpuProbeReport;
    expect(webgpu.info.architecture).toBeTruthy();
    if (webgpu.info.vendor === 'google') expect(webgpu.info.architecture).toBe('swiftshader');
    expect(webgpu.limits.maxBufferSize).toBeGreaterThan(0);
    expect(webgpu.shaderF16).toBe(webgpu.features.includes('shader-f16'));
    expect(webgpu.matmul.size % 64).toBe(0);
    expect(positiveFinite(webgpu.matmul.gflops)).toBe(true);
    expect(webgpu.copy.bytes).toBeLessThanOrEqual(Math.min(64 << 20, webgpu.limits.maxBufferSize));
    expect(positiveFinite(webgpu.copy.gbps)).toBe(true);

    expect(result.wasm.executionProvider).toBe('wasm');
    expect(positiveFinite(result.wasm.matmul.gflops)).toBe(true);
    expect(positiveFinite(result.wasm.copy.gbps)).toBe(true);

    const layer = result.layer as LayerProbeReport;
    expect(layer).toMatchObject({ executionProvider: 'webgpu', dtype: 'q4', decodeSteps: 8, shape: { dim: 64, hiddenDim: 176 } });
    expect(positiveFinite(layer.msPerLayerDecode)).toBe(true);
    expect(app.errors).toEqual([]);
  });

  it('times a block on WASM and signs the same device the same way', async () => {
    const first = await handshake({ ...quick, layer: { config: syntheticConfig('tiny'), dtype: 'f32', executionProvider: 'wasm', decodeSteps: 8 } });
    const second = await handshake(quick);
    expect(first.layer).toMatchObject({ executionProvider: 'wasm', dtype: 'f32' });
    expect(positiveFinite((first.layer as LayerProbeReport).msPerLayerDecode)).toBe(true);
    expect(second.layer).toBeUndefined();
    expect(second.signature).toBe(first.signature);
  });

  it('refuses the speed of a shader that computes a wrong product, and keeps the signature', async () => {
    const good = await handshake({ ...quick, webgpu: {} });
    // Compiles and runs at full speed, but drops B from the product.
    const wrongShader = MATMUL_WGSL.replace('acc[i * 4u + j] += av * bv[j];', 'acc[i * 4u + j] += av;');
    expect(wrongShader).not.toBe(MATMUL_WGSL);
    const bad = await handshake({ ...quick, webgpu: { matmulShader: wrongShader } });
    expect(bad.webgpu).toMatchObject({ errorName: 'ComputeMismatchError', unavailable: expect.stringMatching(/matmul .* is wrong at/) });
    expect(bad.signature).toBe(good.signature);
  });
});
