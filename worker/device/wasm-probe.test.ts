import { describe, expect, it } from 'vitest';
import * as ort from 'onnxruntime-node';
import type * as OrtWeb from 'onnxruntime-web';
import type { OrtModule } from './ort-module.ts';
import { measureTypedArrayCopy, probeWasm } from './wasm-probe.ts';
import { rejection } from '../../testkit/rejection.ts';

// Both runtimes' namespaces are what the probes take as `ort`.
const nodeFits: OrtModule = ort;
const webFits: OrtModule = null as unknown as typeof OrtWeb;
void [nodeFits, webFits];

const positiveFinite = (x: number) => Number.isFinite(x) && x > 0;

/** onnxruntime whose MatMul answers with `answer(a)` instead of computing. */
function fakeOrt(answer: (a: Float32Array) => Float32Array): OrtModule {
  return {
    Tensor: ort.Tensor,
    InferenceSession: {
      create: async () => ({
        inputNames: ['a'],
        outputNames: ['c'],
        run: async (feeds: Record<string, ort.Tensor>) => ({ c: new ort.Tensor('float32', answer(feeds.a.data as Float32Array), [128, 1024]) }),
        release: async () => {},
      }) as never,
    },
  };
}

describe('probeWasm', () => {
  it('measures onnxruntime CPU matmul GFLOP/s on [128, 1024] × [1024, 1024] and copy GB/s over 64 MiB', async () => {
    const report = await probeWasm({ executionProvider: 'cpu', targetMs: 50 }, { ort });
    expect(report.executionProvider).toBe('cpu');
    expect(report.matmul).toMatchObject({ m: 128, k: 1024, n: 1024 });
    expect(positiveFinite(report.matmul.gflops)).toBe(true);
    expect(report.matmul.reps).toBeGreaterThan(0);
    expect(report.copy.bytes).toBe(64 << 20);
    expect(positiveFinite(report.copy.gbps)).toBe(true);
  });

  it('refuses to report a speed when the runtime returns a wrong product', async () => {
    const err = await rejection(probeWasm({ targetMs: 20 }, { ort: fakeOrt(() => new Float32Array(128 * 1024)) }));
    expect(err.name).toBe('ComputeMismatchError');
    expect(err.message).toMatch(/onnxruntime wasm MatMul \[128×1024\]·\[1024×1024\]: matmul .* is wrong at \(0, 0\)/);
  });

  it('fails by name when onnxruntime cannot open the graph', async () => {
    const failing: OrtModule = { Tensor: ort.Tensor, InferenceSession: { create: () => Promise.reject(new Error('no backend found')) } };
    const err = await rejection(probeWasm({ targetMs: 20 }, { ort: failing }));
    expect(err.name).toBe('DeviceProbeError');
    expect(err.message).toMatch(/cannot open the matmul graph: no backend found/);
  });
});

describe('measureTypedArrayCopy', () => {
  it('copies whole 4 KiB pages and reports bytes per second', async () => {
    const copy = await measureTypedArrayCopy((1 << 20) + 100, 20);
    expect(copy.bytes).toBe(1 << 20);
    expect(positiveFinite(copy.gbps)).toBe(true);
  });
});
