/**
 * Checks the reference forward pass against properties that follow from the maths alone, so it
 * can be trusted as the oracle for the compiled ONNX shards.
 */
import { describe, expect, it } from 'vitest';
import type { ModelConfig } from '../../shared/model/config.ts';
import { expectedTensors } from '../../shared/model/checkpoint.ts';
import {
  applyRotary,
  blockForward,
  createReferenceModel,
  embed,
  rmsNorm,
  ropeInverseFrequencies,
  type LayerCache,
  type Weights,
} from './forward.ts';
import { seededUniform } from '../seeded-steps.ts';
import { TINY_QWEN2 } from '../huggingface-checkpoint.ts';

/** Random weights for every canonical tensor: uniform with std ~ 1/sqrt(fan_in); norms near 1. */
function randomWeights(config: ModelConfig, seed: number): Weights {
  const rand = seededUniform(seed);
  const map = new Map<string, Float32Array>();
  for (const { name, shape } of expectedTensors(config)) {
    const size = shape.reduce((a, b) => a * b, 1);
    const t = new Float32Array(size);
    const isNorm = shape.length === 1 && /norm$/.test(name);
    const fanIn = shape.length === 2 ? shape[1] : 1;
    // uniform(-a, a) has std a/sqrt(3); the embedding gets std ~1 so the residual stream is O(1).
    const a = name === 'embed' ? Math.sqrt(3) : Math.sqrt(3 / fanIn);
    for (let i = 0; i < size; i++) t[i] = isNorm ? 0.8 + 0.4 * rand() : (2 * rand() - 1) * (shape.length === 1 ? 0.1 : a);
    map.set(name, t);
  }
  return (name) => {
    const t = map.get(name);
    if (!t) throw new Error(`no tensor ${name}`);
    return t;
  };
}

const tiny: ModelConfig = {
  ...TINY_QWEN2,
  // nHeads * headDim (32) != dim (16), so a confusion of the two shapes cannot pass.
  headDim: 8,
  vocabSize: 19,
  maxSeqLen: 32,
  ropeTheta: 10000,
  normEps: 1e-5,
  tiedEmbeddings: false,
};

const range = (n: number, from = 0) => Array.from({ length: n }, (_, i) => from + i);
const rowOf = (m: Float32Array, width: number, s: number) => Array.from(m.subarray(s * width, (s + 1) * width));
const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
};

