/**
 * A plain TypeScript forward pass of a Llama-family decoder, written straight from the maths
 * (Hugging Face Llama semantics), used only by tests as the oracle the compiled ONNX shards are
 * checked against. It shares no code with the compiler on purpose, so a mistake there cannot
 * hide itself here. Everything is accumulated in float64; activations cross layer boundaries as
 * float32 because that is what the shards exchange.
 */
import type { ModelConfig } from '../../shared/model/config.ts';
import { EMBED_TENSOR, FINAL_NORM_TENSOR, LM_HEAD_TENSOR, blockTensorNames } from '../../shared/model/checkpoint.ts';
import { applyRotary, ropeInverseFrequencies } from './rope.ts';

export { applyRotary, ropeInverseFrequencies };

/** Canonical tensor name -> float32 row-major tensor (linear weights [out, in]). */
export type Weights = (name: string) => Float32Array;

/**
 * Keys and values of one layer, one entry per absolute position 0..T-1 in order, each
 * [nKvHeads * headDim]; keys are stored already rotated to their position.
 */
export interface LayerCache {
  k: Float32Array[];
  v: Float32Array[];
}

/** Fetches a tensor and checks its size, so a layout slip fails loudly instead of reading garbage. */
function tensor(weights: Weights, name: string, length: number): Float32Array {
  const t = weights(name);
  if (!t) throw new Error(`reference: missing tensor ${name}`);
  if (t.length !== length) throw new Error(`reference: tensor ${name} has ${t.length} elements, expected ${length}`);
  return t;
}

/** y = W x (+ b) for W [rows, cols] row-major, accumulated in float64. */
function linear(w: Float32Array, rows: number, cols: number, x: Float64Array, bias?: Float32Array): Float64Array {
  const y = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let acc = 0;
    const base = r * cols;
    for (let c = 0; c < cols; c++) acc += w[base + c] * x[c];
    y[r] = bias ? acc + bias[r] : acc;
  }
  return y;
}

/** RMSNorm(x) = x / sqrt(mean(x^2) + eps) * w. */
export function rmsNorm(x: Float64Array | Float32Array, weight: Float32Array, eps: number): Float64Array {
  if (x.length !== weight.length) throw new Error(`rmsNorm: vector of ${x.length} with weight of ${weight.length}`);
  let sumSq = 0;
  for (let i = 0; i < x.length; i++) sumSq += x[i] * x[i];
  const scale = 1 / Math.sqrt(sumSq / x.length + eps);
  const out = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = x[i] * scale * weight[i];
  return out;
}

function silu(z: number): number {
  return z / (1 + Math.exp(-z));
}

/** Rows of a [S, dim] float32 matrix. */
function rowsOf(m: Float32Array, dim: number, what: string): Float32Array[] {
  if (m.length % dim !== 0) throw new Error(`reference: ${what} of ${m.length} elements is not a multiple of ${dim}`);
  const rows: Float32Array[] = [];
  for (let s = 0; s < m.length / dim; s++) rows.push(m.subarray(s * dim, (s + 1) * dim));
  return rows;
}

// Inverse frequencies depend only on the config; memoised per config object so a 30-token
// decode does not recompute them per row.
const invFreqCache = new WeakMap<ModelConfig, Float64Array>();
function invFreqFor(config: ModelConfig): Float64Array {
  let inv = invFreqCache.get(config);
  if (!inv) {
    inv = ropeInverseFrequencies(config);
    invFreqCache.set(config, inv);
  }
  return inv;
}

/**
 * One transformer block: h = x + Attn(RMSNorm(x)); out = h + MLP(RMSNorm(h)).
 * `positions[s]` is the absolute position of row s. The cache must already hold exactly the
 * positions before positions[0]; this step's keys/values are appended first, then each row
 * attends causally (and within the sliding window, if any) over the whole cache.
 */
