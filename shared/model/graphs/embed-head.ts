/**
 * The two ends of the model, run by the client: token ids -> hidden, and hidden -> logits.
 * The embedding table stays f32 in every package (a Gather, not a MatMul); the head is a
 * linear layer in the package dtype. A tied classifier gets its own copy in head.data so a
 * client can load the head without the embedding.
 */
import { DataType } from '../onnx/schema.ts';
import { createGraphBuilder } from '../onnx/graph-builder.ts';
import type { Model } from '../onnx/schema.ts';
import type { ModelConfig } from '../config.ts';
import { EMBED_TENSOR, FINAL_NORM_TENSOR, LM_HEAD_TENSOR } from '../checkpoint.ts';
import { linear, rmsNorm } from './linear.ts';
import type { WeightDtype } from './linear.ts';
import { floatBytes } from './weight-file.ts';
import type { WeightFile } from './weight-file.ts';

export const EMBED_IO = { inputIds: 'input_ids', hidden: 'hidden' } as const;
export const HEAD_IO = { hidden: 'hidden', logits: 'logits' } as const;

export async function buildEmbedGraph(c: ModelConfig, file: WeightFile, read: (name: string) => Promise<Float32Array>): Promise<Model> {
  const g = createGraphBuilder('embed');
  const ids = g.input(EMBED_IO.inputIds, DataType.INT64, [1, 'seq']);
  const ref = await file.append(floatBytes(await read(EMBED_TENSOR)));
  const table = g.externalInitializer(EMBED_TENSOR, DataType.FLOAT, [c.vocabSize, c.dim], ref);
  g.op('Gather', [table, ids], { axis: 0 }, { output: EMBED_IO.hidden });
  g.output(EMBED_IO.hidden, DataType.FLOAT, [1, 'seq', c.dim]);
  return g.build('infermesh token embedding');
}

export async function buildHeadGraph(c: ModelConfig, dtype: WeightDtype, file: WeightFile, read: (name: string) => Promise<Float32Array>): Promise<Model> {
  const g = createGraphBuilder('head');
  const x = g.input(HEAD_IO.hidden, DataType.FLOAT, [1, 'seq', c.dim]);
  const xn = await rmsNorm(g, file, x, FINAL_NORM_TENSOR, await read(FINAL_NORM_TENSOR), c.normEps);
  const weight = await read(c.tiedEmbeddings ? EMBED_TENSOR : LM_HEAD_TENSOR);
  const logits = await linear(g, file, dtype, xn, { name: LM_HEAD_TENSOR, weight, out: c.vocabSize, in: c.dim });
  g.op('Identity', [logits], {}, { output: HEAD_IO.logits });
  g.output(HEAD_IO.logits, DataType.FLOAT, [1, 'seq', c.vocabSize]);
  return g.build(`infermesh final norm and lm head (${dtype})`);
}