describe('reference forward pass', () => {
  const weights = randomWeights(tiny, 1234);
  const tokens = [3, 17, 0, 9, 9, 12, 5];

  it('decoding one token at a time with the cache equals one full-sequence call', () => {
    const full = createReferenceModel(tiny, weights).forward(tokens, range(tokens.length));
    expect(full.length).toBe(tokens.length * tiny.vocabSize);
    expect(full.every(Number.isFinite)).toBe(true);

    const stepwise = createReferenceModel(tiny, weights);
    const steps = tokens.map((t, p) => stepwise.forward([t], [p]));
    for (let p = 0; p < tokens.length; p++) {
      expect(maxAbsDiff(steps[p], rowOf(full, tiny.vocabSize, p))).toBeLessThan(1e-5);
    }
    expect(stepwise.caches.map((c) => c.k.length)).toEqual([7, 7]);
    expect(stepwise.caches[0].k[0].length).toBe(tiny.nKvHeads * tiny.headDim);

    // Prefill then decode in uneven chunks gives the same logits too.
    const chunked = createReferenceModel(tiny, weights);
    const a = chunked.forward(tokens.slice(0, 3), range(3));
    const b = chunked.forward(tokens.slice(3), range(4, 3));
    expect(maxAbsDiff([...a, ...b], full)).toBeLessThan(1e-5);

    // The logits are not degenerate: positions differ, and the same token (9 at 3 and 4) gives
    // different logits because its context differs.
    expect(maxAbsDiff(rowOf(full, tiny.vocabSize, 3), rowOf(full, tiny.vocabSize, 4))).toBeGreaterThan(1e-2);
  });

  it('is causal: changing a later token leaves earlier logits untouched', () => {
    const base = createReferenceModel(tiny, weights).forward(tokens, range(7));
    const changed = createReferenceModel(tiny, weights).forward([...tokens.slice(0, 5), 1, 2], range(7));
    expect(Array.from(changed.subarray(0, 5 * tiny.vocabSize))).toEqual(Array.from(base.subarray(0, 5 * tiny.vocabSize)));
    expect(maxAbsDiff(rowOf(changed, tiny.vocabSize, 6), rowOf(base, tiny.vocabSize, 6))).toBeGreaterThan(1e-3);
  });

  it('a lone first token attends only to itself: the block reduces to x + Wo v + MLP', () => {
    // With one key, softmax is exactly 1, so attention returns v (each head its kv group's v)
    // whatever q and k are. Recompute that by hand from the weights.
    const x = embed(tiny, weights, [5]);
    const cache: LayerCache = { k: [], v: [] };
    const out = blockForward(tiny, weights, 0, x, [0], cache);

    const { dim, hiddenDim, nHeads, nKvHeads, headDim } = tiny;
    const mv = (w: Float32Array, rows: number, cols: number, v: ArrayLike<number>) =>
      range(rows).map((r) => range(cols).reduce((acc, c) => acc + w[r * cols + c] * v[c], 0));
    const xn = rmsNorm(x, weights('layers.0.attn_norm'), tiny.normEps);
    const bv = weights('layers.0.bv');
    const v = mv(weights('layers.0.wv'), nKvHeads * headDim, dim, xn).map((y, i) => y + bv[i]);
    const perHead = range(nHeads * headDim).map((i) => {
      const h = Math.floor(i / headDim);
      return v[Math.floor(h / (nHeads / nKvHeads)) * headDim + (i % headDim)];
    });
    const attn = mv(weights('layers.0.wo'), dim, nHeads * headDim, perHead);
    const h = range(dim).map((i) => x[i] + attn[i]);
    const hn = rmsNorm(Float64Array.from(h), weights('layers.0.ffn_norm'), tiny.normEps);
    const gate = mv(weights('layers.0.w1'), hiddenDim, dim, hn);
    const up = mv(weights('layers.0.w3'), hiddenDim, dim, hn);
    const act = range(hiddenDim).map((i) => (gate[i] / (1 + Math.exp(-gate[i]))) * up[i]);
    const down = mv(weights('layers.0.w2'), dim, hiddenDim, act);
    const expected = range(dim).map((i) => h[i] + down[i]);

    expect(maxAbsDiff(out, expected)).toBeLessThan(1e-6);
    expect(maxAbsDiff(out, x)).toBeGreaterThan(1e-2);
    expect(maxAbsDiff(cache.v[0], v)).toBeLessThan(1e-6);
  });
});

describe('rotary embedding', () => {
  it('matches a hand-computed rotation in the rotate-half layout', () => {
    // headDim 4, theta 10000: inv_freq = [1, 10000^(-1/2)] = [1, 0.01]. At position 1 the pair
    // (x0, x2) turns by 1 rad and (x1, x3) by 0.01 rad.
    const cfg = { ...tiny, headDim: 4, ropeTheta: 10000 };
    const inv = ropeInverseFrequencies(cfg);
    expect(Array.from(inv)).toEqual([1, 0.01]);
    const c1 = 0.5403023058681398, s1 = 0.8414709848078965; // cos 1, sin 1
    const c2 = 0.9999500004166653, s2 = 0.009999833334166664; // cos 0.01, sin 0.01
    const out = applyRotary(Float64Array.from([1, 2, 3, 4]), 1, 4, inv, 1);
    const expected = [1 * c1 - 3 * s1, 2 * c2 - 4 * s2, 3 * c1 + 1 * s1, 4 * c2 + 2 * s2];
    expect(maxAbsDiff(out, expected)).toBeLessThan(1e-12);
    expect(maxAbsDiff(out, [-1.9841106485555495, 1.959900667496664, 2.4623779024123156, 4.019799668334994])).toBeLessThan(1e-12);
    // Position 0 is the identity.
    expect(Array.from(applyRotary(Float64Array.from([1, 2, 3, 4]), 1, 4, inv, 0))).toEqual([1, 2, 3, 4]);
  });

  it('preserves norms and makes q.k depend only on the relative position', () => {
    const rand = seededUniform(7);
    const inv = ropeInverseFrequencies(tiny);
    const heads = 3;
    const q = Float64Array.from(range(heads * tiny.headDim), () => 2 * rand() - 1);
    const k = Float64Array.from(range(heads * tiny.headDim), () => 2 * rand() - 1);
    const norm = (v: Float64Array) => Math.hypot(...v);
    const dot = (a: Float64Array, b: Float64Array) => a.reduce((acc, x, i) => acc + x * b[i], 0);
    for (const p of [1, 5, 123]) {
      const r = applyRotary(q, heads, tiny.headDim, inv, p);
      expect(Math.abs(norm(r) - norm(q))).toBeLessThan(1e-12);
      expect(maxAbsDiff(r, q)).toBeGreaterThan(1e-3);
    }
    const score = (pq: number, pk: number) =>
      dot(applyRotary(q, heads, tiny.headDim, inv, pq), applyRotary(k, heads, tiny.headDim, inv, pk));
    expect(Math.abs(score(7, 3) - score(104, 100))).toBeLessThan(1e-10);
    expect(Math.abs(score(7, 3) - score(7, 4))).toBeGreaterThan(1e-4);
  });
});