export function blockForward(
  config: ModelConfig,
  weights: Weights,
  layer: number,
  hidden: Float32Array,
  positions: number[],
  cache: LayerCache,
): Float32Array {
  const { dim, hiddenDim, nHeads, nKvHeads, headDim, normEps } = config;
  const qDim = nHeads * headDim;
  const kvDim = nKvHeads * headDim;
  const n = blockTensorNames(layer);
  const attnNorm = tensor(weights, n.attnNorm, dim);
  const wq = tensor(weights, n.wq, qDim * dim);
  const wk = tensor(weights, n.wk, kvDim * dim);
  const wv = tensor(weights, n.wv, kvDim * dim);
  const wo = tensor(weights, n.wo, dim * qDim);
  const bq = config.qkvBias ? tensor(weights, n.bq, qDim) : undefined;
  const bk = config.qkvBias ? tensor(weights, n.bk, kvDim) : undefined;
  const bv = config.qkvBias ? tensor(weights, n.bv, kvDim) : undefined;
  const ffnNorm = tensor(weights, n.ffnNorm, dim);
  const w1 = tensor(weights, n.w1, hiddenDim * dim);
  const w2 = tensor(weights, n.w2, dim * hiddenDim);
  const w3 = tensor(weights, n.w3, hiddenDim * dim);
  const invFreq = invFreqFor(config);

  const rows = rowsOf(hidden, dim, 'hidden');
  if (rows.length !== positions.length) {
    throw new Error(`blockForward: ${rows.length} rows but ${positions.length} positions`);
  }
  if (cache.k.length !== cache.v.length) throw new Error('blockForward: cache has unequal key and value counts');
  const start = cache.k.length;
  positions.forEach((p, s) => {
    if (p !== start + s) {
      throw new Error(`blockForward: row ${s} is at position ${p}, but the cache holds positions 0..${start - 1}`);
    }
  });

  // Project every row first and append its key/value, so later rows of this step see earlier ones.
  const queries: Float64Array[] = [];
  rows.forEach((x, s) => {
    const xn = rmsNorm(x, attnNorm, normEps);
    queries.push(applyRotary(linear(wq, qDim, dim, xn, bq), nHeads, headDim, invFreq, positions[s]));
    const k = applyRotary(linear(wk, kvDim, dim, xn, bk), nKvHeads, headDim, invFreq, positions[s]);
    cache.k.push(Float32Array.from(k));
    cache.v.push(Float32Array.from(linear(wv, kvDim, dim, xn, bv)));
  });

  const groupSize = nHeads / nKvHeads;
  const scale = 1 / Math.sqrt(headDim);
  const out = new Float32Array(hidden.length);
  rows.forEach((x, s) => {
    const p = positions[s];
    // Keys at positions j with lo <= j <= p are visible.
    const lo = config.slidingWindow !== undefined ? Math.max(0, p - config.slidingWindow + 1) : 0;
    const q = queries[s];
    const attn = new Float64Array(qDim);
    const scores = new Float64Array(p - lo + 1);
    for (let h = 0; h < nHeads; h++) {
      const qOff = h * headDim;
      const kvOff = Math.floor(h / groupSize) * headDim;
      let max = -Infinity;
      for (let j = lo; j <= p; j++) {
        const k = cache.k[j];
        let dot = 0;
        for (let d = 0; d < headDim; d++) dot += q[qOff + d] * k[kvOff + d];
        scores[j - lo] = dot * scale;
        if (scores[j - lo] > max) max = scores[j - lo];
      }
      let sum = 0;
      for (let i = 0; i < scores.length; i++) {
        scores[i] = Math.exp(scores[i] - max);
        sum += scores[i];
      }
      for (let j = lo; j <= p; j++) {
        const weight = scores[j - lo] / sum;
        const v = cache.v[j];
        for (let d = 0; d < headDim; d++) attn[qOff + d] += weight * v[kvOff + d];
      }
    }
    const attnOut = linear(wo, dim, qDim, attn);
    const h = new Float64Array(dim);
    for (let i = 0; i < dim; i++) h[i] = x[i] + attnOut[i];

    const hn = rmsNorm(h, ffnNorm, normEps);
    const gate = linear(w1, hiddenDim, dim, hn);
    const up = linear(w3, hiddenDim, dim, hn);
    const act = new Float64Array(hiddenDim);
    for (let i = 0; i < hiddenDim; i++) act[i] = silu(gate[i]) * up[i];
    const down = linear(w2, dim, hiddenDim, act);
    for (let i = 0; i < dim; i++) out[s * dim + i] = h[i] + down[i];
  });
  return out;
}

/** Token embedding lookup: [S, dim]. */
export function embed(config: ModelConfig, weights: Weights, tokens: number[]): Float32Array {
  const { dim, vocabSize } = config;
  const table = tensor(weights, EMBED_TENSOR, vocabSize * dim);
  const out = new Float32Array(tokens.length * dim);
  tokens.forEach((t, s) => {
    if (!Number.isInteger(t) || t < 0 || t >= vocabSize) throw new Error(`embed: token ${t} outside vocabulary of ${vocabSize}`);
    out.set(table.subarray(t * dim, (t + 1) * dim), s * dim);
  });
  return out;
}

/** Final RMSNorm then the LM head (the embedding matrix when tied): [S, dim] -> [S, vocab]. */
export function headForward(config: ModelConfig, weights: Weights, hidden: Float32Array): Float32Array {
  const { dim, vocabSize, normEps } = config;
  const norm = tensor(weights, FINAL_NORM_TENSOR, dim);
  const head = tensor(weights, config.tiedEmbeddings ? EMBED_TENSOR : LM_HEAD_TENSOR, vocabSize * dim);
  const rows = rowsOf(hidden, dim, 'hidden');
  const out = new Float32Array(rows.length * vocabSize);
  rows.forEach((x, s) => out.set(linear(head, vocabSize, dim, rmsNorm(x, norm, normEps)), s * vocabSize));
  return out;
}

/**
 * A whole model with its own per-layer caches: each forward call runs the given tokens at the
 * given absolute positions (continuing from what the caches hold) and returns their logits.
 */
export function createReferenceModel(
  config: ModelConfig,
  weights: Weights,
): { caches: LayerCache[]; forward(tokens: number[], positions: number[]): Float32Array } {
  const caches: LayerCache[] = Array.from({ length: config.nLayers }, () => ({ k: [], v: [] }));
  return {
    caches,
    forward(tokens: number[], positions: number[]): Float32Array {
      if (tokens.length !== positions.length) throw new Error(`forward: ${tokens.length} tokens but ${positions.length} positions`);
      let hidden = embed(config, weights, tokens);
      for (let layer = 0; layer < config.nLayers; layer++) {
        hidden = blockForward(config, weights, layer, hidden, positions, caches[layer]);
      }
      return headForward(config, weights, hidden);
    },
  };
}
