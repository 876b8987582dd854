/**
 * The head (final RMSNorm and the vocabulary's linear: hidden [1, seq, dim] -> logits
 * [1, seq, vocab], shared/model/graphs/embed-head.ts) of a q4/q8 package, computed on the
 * quantized kernels against the packed classifier where onnxruntime has no quantized kernel
 * (WASM), behind onnxruntime's session interface. For 110M the classifier is 24.6M weights:
 * 98 MB read per token unpacked to f32, 14 MB packed (q4).
 */
import { expectedTensors, FINAL_NORM_TENSOR, LM_HEAD_TENSOR } from '../../model/checkpoint.ts';
import type { ModelConfig } from '../../model/config.ts';
import type { ExternalFile } from '../../model/dequantize-linears.ts';
import { buildHeadGraph, HEAD_IO } from '../../model/graphs/embed-head.ts';
import type { Model } from '../../model/onnx/schema.ts';
import type { OrtRuntime, OrtSession, OrtTensor } from '../ort.ts';
import { comparisonConfig, comparisonWeights, compiledWeights, differenceFromCompiled, graphDtype, UnsupportedGraphError } from './compiled-graph.ts';
import { createQuantizedGemv } from './quantized-gemv.ts';
import type { QuantizedGemv } from './quantized-gemv.ts';
import { rmsNorm } from './rms-norm.ts';

export interface QuantizedHead extends OrtSession {
  /** bytes the packed classifier takes in the kernels' memory */
  readonly weightBytes: number;
}

export async function openQuantizedHead(options: { config: ModelConfig; head: Model; externalData: ExternalFile[] }, deps: { ort: OrtRuntime; gemv?: QuantizedGemv }): Promise<QuantizedHead> {
  const { config, head } = options;
  const source = 'head';
  const dtype = graphDtype(head);
  if (dtype === 'f32') throw new UnsupportedGraphError('its linear is not quantized', { source });
  const small = comparisonConfig(config);
  const { file, read } = comparisonWeights(new Map(expectedTensors({ ...small, nLayers: 0 }).map((t) => [t.name, t.shape])));
  const difference = differenceFromCompiled(head, (await buildHeadGraph(small, dtype, file, read)).graph);
  if (difference) throw new UnsupportedGraphError(`not the compiler's ${dtype} head: ${difference}`, { source });
  const { dim, vocabSize, normEps } = config;
  const weights = compiledWeights(head, options.externalData, config, source);
  const packed = weights.matrix(LM_HEAD_TENSOR, vocabSize, dim);
  const norm = weights.norm(FINAL_NORM_TENSOR);
  const gemv = deps.gemv ?? (await createQuantizedGemv());
  const classifier = gemv.upload(packed);
  const normed = new Float32Array(dim);

  return {
    weightBytes: gemv.bytes() + norm.byteLength,
    inputNames: [HEAD_IO.hidden],
    outputNames: [HEAD_IO.logits],
    async run(feeds: Record<string, OrtTensor>) {
      const hidden = feeds[HEAD_IO.hidden]?.data;
      if (!(hidden instanceof Float32Array) || hidden.length % dim !== 0) throw new TypeError(`input ${HEAD_IO.hidden}: expected float32 rows of ${dim}`);
      const rows = hidden.length / dim;
      const logits = new Float32Array(rows * vocabSize);
      for (let r = 0; r < rows; r++) {
        rmsNorm(hidden.subarray(r * dim, (r + 1) * dim), norm, normEps, normed);
        gemv.multiply(normed, [classifier], [logits.subarray(r * vocabSize, (r + 1) * vocabSize)]);
      }
      return { [HEAD_IO.logits]: new deps.ort.Tensor('float32', logits, [1, rows, vocabSize]) } as never;
    },
    async release() {},
  } as QuantizedHead;
}
