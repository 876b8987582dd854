/**
 * Whether a graph is exactly what the compiler builds (shared/model/graphs/): the quantized
 * stage and head compute the compiler's operations by hand, so they may only stand in for a
 * graph that has those operations and no others.
 *
 * The compiler's graph is rebuilt for comparison with `dim`, `hiddenDim` and `vocabSize` cut to
 * one quantization block: building it at full size would quantize every weight again (0.2 s per
 * 110M block, 0.6 s for its head). Those sizes appear only in the linears' K and N and in the
 * weights' shapes, which are compared against the real config separately (compiledWeights).
 */
import { InfermeshError } from '../../errors.ts';
import type { ModelConfig } from '../../model/config.ts';
import { externalBytes, externalFloats } from '../../model/dequantize-linears.ts';
import type { ExternalFile } from '../../model/dequantize-linears.ts';
import type { WeightDtype } from '../../model/graphs/linear.ts';
import type { ExternalRef } from '../../model/onnx/graph-builder.ts';
import { AttributeType } from '../../model/onnx/schema.ts';
import type { Attribute, Graph, Model, Node, Tensor } from '../../model/onnx/schema.ts';
import { QUANT_BLOCK } from '../../model/quantize.ts';
import type { QuantizedMatrix } from '../../model/quantize.ts';

/** A graph the quantized stage or head cannot run (not q4/q8, or not the compiler's). */
export class UnsupportedGraphError extends InfermeshError {
  override name = 'UnsupportedGraphError';
}

/** The weight dtype of a compiled graph: q4/q8 by its MatMulNBits nodes, else f32. */
export function graphDtype(model: Model): WeightDtype {
  const bits = model.graph.node.find((n) => n.opType === 'MatMulNBits')?.attribute.find((a) => a.name === 'bits')?.i;
  return bits === 4 ? 'q4' : bits === 8 ? 'q8' : 'f32';
}

/** The config the comparison graph is built for: the sizes that only scale the linears, cut to one block. */
export const comparisonConfig = (config: ModelConfig): ModelConfig => ({ ...config, dim: QUANT_BLOCK, hiddenDim: QUANT_BLOCK, vocabSize: QUANT_BLOCK });

/** A weight file and reader for building a comparison graph: zeros of each tensor's size, written nowhere. */
export function comparisonWeights(shapes: Map<string, number[]>) {
  const file = { location: 'comparison.data', append: async (bytes: Uint8Array): Promise<ExternalRef> => ({ location: 'comparison.data', offset: 0, length: bytes.byteLength }) };
  const read = async (name: string) => new Float32Array((shapes.get(name) ?? [0]).reduce((a, b) => a * b, 1));
  return { file, read };
}

/** An attribute by its value, as built or as decoded (where protobuf leaves out zeros). */
function attributeKey(a: Attribute): string {
  const value = {
    [AttributeType.FLOAT]: () => Math.fround(a.f ?? 0),
    [AttributeType.INT]: () => Number(a.i ?? 0),
    [AttributeType.STRING]: () => Array.from(a.s ?? []).join(','),
    [AttributeType.FLOATS]: () => (a.floats ?? []).map(Math.fround).join(','),
    [AttributeType.INTS]: () => (a.ints ?? []).map(Number).join(','),
  }[a.type];
  return `${a.name}:${a.type}:${value ? value() : 'unknown'}`;
}

/** A linear's K and N scale with the config: compiledWeights checks them. */
const scaled = (n: Node, a: Attribute) => n.opType === 'MatMulNBits' && (a.name === 'K' || a.name === 'N');
const nodeKey = (n: Node) =>
  `${n.opType}@${n.domain ?? ''}(${n.input.join(',')})->(${n.output.join(',')})[${n.attribute.filter((a) => !scaled(n, a)).map(attributeKey).sort().join(';')}]`;
/** Constants compare by value; weights (external) by name and type, their sizes by compiledWeights. */
const tensorKey = (t: Tensor) => `${t.name}:${t.dataType}:${t.externalData?.length ? 'external' : `${t.dims.join('x')}:${Array.from(t.rawData ?? []).join(',')}`}`;

/** Why `model` differs from the compiler's `compiled`, or undefined if it does not. */
export function differenceFromCompiled(model: Model, compiled: Graph): string | undefined {
  const g = model.graph;
  const io = (vs: { name: string }[]) => vs.map((v) => v.name).join(',');
  if (io(g.input) !== io(compiled.input) || io(g.output) !== io(compiled.output)) return `its inputs and outputs are (${io(g.input)}) -> (${io(g.output)})`;
  if (g.node.length !== compiled.node.length) return `it has ${g.node.length} nodes, the compiler's has ${compiled.node.length}`;
  const at = g.node.findIndex((n, i) => nodeKey(n) !== nodeKey(compiled.node[i]));
  if (at >= 0) return `node ${at} is ${nodeKey(g.node[at])}, the compiler's is ${nodeKey(compiled.node[at])}`;
  const mine = new Map(g.initializer.map((t) => [t.name, tensorKey(t)]));
  const differs = compiled.initializer.find((t) => mine.get(t.name) !== tensorKey(t));
  if (differs || mine.size !== compiled.initializer.length) return `initializer ${differs?.name ?? '(extra)'} differs from the compiler's`;
  return undefined;
}

/** Why a linear's K and N (the MatMulNBits reading `weight`) are not [n, k], or undefined if they are. */
export function linearSizeDifference(model: Model, weight: string, n: number, k: number): string | undefined {
  const node = model.graph.node.find((x) => x.opType === 'MatMulNBits' && x.input[1] === weight);
  const attr = (name: string) => Number(node?.attribute.find((a) => a.name === name)?.i ?? 0);
  if (!node) return `no linear reads ${weight}`;
  if (attr('N') !== n || attr('K') !== k) return `the linear reading ${weight} is ${attr('N')}x${attr('K')}, the config's is ${n}x${k}`;
  return undefined;
}

/**
 * The weights of a compiled q4/q8 graph, each checked against the config's sizes; a missing or
 * mis-sized one throws UnsupportedGraphError from `source`.
 */
export function compiledWeights(model: Model, externalData: ExternalFile[], config: ModelConfig, source: string) {
  const bits = graphDtype(model) === 'q4' ? 4 : 8;
  const files = new Map(externalData.map((f) => [f.path, f.data]));
  const initializers = new Map(model.graph.initializer.map((t) => [t.name, t]));
  const tensor = (name: string) => {
    const t = initializers.get(name);
    if (!t) throw new UnsupportedGraphError(`initializer ${name} is missing`, { source });
    return t;
  };
  const floats = (name: string) => externalFloats(tensor(name), files);
  return {
    floats,
    /** a linear's packed weights, [n, k] */
    matrix(name: string, n: number, k: number): QuantizedMatrix {
      const wrong = linearSizeDifference(model, `${name}.q${bits}`, n, k);
      if (wrong) throw new UnsupportedGraphError(wrong, { source });
      return { bits, n, k, blocks: Math.ceil(k / QUANT_BLOCK), data: externalBytes(tensor(`${name}.q${bits}`), files), scales: floats(`${name}.scales`) };
    },
    /** an RMSNorm's weights, one per hidden feature */
    norm(name: string): Float32Array {
      const w = floats(name);
      if (w.length !== config.dim) throw new UnsupportedGraphError(`${name} has ${w.length} weights, the config's dim is ${config.dim}`, { source });
      return w;
    },
  };
}
