/**
 * A quantized block graph read back into its weights, for the quantized stage to compute by
 * hand (quantized-stage.ts), but only when the graph is exactly what the compiler builds for
 * the model's config (shared/model/graphs/block.ts, compared in compiled-graph.ts): any other
 * graph (another compiler version, a hand-edited or faulted shard) is refused by name and runs
 * on onnxruntime instead.
 */
import { blockTensorNames, expectedTensors } from '../../model/checkpoint.ts';
import type { ModelConfig } from '../../model/config.ts';
import { externalBytes } from '../../model/dequantize-linears.ts';
import type { ExternalFile } from '../../model/dequantize-linears.ts';
import { buildBlockGraph } from '../../model/graphs/block.ts';
import type { WeightDtype } from '../../model/graphs/linear.ts';
import type { Model } from '../../model/onnx/schema.ts';
import { QUANT_BLOCK } from '../../model/quantize.ts';
import type { QuantizedMatrix } from '../../model/quantize.ts';
import { comparisonConfig, comparisonWeights, differenceFromCompiled, linearSizeDifference, UnsupportedGraphError } from './compiled-graph.ts';

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

/** The weight dtype of a block graph: q4/q8 by its MatMulNBits nodes, else f32. */
export function blockDtype(model: Model): WeightDtype {
  const bits = model.graph.node.find((n) => n.opType === 'MatMulNBits')?.attribute.find((a) => a.name === 'bits')?.i;
  return bits === 4 ? 'q4' : bits === 8 ? 'q8' : 'f32';
}

const floats = (bytes: Uint8Array) => new Float32Array(bytes.slice().buffer);

/** Reads block `layer`'s weights out of its graph; throws UnsupportedGraphError if it is not the compiler's q4/q8 block. */
export async function readBlockWeights(model: Model, config: ModelConfig, layer: number, externalData: ExternalFile[]): Promise<BlockWeights> {
  const source = `block ${layer}`;
  const dtype = blockDtype(model);
  if (dtype === 'f32') throw new UnsupportedGraphError('its linears are not quantized', { source });
  const small = comparisonConfig(config);
  const { file, read } = comparisonWeights(new Map(expectedTensors({ ...small, nLayers: layer + 1 }).map((t) => [t.name, t.shape])));
  const compiled = await buildBlockGraph(small, layer, dtype, file, read);
  const difference = differenceFromCompiled(model, compiled.graph);
  if (difference) throw new UnsupportedGraphError(`not the compiler's ${dtype} block: ${difference}`, { source });

  const files = new Map(externalData.map((f) => [f.path, f.data]));
  const initializers = new Map(model.graph.initializer.map((t) => [t.name, t]));
  const bytesOf = (name: string) => {
    const t = initializers.get(name);
    if (!t) throw new UnsupportedGraphError(`initializer ${name} is missing`, { source });
    return externalBytes(t, files);
  };
  const bits = dtype === 'q4' ? 4 : 8;
  const matrix = (name: string, n: number, k: number): QuantizedMatrix => {
    const wrong = linearSizeDifference(model, `${name}.q${bits}`, n, k);
    if (wrong) throw new UnsupportedGraphError(wrong, { source });
    return { bits, n, k, blocks: Math.ceil(k / QUANT_BLOCK), data: bytesOf(`${name}.q${bits}`), scales: floats(bytesOf(`${name}.scales`)) };
  };
  const norm = (name: string) => {
    const w = floats(bytesOf(name));
    if (w.length !== config.dim) throw new UnsupportedGraphError(`${name} has ${w.length} weights, the config's dim is ${config.dim}`, { source });
    return w;
  };
  const n = blockTensorNames(layer);
  const { dim, hiddenDim } = config;
  const qDim = config.nHeads * config.headDim;
  const kvDim = config.nKvHeads * config.headDim;
  const bias = (name: string) => (config.qkvBias ? floats(bytesOf(`${name}.bias`)) : undefined);
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
