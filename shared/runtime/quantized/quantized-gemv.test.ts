import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { dequantizeMatrix, quantizeMatrix } from '../../model/quantize.ts';
import { createQuantizedGemv } from './quantized-gemv.ts';

/** W x in double precision, on the values the quantized matrix stands for. */
function exact(w: Float32Array, n: number, k: number, x: Float32Array): Float64Array {
  const y = new Float64Array(n);
  for (let r = 0; r < n; r++) for (let c = 0; c < k; c++) y[r] += w[r * k + c] * x[c];
  return y;
}

const floats = (length: number) => fc.float32Array({ minLength: length, maxLength: length, min: -4, max: 4, noNaN: true, noDefaultInfinity: true });

describe('quantized GEMV (WASM SIMD)', () => {
  it('multiplies by exactly the values a q4/q8 matrix stands for, up to the int16 rounding of each block of inputs', async () => {
    const gemv = await createQuantizedGemv();
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(4 as const, 8 as const),
        fc.integer({ min: 1, max: 40 }),
        fc.integer({ min: 1, max: 150 }),
        fc.integer({ min: 0, max: 2 ** 31 }),
        async (bits, n, k, seed) => {
          const w = fc.sample(floats(n * k), { seed, numRuns: 1 })[0];
          const x = fc.sample(floats(k), { seed: seed + 1, numRuns: 1 })[0];
          const q = quantizeMatrix(w, n, k, bits);
          const out = new Float32Array(n);
          gemv.multiply(x, [gemv.upload(q)], [out]);
          const d = dequantizeMatrix(q);
          const want = exact(d, n, k, x);
          // Each input is off by at most half of its block's max|x| / 32767; each product by that times |w|.
          const blockMax = (c: number) => {
            let m = 0;
            for (let i = c - (c % 32); i < Math.min(k, c - (c % 32) + 32); i++) m = Math.max(m, Math.abs(x[i]));
            return m;
          };
          for (let r = 0; r < n; r++) {
            let bound = 0;
            for (let c = 0; c < k; c++) bound += (Math.abs(d[r * k + c]) * blockMax(c)) / 32767 / 2;
            expect(Math.abs(out[r] - want[r])).toBeLessThanOrEqual(bound + 1e-5 * (1 + Math.abs(want[r])));
          }
        },
      ),
      { numRuns: 60 },
    );
  });

  it('shares one quantized input among matrices of the same width, and keeps earlier uploads intact as memory grows', async () => {
    const gemv = await createQuantizedGemv();
    const k = 96;
    const x = Float32Array.from({ length: k }, (_, i) => Math.sin(i));
    const matrices = [4, 8, 4].map((bits, i) => quantizeMatrix(Float32Array.from({ length: 33 * k }, (_, j) => Math.cos(i + j)), 33, k, bits as 4 | 8));
    const packed = matrices.map((m) => gemv.upload(m));
    // 4 MiB more weights: the kernel's memory grows, which moves nothing already there.
    gemv.upload(quantizeMatrix(new Float32Array(4096 * 1024), 4096, 1024, 8));
    const outs = matrices.map(() => new Float32Array(33));
    gemv.multiply(x, packed, outs);
    matrices.forEach((m, i) => {
      const want = exact(dequantizeMatrix(m), 33, k, x);
      outs[i].forEach((v, r) => expect(v).toBeCloseTo(want[r], 3));
    });
    expect(gemv.bytes()).toBeGreaterThan(4096 * 1024);
  });

  it('answers NaN for an input that is not finite, as a float GEMV does', async () => {
    const gemv = await createQuantizedGemv();
    const m = gemv.upload(quantizeMatrix(new Float32Array(64).fill(1), 2, 32, 4));
    const out = new Float32Array(2);
    gemv.multiply(Float32Array.from({ length: 32 }, (_, i) => (i === 5 ? Infinity : 1)), [m], [out]);
    expect(Array.from(out)).toEqual([NaN, NaN]);
  });

  it('names the sizes when a matrix and its buffers do not fit', async () => {
    const gemv = await createQuantizedGemv();
    const q = quantizeMatrix(new Float32Array(64), 2, 32, 4);
    expect(() => gemv.upload({ ...q, scales: new Float32Array(1) })).toThrow(/a 2x32 q4 matrix needs 32 bytes and 2 scales, got 32 and 1/);
    expect(() => gemv.multiply(new Float32Array(31), [gemv.upload(q)], [new Float32Array(2)])).toThrow(/takes 32 inputs into 2 outputs, got 31 into 2/);
  });

  it('runs on one thread where no helper can start', async () => {
    const gemv = await createQuantizedGemv({ threads: 4 });
    expect(gemv.threads).toBe(1);
    await expect(createQuantizedGemv({ threads: 0 })).rejects.toThrow(/threads must be a whole number of at least 1, got 0/);
  });
});
