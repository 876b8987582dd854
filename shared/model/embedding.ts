/**
 * The client's token embedding: a table lookup in JavaScript, reading the rows straight out of
 * the package's embed.data. A lookup needs no runtime; as an onnxruntime session it cost a
 * session run per token (and on WebGPU a GPU-to-CPU readback) for copying one row.
 * The table's place in embed.data is read from embed.onnx, the package's source of truth.
 */
import { UsageError, PackageError } from '../errors.ts';
import type { ModelConfig } from './config.ts';
import { EMBED_TENSOR } from './checkpoint.ts';
import type { Model } from './onnx/schema.ts';

export interface EmbeddingTable {
  /** [tokens.length × dim] hidden states */
  lookup(tokens: number[]): Float32Array;
}

export function createEmbeddingTable(config: Pick<ModelConfig, 'vocabSize' | 'dim'>, embedGraph: Model, embedData: Uint8Array): EmbeddingTable {
  const init = embedGraph.graph.initializer.find((t) => t.name === EMBED_TENSOR);
  const entry = (key: string) => Number(init?.externalData?.find((e) => e.key === key)?.value ?? NaN);
  const offset = entry('offset') || 0;
  const length = entry('length');
  const bytes = config.vocabSize * config.dim * 4;
  if (!init || length !== bytes || offset + length > embedData.byteLength) {
    throw new PackageError(`embedding table not found as ${bytes} bytes in embed.data`, { source: 'embed.onnx' });
  }
  // A Float32Array view needs 4-byte alignment; the compiler aligns tensors, but bytes handed in may not be.
  const at = embedData.byteOffset + offset;
  const table = at % 4 === 0 ? new Float32Array(embedData.buffer, at, length / 4) : new Float32Array(embedData.slice(offset, offset + length).buffer);
  return {
    lookup(tokens) {
      const out = new Float32Array(tokens.length * config.dim);
      tokens.forEach((t, i) => {
        if (!Number.isInteger(t) || t < 0 || t >= config.vocabSize) throw new UsageError(`token id ${t} is outside the vocabulary of ${config.vocabSize}`);
        out.set(table.subarray(t * config.dim, (t + 1) * config.dim), i * config.dim);
      });
      return out;
    },
  };
}
