import { afterAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { createSyntheticCheckpoint } from '../synthetic/checkpoint.ts';
import { expectedTensors } from '../checkpoint.ts';
import { blockForward } from '../../../testkit/reference/forward.ts';
import type { LayerCache } from '../../../testkit/reference/forward.ts';
import { dequantizeMatrix, quantizeMatrix } from '../quantize.ts';
import { compileTo, removeTempDirs } from '../../../testkit/model-fixtures.ts';
import type { ModelConfig } from '../config.ts';

afterAll(removeTempDirs);

/** Deterministic pseudo-random hidden states in [-2, 2). */
function randomHidden(rows: number, dim: number, seed: number): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: rows * dim }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s / 2 ** 32) * 4 - 2;
  });
}

/** Reference cache rows [positions][kv*hd] -> the graph's position-major layout [1, positions, kv, hd]. */
function toOrtCache(rows: Float32Array[], c: ModelConfig): Float32Array {
  const out = new Float32Array(rows.length * c.nKvHeads * c.headDim);
  rows.forEach((row, p) => out.set(row, p * c.nKvHeads * c.headDim));
  return out;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

async function runBlockAgainstReference(dir: string, c: ModelConfig, layer: number, weights: (n: string) => Float32Array) {
  const session = await ort.InferenceSession.create(join(dir, `block-${layer}.onnx`));
  // A cache of 5 steps: a 3-row prefill then two single-row decodes, built by the reference.
  const cache: LayerCache = { k: [], v: [] };
  blockForward(c, weights, layer, randomHidden(3, c.dim, 1), [0, 1, 2], cache);
  blockForward(c, weights, layer, randomHidden(1, c.dim, 2), [3], cache);
  blockForward(c, weights, layer, randomHidden(1, c.dim, 3), [4], cache);
  const past = cache.k.length;
  const pastK = toOrtCache(cache.k, c);
  const pastV = toOrtCache(cache.v, c);
  const input = randomHidden(2, c.dim, 4 + layer);
  const expected = blockForward(c, weights, layer, input, [past, past + 1], cache);
  const out = await session.run({
    hidden: new ort.Tensor('float32', input, [1, 2, c.dim]),
    positions: new ort.Tensor('int64', BigInt64Array.from([BigInt(past), BigInt(past + 1)]), [1, 2]),
    past_key: new ort.Tensor('float32', pastK, [1, past, c.nKvHeads, c.headDim]),
    past_value: new ort.Tensor('float32', pastV, [1, past, c.nKvHeads, c.headDim]),
  });
  await session.release();
  // The graph returns only this step's rows: the reference cache's last two.
  return {
    hidden: maxAbsDiff(out.hidden_out.data as Float32Array, expected),
    key: maxAbsDiff(out.new_key.data as Float32Array, toOrtCache(cache.k.slice(past), c)),
    value: maxAbsDiff(out.new_value.data as Float32Array, toOrtCache(cache.v.slice(past), c)),
    newDims: out.new_key.dims,
  };
}

describe('block graphs', () => {
  it('f32 block output and new k/v rows equal the reference forward pass within 1e-4, after a 5-step KV cache', async () => {
    const checkpoint = createSyntheticCheckpoint('tiny', 7);
    const c = checkpoint.config;
    const tensors = new Map<string, Float32Array>();
    for (const t of expectedTensors(c)) tensors.set(t.name, await checkpoint.read(t.name));
    const { dir } = await compileTo(checkpoint, 'f32');
    for (let layer = 0; layer < c.nLayers; layer++) {
      const err = await runBlockAgainstReference(dir, c, layer, (n) => tensors.get(n)!);
      expect(err.newDims).toEqual([1, 2, c.nKvHeads, c.headDim]);
      expect(err.hidden).toBeLessThan(1e-4);
      expect(err.key).toBeLessThan(1e-4);
      expect(err.value).toBeLessThan(1e-4);
    }
  });

  for (const [dtype, bits] of [['q8', 8], ['q4', 4]] as const) {
    it(`${dtype} blocks compute exactly the reference on the dequantized weights (packing and scales are right)`, async () => {
      const checkpoint = createSyntheticCheckpoint('tiny', 11);
      const c = checkpoint.config;
      const tensors = new Map<string, Float32Array>();
      for (const t of expectedTensors(c)) {
        const w = await checkpoint.read(t.name);
        const isBlockMatrix = t.shape.length === 2 && t.name.startsWith('layers.');
        tensors.set(t.name, isBlockMatrix ? dequantizeMatrix(quantizeMatrix(w, t.shape[0], t.shape[1], bits)) : w);
      }
      const { dir } = await compileTo(checkpoint, dtype);
      const err = await runBlockAgainstReference(dir, c, 1, (n) => tensors.get(n)!);
      expect(err.hidden).toBeLessThan(1e-4);
      expect(err.key).toBeLessThan(1e-4);
    });
  }
});
