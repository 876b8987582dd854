import { describe, expect, it } from 'vitest';
import { FAKE_ADAPTER_INFO, FAKE_LIMITS, fakeGpu } from '../../testkit/engine/fake-gpu.ts';
import { describeAdapter, MATMUL_WGSL, probeWebGpu } from './webgpu-probe.ts';
import { rejection } from '../../testkit/rejection.ts';

const adapterOf = async (gpu: GPU) => (await gpu.requestAdapter())!;
/** Small sizes: the fake multiplies on the CPU in JavaScript. */
const quick = { targetMs: 20, maxMatmulSize: 128, maxCopyBytes: 1 << 20 };

describe('describeAdapter', () => {
  it('copies info, every prototype-held limit and the sorted features into plain JSON', async () => {
    const adapter = await adapterOf(fakeGpu({ features: ['timestamp-query', 'shader-f16', 'float32-filterable'] }));
    const description = describeAdapter(adapter);
    expect(JSON.parse(JSON.stringify(description))).toEqual({
      info: { ...FAKE_ADAPTER_INFO, isFallbackAdapter: false },
      limits: FAKE_LIMITS,
      features: ['float32-filterable', 'shader-f16', 'timestamp-query'],
      shaderF16: true,
    });
  });

  it('reports no shader-f16 where the adapter lacks it (SwiftShader)', async () => {
    expect(describeAdapter(await adapterOf(fakeGpu())).shaderF16).toBe(false);
  });
});

describe('probeWebGpu', () => {
  it('measures positive, finite matmul GFLOP/s and copy GB/s, within the adapter limits', async () => {
    const report = await probeWebGpu(quick, { adapter: await adapterOf(fakeGpu()) });
    expect(report.matmul.size).toBe(128);
    expect(report.matmul.gflops).toBeGreaterThan(0);
    expect(Number.isFinite(report.matmul.gflops)).toBe(true);
    expect(report.copy.bytes).toBe(1 << 20);
    expect(report.copy.gbps).toBeGreaterThan(0);
    expect(Number.isFinite(report.copy.gbps)).toBe(true);
  });

  it('sizes the copy down to maxBufferSize and the matmul to maxStorageBufferBindingSize', async () => {
    const gpu = fakeGpu({ limits: { maxBufferSize: 256 << 10, maxStorageBufferBindingSize: 16 << 10 } });
    const report = await probeWebGpu({ targetMs: 20 }, { adapter: await adapterOf(gpu) });
    expect(report.copy.bytes).toBe(256 << 10);
    expect(report.matmul.size).toBe(64); // 64×64 floats are 16 KiB
  });

  it('refuses to report a speed for a matmul whose result is wrong', async () => {
    const err = await rejection(probeWebGpu(quick, { adapter: await adapterOf(fakeGpu({ matmul: 'wrong' })) }));
    expect(err.name).toBe('ComputeMismatchError');
    expect(err.message).toMatch(/WGSL matmul 128: matmul \[128×128\]·\[128×128\] is wrong at/);
  });

  it('refuses a copy that did not copy', async () => {
    const err = await rejection(probeWebGpu(quick, { adapter: await adapterOf(fakeGpu({ copy: 'skipped' })) }));
    expect(err.name).toBe('DeviceProbeError');
    expect(err.message).toMatch(/did not copy the bytes at offset 0/);
  });

  it('fails by name on a shader that does not compile and on a validation error', async () => {
    const broken = await rejection(probeWebGpu({ ...quick, matmulShader: 'fn main() {}' }, { adapter: await adapterOf(fakeGpu()) }));
    expect(broken.name).toBe('DeviceProbeError');
    expect(broken.message).toMatch(/matmul shader does not compile: line 1: no @compute entry point/);
    const invalid = await rejection(probeWebGpu(quick, { adapter: await adapterOf(fakeGpu({ validationError: 'binding too small' })) }));
    expect(invalid.name).toBe('DeviceProbeError');
    expect(invalid.message).toMatch(/matmul: binding too small/);
  });

  it('ships a 16×16-invocation kernel that needs no more than the default limits', () => {
    expect(MATMUL_WGSL).toMatch(/@workgroup_size\(16, 16\)/);
    const shared = [...MATMUL_WGSL.matchAll(/var<workgroup> \w+: array<f32, (\d+)>/g)].reduce((s, m) => s + Number(m[1]) * 4, 0);
    expect(shared).toBeLessThanOrEqual(16384);
  });
});
