/**
 * The quantized kernels on threads under Node (worker_threads): each product's rows split among
 * helpers sharing the kernels' memory give the same outputs, bit for bit, as one thread.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { quantizeMatrix } from '../../shared/model/quantize.ts';
import { createQuantizedGemv } from '../../shared/runtime/quantized/quantized-gemv.ts';
import { spawnNodeGemvHelper } from './gemv-helpers.ts';

const floats = (length: number) => fc.float32Array({ minLength: length, maxLength: length, min: -4, max: 4, noNaN: true, noDefaultInfinity: true });

describe('quantized GEMV on Node worker threads', () => {
  it('splits each product’s rows among threads sharing its memory, with the same outputs bit for bit as one thread, as memory grows, until closed', async () => {
    const one = await createQuantizedGemv();
    const three = await createQuantizedGemv({ threads: 3 }, { spawn: spawnNodeGemvHelper });
    try {
      expect([one.threads, three.threads]).toEqual([1, 3]);
      await fc.assert(
        fc.asyncProperty(fc.constantFrom(4 as const, 8 as const), fc.integer({ min: 1, max: 70 }), fc.integer({ min: 1, max: 130 }), fc.integer({ min: 1, max: 4 }), fc.integer({ min: 0, max: 2 ** 31 }), async (bits, n, k, count, seed) => {
          const x = fc.sample(floats(k), { seed, numRuns: 1 })[0];
          const matrices = Array.from({ length: count }, (_, i) => quantizeMatrix(fc.sample(floats(n * k), { seed: seed + 1 + i, numRuns: 1 })[0], n, k, bits));
          const [outsOne, outsThree] = [one, three].map((gemv) => {
            const outs = matrices.map(() => new Float32Array(n));
            gemv.multiply(x, matrices.map((m) => gemv.upload(m)), outs);
            return outs;
          });
          expect(outsThree).toEqual(outsOne);
        }),
        { numRuns: 40 },
      );
    } finally {
      three.close();
    }
    expect(() => three.multiply(new Float32Array(32), [three.upload(quantizeMatrix(new Float32Array(64), 2, 32, 4))], [new Float32Array(2)])).toThrow(/closed/);
  });


  it('gives up by name on a helper that stops answering, instead of waiting for ever', async () => {
    // a "helper" that started and then never computes (a crashed or killed worker)
    const gone = await createQuantizedGemv({ threads: 2, stallMs: 200 }, { spawn: async () => ({ terminate: () => undefined }) });
    const m = gone.upload(quantizeMatrix(new Float32Array(64 * 32).fill(1), 64, 32, 4));
    expect(() => gone.multiply(new Float32Array(32).fill(1), [m], [new Float32Array(64)])).toThrow(expect.objectContaining({ name: 'KernelThreadError', message: "1 of the kernels' 1 helper threads did not finish their share within 200 ms" }));
    gone.close();
  });
});
