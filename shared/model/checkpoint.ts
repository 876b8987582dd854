/**
 * A Checkpoint is a model the compiler can read one tensor at a time, whatever its file format.
 *
 * Every reader hands out weights under the canonical names below, as float32, row-major,
 * with linear weights shaped [out, in] (the nn.Linear / llama2.c convention), and with the
 * q/k projection rows in the Hugging Face "rotate half" rotary layout. llama2.c stores q/k rows
 * interleaved, so its reader permutes them; attention scores are unchanged by that permutation.
 * Reading tensor by tensor keeps a 7B checkpoint out of memory while it compiles.
 */
import type { ModelConfig } from './config.ts';

/** Where a package's tokenizer comes from; the compiler copies these files into the package. */
export type TokenizerSource =
  | { kind: 'llama2c'; file: string; bytes: Uint8Array }
  | {
      kind: 'huggingface';
      /** tokenizer.json */
      tokenizerJson: Uint8Array;
      /** tokenizer_config.json (chat template, special tokens); optional in the wild. */
      tokenizerConfigJson?: Uint8Array;
    };

export interface TensorInfo {
  name: string;
  shape: number[];
}

export interface Checkpoint {
  /** Human-readable origin (a path, or `synthetic:110m`), used in errors and the manifest. */
  source: string;
  config: ModelConfig;
  tokenizer: TokenizerSource;
  /** The canonical tensors this checkpoint holds (see tensorNames). */
  tensors(): TensorInfo[];
  /** Reads one canonical tensor as float32 [out, in]. */
  read(name: string): Promise<Float32Array>;
  close?(): Promise<void>;
}

/** Canonical tensor names of one transformer block. */
export function blockTensorNames(layer: number) {
  const p = `layers.${layer}.`;
  return {
    attnNorm: `${p}attn_norm`,
    wq: `${p}wq`,
    wk: `${p}wk`,
    wv: `${p}wv`,
    wo: `${p}wo`,
    bq: `${p}bq`,
    bk: `${p}bk`,
    bv: `${p}bv`,
    ffnNorm: `${p}ffn_norm`,
    /** gate projection (HF gate_proj, llama2.c w1) */
    w1: `${p}w1`,
    /** down projection (HF down_proj, llama2.c w2) */
    w2: `${p}w2`,
    /** up projection (HF up_proj, llama2.c w3) */
    w3: `${p}w3`,
  };
}

export const EMBED_TENSOR = 'embed';
export const FINAL_NORM_TENSOR = 'norm';
/** Present only when the classifier is not tied to the embedding. */
export const LM_HEAD_TENSOR = 'lm_head';

/** The canonical shapes every reader must produce for a config. */
export function expectedTensors(c: ModelConfig): TensorInfo[] {
  const q = c.nHeads * c.headDim;
  const kv = c.nKvHeads * c.headDim;
  const out: TensorInfo[] = [{ name: EMBED_TENSOR, shape: [c.vocabSize, c.dim] }];
  for (let i = 0; i < c.nLayers; i++) {
    const n = blockTensorNames(i);
    out.push(
      { name: n.attnNorm, shape: [c.dim] },
      { name: n.wq, shape: [q, c.dim] },
      { name: n.wk, shape: [kv, c.dim] },
      { name: n.wv, shape: [kv, c.dim] },
      { name: n.wo, shape: [c.dim, q] },
    );
    if (c.qkvBias) out.push({ name: n.bq, shape: [q] }, { name: n.bk, shape: [kv] }, { name: n.bv, shape: [kv] });
    out.push(
      { name: n.ffnNorm, shape: [c.dim] },
      { name: n.w1, shape: [c.hiddenDim, c.dim] },
      { name: n.w2, shape: [c.dim, c.hiddenDim] },
      { name: n.w3, shape: [c.hiddenDim, c.dim] },
    );
  }
  out.push({ name: FINAL_NORM_TENSOR, shape: [c.dim] });
  if (!c.tiedEmbeddings) out.push({ name: LM_HEAD_TENSOR, shape: [c.vocabSize, c.dim] });
  return out;
}

/**
 * Converts q/k rows from llama2.c's interleaved rotary pairs (x0,x1),(x2,x3)... to the HF
 * rotate-half layout (x0,x2,...,x1,x3,...) within each head. Used by the llama2.c reader.
 */
export function interleavedToHalfRows(w: Float32Array, nHeads: number, headDim: number, cols: number): Float32Array {
  const out = new Float32Array(w.length);
  const half = headDim / 2;
  for (let h = 0; h < nHeads; h++) {
    for (let i = 0; i < half; i++) {
      const base = h * headDim;
      out.set(w.subarray((base + 2 * i) * cols, (base + 2 * i + 1) * cols), (base + i) * cols);
      out.set(w.subarray((base + 2 * i + 1) * cols, (base + 2 * i + 2) * cols), (base + half + i) * cols);
    }
  }
  return out;
}
