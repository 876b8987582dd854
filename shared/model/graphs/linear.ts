/**
 * y = x W^T (+ b) for an nn.Linear weight W [out, in], in the package's weight dtype:
 * f32 as a plain MatMul against W^T, q8/q4 as com.microsoft MatMulNBits against the
 * block-quantized W (see shared/model/quantize.ts).
 */
import { DataType } from '../onnx/schema.ts';
import { MS_DOMAIN } from '../onnx/graph-builder.ts';
import type { GraphBuilder } from '../onnx/graph-builder.ts';
import { quantizeMatrix, QUANT_BLOCK } from '../quantize.ts';
import { floatBytes } from './weight-file.ts';
import type { WeightFile } from './weight-file.ts';

export type WeightDtype = 'f32' | 'q8' | 'q4';
export const WEIGHT_DTYPES: readonly WeightDtype[] = ['f32', 'q8', 'q4'];

/**
 * MatMulNBits accuracy_level: 0 dequantizes to fp32 and multiplies in fp32 on every EP, which
 * keeps q4/q8 outputs a pure function of the stored weights (what the validator replays).
 */
export const MATMUL_NBITS_ACCURACY_LEVEL = 0;

export function transpose(w: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(w.length);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) out[c * rows + r] = w[r * cols + c];
  }
  return out;
}

export interface LinearSpec {
  name: string;
  /** [out, in] */
  weight: Float32Array;
  out: number;
  in: number;
  bias?: Float32Array;
}

export async function linear(g: GraphBuilder, file: WeightFile, dtype: WeightDtype, x: string, spec: LinearSpec): Promise<string> {
  let y: string;
  if (dtype === 'f32') {
    const ref = await file.append(floatBytes(transpose(spec.weight, spec.out, spec.in)));
    const w = g.externalInitializer(spec.name, DataType.FLOAT, [spec.in, spec.out], ref);
    y = g.op('MatMul', [x, w]);
  } else {
    const bits = dtype === 'q4' ? 4 : 8;
    const q = quantizeMatrix(spec.weight, spec.out, spec.in, bits);
    const bRef = await file.append(q.data);
    const sRef = await file.append(floatBytes(q.scales));
    const blockBytes = (QUANT_BLOCK * bits) / 8;
    const b = g.externalInitializer(`${spec.name}.q${bits}`, DataType.UINT8, [q.n, q.blocks, blockBytes], bRef);
    const s = g.externalInitializer(`${spec.name}.scales`, DataType.FLOAT, [q.n * q.blocks], sRef);
    y = g.op('MatMulNBits', [x, b, s], {
      K: spec.in,
      N: spec.out,
      bits,
      block_size: QUANT_BLOCK,
      accuracy_level: MATMUL_NBITS_ACCURACY_LEVEL,
    }, { domain: MS_DOMAIN });
  }
  if (spec.bias) {
    const ref = await file.append(floatBytes(spec.bias));
    const b = g.externalInitializer(`${spec.name}.bias`, DataType.FLOAT, [spec.out], ref);
    y = g.op('Add', [y, b]);
  }
  return y;
}

/** RMSNorm as Pow/ReduceMean/Add/Sqrt/Div/Mul: the pattern onnxruntime fuses into SimplifiedLayerNormalization. */
export async function rmsNorm(g: GraphBuilder, file: WeightFile, x: string, name: string, weight: Float32Array, eps: number): Promise<string> {
  const ref = await file.append(floatBytes(weight));
  const w = g.externalInitializer(name, DataType.FLOAT, [weight.length], ref);
  const sq = g.op('Pow', [x, g.constFloat([2], [])]);
  const mean = g.op('ReduceMean', [sq], { axes: [-1], keepdims: 1 });
  const rms = g.op('Sqrt', [g.op('Add', [mean, g.constFloat([eps], [])])]);
  return g.op('Mul', [g.op('Div', [x, rms]), w]);
}
