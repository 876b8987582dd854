/**
 * A quantized block graph read back into its weights, for the quantized stage to compute by
 * hand (quantized-stage.ts), but only when the graph is exactly what the compiler builds for
 * the model's config (shared/model/graphs/block.ts, compared in compiled-graph.ts): any other
 * graph (another compiler version, a hand-edited or faulted shard) is refused by name and runs
 * on onnxruntime instead.
 */
import { blockTensorNames, expectedTensors } from '../../model/checkpoint.ts';
import type { ModelConfig } from '../../model/config.ts';
import type { ExternalFile } from '../../model/dequantize-linears.ts';
import { buildBlockGraph } from '../../model/graphs/block.ts';
import type { Model } from '../../model/onnx/schema.ts';
import type { QuantizedMatrix } from '../../model/quantize.ts';
import { comparisonConfig, comparisonWeights, compiledWeights, differenceFromCompiled, graphDtype, UnsupportedGraphError } from './compiled-graph.ts';

export interface BlockWeights {
  attnNorm: Float32Array;
  ffnNorm: Float32Array;
  wq: QuantizedMatrix;
  wk: QuantizedMatrix;
  wv: QuantizedMatrix;
  wo: QuantizedMatrix;
  /** gate */
  w1: QuantizedMatrix;
  /** down */
  w2: QuantizedMatrix;
  /** up */
  w3: QuantizedMatrix;
  bq?: Float32Array;
  bk?: Float32Array;
  bv?: Float32Array;
}

/** Reads block `layer`'s weights out of its graph; throws UnsupportedGraphError if it is not the compiler's q4/q8 block. */
export async function readBlockWeights(model: Model, config: ModelConfig, layer: number, externalData: ExternalFile[]): Promise<BlockWeights> {
  const source = `block ${layer}`;
  const dtype = graphDtype(model);
  if (dtype === 'f32') throw new UnsupportedGraphError('its linears are not quantized', { source });
  const small = comparisonConfig(config);
  const { file, read } = comparisonWeights(new Map(expectedTensors({ ...small, nLayers: layer + 1 }).map((t) => [t.name, t.shape])));
  const compiled = await buildBlockGraph(small, layer, dtype, file, read);
  const difference = differenceFromCompiled(model, compiled.graph);
  if (difference) throw new UnsupportedGraphError(`not the compiler's ${dtype} block: ${difference}`, { source });

  const { matrix, norm, floats } = compiledWeights(model, externalData, config, source);
  const n = blockTensorNames(layer);
  const { dim, hiddenDim } = config;
  const qDim = config.nHeads * config.headDim;
  const kvDim = config.nKvHeads * config.headDim;
  const bias = (name: string) => (config.qkvBias ? floats(`${name}.bias`) : undefined);
  return {
    attnNorm: norm(n.attnNorm),
    ffnNorm: norm(n.ffnNorm),
    wq: matrix(n.wq, qDim, dim),
    wk: matrix(n.wk, kvDim, dim),
    wv: matrix(n.wv, kvDim, dim),
    wo: matrix(n.wo, dim, qDim),
    w1: matrix(n.w1, hiddenDim, dim),
    w2: matrix(n.w2, dim, hiddenDim),
    w3: matrix(n.w3, hiddenDim, dim),
    bq: bias(n.wq),
    bk: bias(n.wk),
    bv: bias(n.wv),
  };
}
