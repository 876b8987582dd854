import { describe, expect, it } from 'vitest';
import * as ort from 'onnxruntime-node';
import { syntheticConfig } from '../../shared/model/synthetic/presets.ts';
import { FAKE_LIMITS, fakeGpu } from '../../testkit/engine/fake-gpu.ts';
import { deviceSignature, runHandshake, signatureInput } from './handshake.ts';
import type { HandshakeOptions } from './handshake.ts';
import { browserHost } from './host.ts';
import { nodeHost } from './node-host.ts';

const positiveFinite = (x: number) => Number.isFinite(x) && x > 0;
/** Short measurements; the fake GPU multiplies in JavaScript, so its matmul stays small. */
const quick: HandshakeOptions = { targetMs: 30, webgpu: { maxMatmulSize: 128, maxCopyBytes: 1 << 20 }, wasm: { executionProvider: 'cpu', copyBytes: 8 << 20 } };

describe('runHandshake in Node without WebGPU', () => {
  it('reports the CPU speeds and the ms per layer of a model shape, signed by the host', async () => {
    const host = nodeHost();
    const handshake = await runHandshake({ ...quick, layer: { config: syntheticConfig('tiny'), dtype: 'f32', decodeSteps: 4 } }, { ort, host, wallClock: () => Date.UTC(2026, 10, 21) });

    expect(handshake.runtime).toBe('node');
    expect(handshake.signature).toMatch(/^[0-9a-f]{64}$/);
    expect(handshake.signature).toBe(await deviceSignature({ kind: 'cpu', runtime: 'node', cpuModel: host.cpuModel, cores: host.cores, platform: host.platform }));
    expect(handshake.webgpu).toEqual({ unavailable: 'WebGPU is not available (no navigator.gpu)' });
    expect(handshake.wasm.executionProvider).toBe('cpu');
    expect(positiveFinite(handshake.wasm.matmul.gflops)).toBe(true);
    expect(positiveFinite(handshake.wasm.copy.gbps)).toBe(true);
    expect(handshake.layer).toMatchObject({ executionProvider: 'cpu', dtype: 'f32', shape: { dim: 64, nHeads: 4, nKvHeads: 2 } });
    expect(positiveFinite((handshake.layer as { msPerLayerDecode: number }).msPerLayerDecode)).toBe(true);
    expect(handshake.measuredAt).toBe('2026-11-21T00:00:00.000Z');
    expect(JSON.parse(JSON.stringify(handshake))).toEqual(handshake);
  });

  it('gives the same signature on every run, though the measured speeds differ', async () => {
    const host = nodeHost();
    const first = await runHandshake(quick, { ort, host });
    const second = await runHandshake(quick, { ort, host });
    expect(second.signature).toBe(first.signature);
    expect(second.wasm.matmul.ms).not.toBe(first.wasm.matmul.ms);
  });

  it('reports a layer provider that cannot run as unavailable, by name, and still answers', async () => {
    const handshake = await runHandshake({ ...quick, layer: { config: syntheticConfig('tiny'), dtype: 'f32', executionProvider: 'cpu', prefillTokens: 300 } }, { ort, host: nodeHost() });
    expect(handshake.layer).toMatchObject({ errorName: 'DeviceProbeError', unavailable: expect.stringMatching(/^layer probe on cpu failed: prefill 300/) });
  });
});

describe('runHandshake with a WebGPU adapter', () => {
  const host = browserHost({ hardwareConcurrency: 8, platform: 'Linux x86_64' });

  it('measures the adapter and signs the handshake with its identity', async () => {
    const handshake = await runHandshake(quick, { ort, host, gpu: fakeGpu({ features: ['shader-f16'] }) });
    expect(handshake.webgpu).toMatchObject({ shaderF16: true, features: ['shader-f16'], limits: FAKE_LIMITS, matmul: { size: 128 }, copy: { bytes: 1 << 20 } });
    if (!('matmul' in handshake.webgpu)) throw new Error('expected WebGPU numbers');
    expect(handshake.signature).toBe(await deviceSignature(signatureInput(host, handshake.webgpu)));
    expect(handshake.wasm.executionProvider).toBe('cpu'); // asked for explicitly: onnxruntime-node has no wasm provider
  });

  it('keeps the signature of a device whose matmul is wrong, so it can be refused later', async () => {
    const good = await runHandshake(quick, { ort, host, gpu: fakeGpu() });
    const bad = await runHandshake(quick, { ort, host, gpu: fakeGpu({ matmul: 'wrong' }) });
    expect(bad.webgpu).toMatchObject({ errorName: 'ComputeMismatchError', unavailable: expect.stringMatching(/^WebGPU probe failed: matmul .* is wrong/) });
    expect(bad.signature).toBe(good.signature);
  });

  it('gives a different signature for different limits, features or adapter', async () => {
    const signature = async (gpu: GPU) => (await runHandshake(quick, { ort, host, gpu })).signature;
    const base = await signature(fakeGpu());
    expect(await signature(fakeGpu({ limits: { maxBufferSize: 1 << 30 } }))).not.toBe(base);
    expect(await signature(fakeGpu({ features: ['shader-f16'] }))).not.toBe(base);
    expect(await signature(fakeGpu({ info: { vendor: 'fake', architecture: 'other', device: '', description: '' } }))).not.toBe(base);
  });
});

describe('deviceSignature', () => {
  it('does not depend on key order', async () => {
    const a = await deviceSignature({ kind: 'cpu', runtime: 'node', cpuModel: 'x', cores: 2, platform: 'linux-x64' });
    const b = await deviceSignature({ platform: 'linux-x64', cores: 2, cpuModel: 'x', runtime: 'node', kind: 'cpu' });
    expect(a).toBe(b);
  });

  it('tells hosts apart by core count and platform', async () => {
    const base = { kind: 'cpu', runtime: 'browser', cores: 8, platform: 'Linux x86_64' } as const;
    const signature = await deviceSignature(base);
    expect(await deviceSignature({ ...base, cores: 4 })).not.toBe(signature);
    expect(await deviceSignature({ ...base, platform: 'MacIntel' })).not.toBe(signature);
  });
});
