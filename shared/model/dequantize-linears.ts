/**
 * Rewrites a graph's MatMulNBits (q4/q8 linears) into plain MatMuls against f32 weights, once,
 * at load: what a stage opens on onnxruntime's WASM (and onnxruntime-web's CPU) provider.
 *
 * Why: WASM has no 4-bit kernel. onnxruntime's MLAS has no QNBitGemm dispatch for WebAssembly,
 * so MatMulNBits falls back to dequantizing its whole B matrix to f32 on every call and then
 * multiplying with B transposed, which skips the M=1 GEMV path (contrib_ops/cpu/quantization/
 * matmul_nbits.cc, ComputeBUnpacked: "TODO(fajin): move B dequant to prepack"). A 110M layer
 * took 18 ms per decode step that way against 1.5 ms as f32. Done once here, the weights cost
 * 8x (q4) or 4x (q8) their packed size in memory, and each step is the f32 path's.
 *
 * The products are the operator's own: the same dequantized values (dequantizeMatrix is what
 * MatMulNBits multiplies by, accuracy_level 0) in an f32 GEMM, so outputs differ from the
 * quantized kernels' only by summation order, far inside what the validator tolerates.
 */
import { dequantizeMatrix, QUANT_BLOCK } from './quantize.ts';
import type { QuantBits } from './quantize.ts';
import { transpose } from './graphs/linear.ts';
import { DataType, decodeModel, encodeModel } from './onnx/schema.ts';
import type { Attribute, Model, Node, Tensor } from './onnx/schema.ts';

/** The external weight file the rewritten MatMuls' f32 weights live in. */
export const DEQUANTIZED_WEIGHTS_FILE = 'dequantized-weights.bin';

export interface ExternalFile {
  path: string;
  data: Uint8Array;
}

export interface DequantizedGraph {
  model: Model;
  externalData: ExternalFile[];
  /** MatMulNBits nodes rewritten */
  rewritten: number;
  /** bytes the f32 weights take, against `quantizedBytes` for the packed ones they replace */
  f32Bytes: number;
  quantizedBytes: number;
}

const attr = (node: Node, name: string) => node.attribute.find((a: Attribute) => a.name === name)?.i;

/** The bytes of an initializer kept in an external file: a view of that file. */
export function externalBytes(tensor: Tensor, files: Map<string, Uint8Array>): Uint8Array {
  const entry = (key: string) => tensor.externalData?.find((e) => e.key === key)?.value;
  const file = files.get(entry('location') ?? '');
  if (!file) throw new Error(`initializer ${tensor.name}: its external file ${entry('location')} was not handed in`);
  const offset = Number(entry('offset') ?? 0);
  const length = Number(entry('length') ?? file.byteLength - offset);
  return file.subarray(offset, offset + length);
}

/** An f32 initializer kept in an external file, copied out (the view may not be 4-byte aligned). */
export function externalFloats(tensor: Tensor, files: Map<string, Uint8Array>): Float32Array {
  return new Float32Array(externalBytes(tensor, files).slice().buffer);
}

/**
 * The graph with every MatMulNBits whose weights are initializers (no zero points, no bias
 * input: the compiler's form, shared/model/graphs/linear.ts) turned into a MatMul; the packed
 * initializers it no longer uses are dropped. Other graphs come back as they were.
 */
export function dequantizeLinears(model: Model, externalData: ExternalFile[]): DequantizedGraph {
  const files = new Map(externalData.map((f) => [f.path, f.data]));
  const initializers = new Map(model.graph.initializer.map((t) => [t.name, t]));
  const chunks: Uint8Array[] = [];
  let offset = 0;
  let rewritten = 0;
  let quantizedBytes = 0;
  const dropped = new Set<string>();
  const added: Tensor[] = [];
  const node = model.graph.node.map((n): Node => {
    const b = initializers.get(n.input[1]);
    const s = initializers.get(n.input[2]);
    if (n.opType !== 'MatMulNBits' || !b || !s || n.input.length > 3) return n;
    const k = attr(n, 'K')!;
    const out = attr(n, 'N')!;
    const bits = attr(n, 'bits') as QuantBits;
    if (attr(n, 'block_size') !== QUANT_BLOCK || (bits !== 4 && bits !== 8)) return n;
    const data = externalBytes(b, files);
    const scales = externalFloats(s, files);
    // nn.Linear's [out, in], dequantized; MatMul takes its transpose [in, out].
    const w = transpose(dequantizeMatrix({ bits, n: out, k, blocks: Math.ceil(k / QUANT_BLOCK), data, scales }), out, k);
    const bytes = new Uint8Array(w.buffer);
    const name = `${n.input[1]}.f32`;
    added.push({ name, dataType: DataType.FLOAT, dims: [k, out], dataLocation: 1, externalData: [
      { key: 'location', value: DEQUANTIZED_WEIGHTS_FILE },
      { key: 'offset', value: String(offset) },
      { key: 'length', value: String(bytes.byteLength) },
    ] });
    chunks.push(bytes);
    offset += bytes.byteLength;
    quantizedBytes += data.byteLength + scales.byteLength;
    dropped.add(b.name).add(s.name);
    rewritten++;
    return { name: n.name, opType: 'MatMul', input: [n.input[0], name], output: n.output, attribute: [] };
  });
  if (rewritten === 0) return { model, externalData, rewritten, f32Bytes: 0, quantizedBytes: 0 };
  // A packed initializer another node still reads stays.
  const stillRead = new Set(node.flatMap((n) => n.input));
  const initializer = [...model.graph.initializer.filter((t) => !dropped.has(t.name) || stillRead.has(t.name)), ...added];
  const weights = new Uint8Array(offset);
  let at = 0;
  for (const c of chunks) {
    weights.set(c, at);
    at += c.byteLength;
  }
  return {
    model: { ...model, graph: { ...model.graph, node, initializer } },
    externalData: [...externalData, { path: DEQUANTIZED_WEIGHTS_FILE, data: weights }],
    rewritten,
    f32Bytes: offset,
    quantizedBytes,
  };
}

/** An encoded graph and its files as WASM should open them: `dequantizeLinears`, from bytes to bytes. */
export function unpackedForWasm(graph: Uint8Array, externalData: ExternalFile[]): { graph: Uint8Array; externalData: ExternalFile[] } {
  const d = dequantizeLinears(decodeModel(graph), externalData);
  return { graph: d.rewritten > 0 ? encodeModel(d.model) : graph, externalData: d.externalData };
}
