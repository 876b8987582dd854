/**
 * Opens a llama2.c legacy checkpoint (the `model.bin` that llama2.c's export.py writes with
 * --version 0, e.g. the tinyllamas stories models) as a Checkpoint.
 *
 * Layout: 7 little-endian int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size,
 * seq_len; a negative vocab_size means the classifier is stored separately), then float32
 * tensors back to back: token_embedding, rms_att, wq, wk, wv, wo, rms_ffn, w1, w2, w3,
 * rms_final, freq_cis_real, freq_cis_imag (unused RoPE tables), then wcls if not shared.
 * llama2.c's matmul(xout, x, w, n, d) reads w as (d, n) row-major, i.e. [out, in]: the same
 * orientation as our canonical tensors, so only q/k need a row permutation (see readTensor).
 *
 * The header fixes every offset, so the file size is checked exactly at open and each tensor
 * is read only when asked for.
 */
import { CheckpointFormatError, ModelConfigError, TokenizerError } from '../../errors.ts';
import type { ByteSource } from '../byte-source.ts';
import {
  EMBED_TENSOR,
  FINAL_NORM_TENSOR,
  LM_HEAD_TENSOR,
  blockTensorNames,
  expectedTensors,
  interleavedToHalfRows,
  type Checkpoint,
  type TokenizerSource,
} from '../checkpoint.ts';
import { validateConfig, type ModelConfig } from '../config.ts';
import { llama2cTokenCount } from '../../tokenizer/llama2c.ts';

const HEADER_BYTES = 7 * 4;
/** llama2.c's newer export formats (--version 1/2) start with "ak42" where dim would be. */
const VERSIONED_EXPORT_MAGIC = 0x616b3432;

interface Slot {
  /** Byte offset of the tensor in the file. */
  offset: number;
  shape: number[];
  /** q/k: heads whose rows go from interleaved to rotate-half pairs. */
  ropeHeads?: number;
}

/**
 * Takes ownership of both sources: the tokenizer is read whole here, and the returned
 * checkpoint's close() closes them.
 */
export async function openLlama2cCheckpoint(source: ByteSource, tokenizer: ByteSource | null): Promise<Checkpoint> {
  const path = source.name;
  if (source.size < HEADER_BYTES) {
    throw new CheckpointFormatError(`truncated checkpoint: file has ${source.size} bytes, less than the ${HEADER_BYTES}-byte header`, {
      source: path,
    });
  }
  const header = new DataView(copyOut(await source.read(0, HEADER_BYTES)));
  const [dim, hiddenDim, nLayers, nHeads, nKvHeads, rawVocab, seqLen] = Array.from({ length: 7 }, (_, i) =>
    header.getInt32(i * 4, true),
  );
  if (header.getUint32(0, true) === VERSIONED_EXPORT_MAGIC) {
    throw new CheckpointFormatError(
      `this is a llama2.c version ${header.getInt32(4, true)} export; only the legacy format (export.py --version 0) is supported`,
      { source: path },
    );
  }
  const config = headerToConfig({ dim, hiddenDim, nLayers, nHeads, nKvHeads, rawVocab, seqLen }, path);
  const slots = layout(config, HEADER_BYTES);
  const expectedBytes = slots.end;
  if (source.size < expectedBytes) {
    throw new CheckpointFormatError(`truncated checkpoint: header says ${expectedBytes} bytes, file has ${source.size}`, { source: path });
  }
  if (source.size > expectedBytes) {
    throw new CheckpointFormatError(
      `checkpoint is larger than its header says: header says ${expectedBytes} bytes, file has ${source.size} (not a llama2.c legacy checkpoint?)`,
      { source: path },
    );
  }

  if (!tokenizer) {
    throw new TokenizerError('missing tokenizer: pass --tokenizer <file> for llama2.c checkpoints', { source: path });
  }
  const tokenizerBytes = copyBytes(await tokenizer.read(0, tokenizer.size));
  const tokenCount = llama2cTokenCount(tokenizerBytes, tokenizer.name);
  if (tokenCount !== config.vocabSize) {
    throw new TokenizerError(
      `tokenizer has ${tokenCount} tokens but the checkpoint's vocabulary has ${config.vocabSize}; is it the tokenizer for ${basename(path)}?`,
      { source: tokenizer.name },
    );
  }
  const tokenizerSource: TokenizerSource = { kind: 'llama2c', file: basename(tokenizer.name), bytes: tokenizerBytes };

  const infos = expectedTensors(config);
  let closed = false;
  return {
    source: path,
    config,
    tokenizer: tokenizerSource,
    tensors: () => infos.map((t) => ({ name: t.name, shape: [...t.shape] })),
    async read(name) {
      const slot = slots.byName.get(name);
      if (!slot) throw new CheckpointFormatError(`no tensor named ${name} in this checkpoint`, { source: path });
      return readTensor(source, slot, config);
    },
    async close() {
      if (closed) return;
      closed = true;
      await Promise.all([source.close?.(), tokenizer.close?.()]);
    },
  };
}

interface RawHeader {
  dim: number;
  hiddenDim: number;
  nLayers: number;
  nHeads: number;
  nKvHeads: number;
  rawVocab: number;
  seqLen: number;
}

