/**
 * A stage's blocks (hidden, positions, past k/v per layer -> hidden_out, new k/v rows per layer:
 * composedIo) computed by hand for q4/q8 packages where onnxruntime has no quantized kernel
 * (WASM): the linears on the SIMD kernels of quantized-gemv.ts against the packed weights, the
 * rest (RMSNorm, RoPE, attention over the cache, SwiGLU) in plain TypeScript, step for step
 * what the compiler's block graph does (shared/model/graphs/block.ts; block-weights.ts checks
 * the graph is that one). It presents onnxruntime's session interface, so the stage, its KV
 * store and the engine drive it as they drive a session.
 *
 * Why by hand: unpacked to f32 for onnxruntime, a 110M q4 block took 1.6 ms per decode step in
 * a tab, 1.2 of them in its seven GEMVs reading 28 MB of f32; packed they read 4 MB.
 */
import type { ModelConfig } from '../../model/config.ts';
import { composedIo } from '../../model/compose.ts';
import type { ExternalFile } from '../../model/dequantize-linears.ts';
import type { Model } from '../../model/onnx/schema.ts';
import { ropeInverseFrequencies } from '../../model/rope.ts';
import type { OrtRuntime, OrtSession, OrtTensor } from '../ort.ts';
import { readBlockWeights } from './block-weights.ts';
import type { BlockWeights } from './block-weights.ts';
import { createQuantizedGemv } from './quantized-gemv.ts';
import { rmsNorm } from './rms-norm.ts';
import type { PackedMatrix, QuantizedGemv } from './quantized-gemv.ts';
import type { SpawnGemvHelper } from './gemv-threads.ts';

export interface QuantizedStageOptions {
  config: ModelConfig;
  /** model index of blocks[0] */
  firstLayer: number;
  /** the stage's block graphs, in layer order */
  blocks: Model[];
  externalData: ExternalFile[];
  /** threads the linears split their rows among (default 1; needs deps.spawn) */
  threads?: number;
}

export interface QuantizedStageDeps {
  ort: OrtRuntime;
  /** the kernels to use (default: a new instance, closed when the stage is released) */
  gemv?: QuantizedGemv;
  /** starts the kernels' helper threads */
  spawn?: SpawnGemvHelper;
}

export interface QuantizedStage extends OrtSession {
  /** bytes the packed weights take in the kernels' memory */
  readonly weightBytes: number;
  /** the threads its linears run on */
  readonly threads: number;
}

/** A block's weights with its linears in the kernels' memory, grouped by the input they share. */
interface Layer extends Pick<BlockWeights, 'attnNorm' | 'ffnNorm' | 'bq' | 'bk' | 'bv'> {
  index: number;
  /** q, k, v: of the attention's normed input */
  qkv: PackedMatrix[];
  out: PackedMatrix[];
  /** gate (w1) and up (w3): of the MLP's normed input */
  gateUp: PackedMatrix[];
  down: PackedMatrix[];
}

const addInto = (y: Float32Array, b: Float32Array | undefined) => {
  if (b) for (let i = 0; i < y.length; i++) y[i] += b[i];
};