describe('sliding window', () => {
  it('with window 2, position 4 cannot see token 0', () => {
    // Two layers of window 2 reach back from 4 to position 2 only.
    const cfg: ModelConfig = { ...tiny, architecture: 'mistral', slidingWindow: 2 };
    const w = randomWeights(cfg, 99);
    const run = (c: ModelConfig, toks: number[]) => createReferenceModel(c, w).forward(toks, range(toks.length));
    const a = run(cfg, [1, 2, 3, 4, 5]);
    const b = run(cfg, [11, 2, 3, 4, 5]);
    expect(Array.from(b.subarray(4 * cfg.vocabSize))).toEqual(Array.from(a.subarray(4 * cfg.vocabSize)));
    expect(Array.from(b.subarray(3 * cfg.vocabSize))).toEqual(Array.from(a.subarray(3 * cfg.vocabSize)));
    // Position 1 (and, through the second layer, 2) still see token 0.
    expect(maxAbsDiff(rowOf(a, cfg.vocabSize, 1), rowOf(b, cfg.vocabSize, 1))).toBeGreaterThan(1e-3);
    expect(maxAbsDiff(rowOf(a, cfg.vocabSize, 2), rowOf(b, cfg.vocabSize, 2))).toBeGreaterThan(1e-5);
    // Without the window, token 0 does reach position 4.
    const full = { ...cfg, slidingWindow: undefined };
    expect(maxAbsDiff(rowOf(run(full, [1, 2, 3, 4, 5]), cfg.vocabSize, 4), rowOf(run(full, [11, 2, 3, 4, 5]), cfg.vocabSize, 4))).toBeGreaterThan(1e-4);
  });

  it('window decode with the cache equals the full-sequence call', () => {
    const cfg: ModelConfig = { ...tiny, slidingWindow: 3 };
    const w = randomWeights(cfg, 5);
    const toks = [4, 8, 15, 16, 2, 3];
    const full = createReferenceModel(cfg, w).forward(toks, range(6));
    const m = createReferenceModel(cfg, w);
    const steps = toks.flatMap((t, p) => Array.from(m.forward([t], [p])));
    expect(maxAbsDiff(steps, full)).toBeLessThan(1e-5);
  });
});

describe('rope scaling', () => {
  // headDim 8, theta 10000: inv_freq = [1, 0.1, 0.01, 0.001]; wavelengths 2*pi/inv =
  // [6.28, 62.8, 628.3, 6283].
  const base = { ...tiny, headDim: 8, ropeTheta: 10000 };

  it('linear divides every frequency by the factor', () => {
    const inv = ropeInverseFrequencies({ ...base, ropeScaling: { type: 'linear', factor: 4 } });
    expect(maxAbsDiff(inv, [0.25, 0.025, 0.0025, 0.00025])).toBeLessThan(1e-15);
  });

  it('llama3 keeps high frequencies, divides low ones and interpolates between', () => {
    // original 1024, low 1, high 4, factor 8: low_freq_wavelen = 1024, high_freq_wavelen = 256.
    //  6.28, 62.8 < 256   -> unchanged (1, 0.1)
    //  6283 > 1024        -> 0.001 / 8 = 0.000125
    //  628.3 in between   -> smooth = (1024 / 628.3185 - 1) / (4 - 1) = 0.2099155390870028
    //                        inv = (1 - smooth) * 0.01 / 8 + smooth * 0.01 = 0.003086760967011275
    const inv = ropeInverseFrequencies({
      ...base,
      ropeScaling: { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 1024 },
    });
    expect(inv.length).toBe(4);
    expect(inv[0]).toBe(1);
    expect(Math.abs(inv[1] - 0.1)).toBeLessThan(1e-15);
    expect(Math.abs(inv[2] - 0.003086760967011275)).toBeLessThan(1e-15);
    expect(Math.abs(inv[3] - 0.000125)).toBeLessThan(1e-15);
  });
});