function headerToConfig(h: RawHeader, path: string): ModelConfig {
  const fail = (msg: string): never => {
    throw new ModelConfigError(`bad llama2.c header: ${msg}`, { source: path });
  };
  const named: [string, number][] = [
    ['dim', h.dim],
    ['hidden_dim', h.hiddenDim],
    ['n_layers', h.nLayers],
    ['n_heads', h.nHeads],
    ['n_kv_heads', h.nKvHeads],
    ['seq_len', h.seqLen],
  ];
  for (const [key, v] of named) if (v <= 0) fail(`${key} must be positive, got ${v}`);
  if (h.rawVocab === 0) fail('vocab_size must not be 0');
  if (h.dim % h.nHeads !== 0) fail(`dim ${h.dim} is not a multiple of n_heads ${h.nHeads}`);
  if (h.nKvHeads > h.nHeads) fail(`n_kv_heads ${h.nKvHeads} is more than n_heads ${h.nHeads}`);
  return validateConfig(
    {
      architecture: 'llama',
      dim: h.dim,
      hiddenDim: h.hiddenDim,
      nLayers: h.nLayers,
      nHeads: h.nHeads,
      nKvHeads: h.nKvHeads,
      headDim: h.dim / h.nHeads,
      vocabSize: Math.abs(h.rawVocab),
      maxSeqLen: h.seqLen,
      // llama2.c hard-codes these in run.c rather than storing them
      ropeTheta: 10000,
      normEps: 1e-5,
      qkvBias: false,
      tiedEmbeddings: h.rawVocab > 0,
    },
    path,
  );
}

/** Byte offsets of every canonical tensor, in file order; `end` is the exact file size. */
function layout(c: ModelConfig, start: number): { byName: Map<string, Slot>; end: number } {
  const byName = new Map<string, Slot>();
  let offset = start;
  const q = c.nHeads * c.headDim;
  const kv = c.nKvHeads * c.headDim;
  /** A [L, ...shape] block of per-layer tensors stored contiguously. */
  const perLayer = (key: keyof ReturnType<typeof blockTensorNames>, shape: number[], ropeHeads?: number) => {
    const bytes = shape.reduce((a, b) => a * b, 4);
    for (let l = 0; l < c.nLayers; l++) {
      byName.set(blockTensorNames(l)[key], { offset: offset + l * bytes, shape, ropeHeads });
    }
    offset += c.nLayers * bytes;
  };
  const single = (name: string | null, shape: number[]) => {
    if (name) byName.set(name, { offset, shape });
    offset += shape.reduce((a, b) => a * b, 4);
  };
  single(EMBED_TENSOR, [c.vocabSize, c.dim]);
  perLayer('attnNorm', [c.dim]);
  perLayer('wq', [q, c.dim], c.nHeads);
  perLayer('wk', [kv, c.dim], c.nKvHeads);
  perLayer('wv', [kv, c.dim]);
  perLayer('wo', [c.dim, q]);
  perLayer('ffnNorm', [c.dim]);
  perLayer('w1', [c.hiddenDim, c.dim]);
  perLayer('w2', [c.dim, c.hiddenDim]);
  perLayer('w3', [c.hiddenDim, c.dim]);
  single(FINAL_NORM_TENSOR, [c.dim]);
  // freq_cis_real and freq_cis_imag: precomputed RoPE tables we recompute from ropeTheta
  single(null, [c.maxSeqLen, c.headDim / 2]);
  single(null, [c.maxSeqLen, c.headDim / 2]);
  if (!c.tiedEmbeddings) single(LM_HEAD_TENSOR, [c.vocabSize, c.dim]);
  return { byName, end: offset };
}

async function readTensor(source: ByteSource, slot: Slot, c: ModelConfig): Promise<Float32Array> {
  const count = slot.shape.reduce((a, b) => a * b, 1);
  const raw = await source.read(slot.offset, count * 4);
  const w = toFloat32(raw, count);
  if (slot.ropeHeads === undefined) return w;
  // llama2.c rotates adjacent pairs (2i, 2i+1) of each head; HF-layout graphs rotate (i, i + half)
  // with the same frequency for pair i. Moving rows 2i -> i and 2i+1 -> half+i within each head
  // of BOTH wq and wk makes the rotate-half rotation of the permuted q/k equal the permuted
  // llama2.c rotation, and q·k sums over the head's dimensions, so the same permutation on both
  // sides leaves every attention score unchanged. It only moves rows (no arithmetic), so the
  // weights are bit-exact; at most the float summation order of q·k differs. v and wo are not
  // rotated and keep their order.
  return interleavedToHalfRows(w, slot.ropeHeads, c.headDim, c.dim);
}

const LITTLE_ENDIAN_HOST = new Uint8Array(Uint16Array.of(1).buffer)[0] === 1;

/** Copies little-endian float32 bytes into a fresh, aligned array the caller owns. */
function toFloat32(bytes: Uint8Array, count: number): Float32Array {
  const out = new Float32Array(count);
  if (LITTLE_ENDIAN_HOST) {
    new Uint8Array(out.buffer).set(bytes.subarray(0, count * 4));
  } else {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (let i = 0; i < count; i++) out[i] = view.getFloat32(i * 4, true);
  }
  return out;
}

function copyOut(bytes: Uint8Array): ArrayBuffer {
  return copyBytes(bytes).buffer as ArrayBuffer;
}

/** A copy that owns its buffer: a ByteSource may hand out views of a larger array. */
function copyBytes(bytes: Uint8Array): Uint8Array {
  return bytes.slice();
}

function basename(path: string): string {
  return path.slice(Math.max(path.lastIndexOf('/'), path.lastIndexOf('\\')) + 1);
}