export async function openQuantizedStage(options: QuantizedStageOptions, deps: QuantizedStageDeps): Promise<QuantizedStage> {
  const { config, firstLayer, blocks } = options;
  const { Tensor } = deps.ort;
  const weights: BlockWeights[] = [];
  for (let i = 0; i < blocks.length; i++) weights.push(await readBlockWeights(blocks[i], config, firstLayer + i, options.externalData));
  // Started once the graphs are known to be the compiler's: a refused stage leaves no threads behind.
  const gemv = deps.gemv ?? (await createQuantizedGemv({ threads: options.threads }, { spawn: deps.spawn }));
  const layers: Layer[] = weights.map((w, i) => ({
    index: firstLayer + i,
    attnNorm: w.attnNorm,
    ffnNorm: w.ffnNorm,
    bq: w.bq,
    bk: w.bk,
    bv: w.bv,
    qkv: [w.wq, w.wk, w.wv].map(gemv.upload),
    out: [gemv.upload(w.wo)],
    gateUp: [w.w1, w.w3].map(gemv.upload),
    down: [gemv.upload(w.w2)],
  }));

  const { dim, hiddenDim, nHeads, nKvHeads, headDim, normEps, slidingWindow } = config;
  const qDim = nHeads * headDim;
  const kvDim = nKvHeads * headDim;
  const group = nHeads / nKvHeads;
  const half = headDim / 2;
  const inverseFrequencies = ropeInverseFrequencies(config);
  const queryScale = Math.fround(1 / Math.sqrt(headDim));
  // Per-row scratch, reused across rows and layers.
  const normed = new Float32Array(dim);
  const context = new Float32Array(qDim);
  const scaled = new Float32Array(headDim);
  const projected = new Float32Array(dim);
  const gate = new Float32Array(hiddenDim);
  const up = new Float32Array(hiddenDim);
  const cos = new Float32Array(half);
  const sin = new Float32Array(half);

  /** Rotate-half RoPE of `heads` heads of a row in place, by the angles' cos and sin. */
  const rotate = (row: Float32Array, heads: number) => {
    for (let h = 0; h < heads; h++) {
      const o = h * headDim;
      for (let i = 0; i < half; i++) {
        const x1 = row[o + i];
        const x2 = row[o + half + i];
        row[o + i] = x1 * cos[i] - x2 * sin[i];
        row[o + half + i] = x2 * cos[i] + x1 * sin[i];
      }
    }
  };

  /** Row s's query, key and value: RMSNorm, the three linears (and biases), RoPE on q and k. */
  function projectRow(layer: Layer, x: Float32Array, position: number, q: Float32Array, k: Float32Array, v: Float32Array) {
    rmsNorm(x, layer.attnNorm, normEps, normed);
    gemv.multiply(normed, layer.qkv, [q, k, v]);
    addInto(q, layer.bq);
    addInto(k, layer.bk);
    addInto(v, layer.bv);
    // The graph's angles are float32 products of the position and the frequencies.
    for (let i = 0; i < half; i++) {
      const angle = Math.fround(position * inverseFrequencies[i]);
      cos[i] = Math.cos(angle);
      sin[i] = Math.sin(angle);
    }
    rotate(q, nHeads);
    rotate(k, nKvHeads);
  }

  /**
   * Attention of one query row at `position` into `context`, over the cache rows then this
   * step's (key t < past is pastKeys row t, else newKeys row t - past). Key t is visible when
   * t <= position and, with a window, t > position - window: the graph adds -1e30 to the others,
   * whose exp is exactly 0, so leaving them out is the same sum.
   */
  function attend(query: Float32Array, position: number, past: number, keys: [Float32Array, Float32Array], values: [Float32Array, Float32Array], scores: Float64Array) {
    const last = Math.min(scores.length - 1, position);
    const first = slidingWindow === undefined ? 0 : Math.max(0, position - slidingWindow + 1);
    for (let h = 0; h < nHeads; h++) {
      const ko = Math.floor(h / group) * headDim;
      for (let d = 0; d < headDim; d++) scaled[d] = query[h * headDim + d] * queryScale;
      let max = -Infinity;
      for (let t = first; t <= last; t++) {
        const rows = keys[t < past ? 0 : 1];
        const at = (t < past ? t : t - past) * kvDim + ko;
        let dot = 0;
        for (let d = 0; d < headDim; d++) dot += scaled[d] * rows[at + d];
        scores[t] = dot;
        if (dot > max) max = dot;
      }
      let sum = 0;
      for (let t = first; t <= last; t++) sum += scores[t] = Math.exp(scores[t] - max);
      const co = h * headDim;
      context.fill(0, co, co + headDim);
      for (let t = first; t <= last; t++) {
        const p = scores[t] / sum;
        const rows = values[t < past ? 0 : 1];
        const at = (t < past ? t : t - past) * kvDim + ko;
        for (let d = 0; d < headDim; d++) context[co + d] += p * rows[at + d];
      }
    }
  }

  /** The rest of the block for row x, in place: output projection and residual, then the SwiGLU MLP and residual. */
  function finishRow(layer: Layer, x: Float32Array) {
    gemv.multiply(context, layer.out, [projected]);
    for (let i = 0; i < dim; i++) x[i] += projected[i];
    rmsNorm(x, layer.ffnNorm, normEps, normed);
    gemv.multiply(normed, layer.gateUp, [gate, up]);
    for (let i = 0; i < hiddenDim; i++) gate[i] = (gate[i] / (1 + Math.exp(-gate[i]))) * up[i];
    gemv.multiply(gate, layer.down, [projected]);
    for (let i = 0; i < dim; i++) x[i] += projected[i];
  }

  function forwardLayer(layer: Layer, hidden: Float32Array, positions: number[], pastKeys: Float32Array, pastValues: Float32Array, newKeys: Float32Array, newValues: Float32Array) {
    const seq = positions.length;
    const past = pastKeys.length / kvDim;
    const queries = new Float32Array(seq * qDim);
    const row = <T extends Float32Array>(a: T, s: number, width: number) => a.subarray(s * width, (s + 1) * width);
    // Every row's keys first: a row attends to the earlier rows of its own step.
    for (let s = 0; s < seq; s++) projectRow(layer, row(hidden, s, dim), positions[s], row(queries, s, qDim), row(newKeys, s, kvDim), row(newValues, s, kvDim));
    const scores = new Float64Array(past + seq);
    for (let s = 0; s < seq; s++) {
      attend(row(queries, s, qDim), positions[s], past, [pastKeys, newKeys], [pastValues, newValues], scores);
      finishRow(layer, row(hidden, s, dim));
    }
  }

  const floatsOf = (feeds: Record<string, OrtTensor>, name: string) => {
    const t = feeds[name];
    if (!t || !(t.data instanceof Float32Array)) throw new TypeError(`input ${name}: expected a float32 tensor`);
    return t.data;
  };
  const inputNames = [composedIo.hidden, composedIo.positions, ...layers.flatMap((l) => [composedIo.pastKey(l.index), composedIo.pastValue(l.index)])];
  const outputNames = [composedIo.hiddenOut, ...layers.flatMap((l) => [composedIo.newKey(l.index), composedIo.newValue(l.index)])];

  return {
    threads: gemv.threads,
    weightBytes: gemv.bytes() + layers.reduce((a, l) => a + l.attnNorm.byteLength + l.ffnNorm.byteLength, 0),
    inputNames,
    outputNames,
    async run(feeds: Record<string, OrtTensor>) {
      const input = floatsOf(feeds, composedIo.hidden);
      const ids = feeds[composedIo.positions]?.data;
      if (!(ids instanceof BigInt64Array)) throw new TypeError(`input ${composedIo.positions}: expected an int64 tensor`);
      const positions = Array.from(ids, Number);
      const seq = positions.length;
      if (input.length !== seq * dim) throw new RangeError(`input ${composedIo.hidden}: ${input.length} values for ${seq} positions of ${dim}`);
      const hidden = input.slice();
      const out: Record<string, OrtTensor> = {};
      for (const layer of layers) {
        const newKeys = new Float32Array(seq * kvDim);
        const newValues = new Float32Array(seq * kvDim);
        forwardLayer(layer, hidden, positions, floatsOf(feeds, composedIo.pastKey(layer.index)), floatsOf(feeds, composedIo.pastValue(layer.index)), newKeys, newValues);
        out[composedIo.newKey(layer.index)] = new Tensor('float32', newKeys, [1, seq, nKvHeads, headDim]);
        out[composedIo.newValue(layer.index)] = new Tensor('float32', newValues, [1, seq, nKvHeads, headDim]);
      }
      out[composedIo.hiddenOut] = new Tensor('float32', hidden, [1, seq, dim]);
      return out as never;
    },
    async release() {
      if (!deps.gemv) gemv.close();
    },
  } as QuantizedStage;
}
