/**
 * Block quantization of linear weights into the layout of onnxruntime's com.microsoft
 * MatMulNBits: B is uint8 [N, blocks, blockBytes] with K split into blocks of 32, scales are
 * float32 [N * blocks], and no zero-point input, so the operator's default zero point
 * 2^(bits-1) applies (8 for 4-bit, 128 for 8-bit). fp32 scales keep it runnable on WebGPU
 * devices without shader-f16. 4-bit packs element 2j in the low nibble and 2j+1 in the high one.
 *
 * Rounding follows llama.cpp's q4_0: the scale maps the block's largest-magnitude value
 * exactly onto -8, so the extreme is represented without error.
 */
export type QuantBits = 4 | 8;
export const QUANT_BLOCK = 32;

export interface QuantizedMatrix {
  bits: QuantBits;
  /** rows (output features) */
  n: number;
  /** columns (input features) */
  k: number;
  blocks: number;
  /** uint8 [n, blocks, QUANT_BLOCK * bits / 8] */
  data: Uint8Array;
  /** float32 [n * blocks] */
  scales: Float32Array;
}

/** Quantizes w, row-major [n, k] (nn.Linear [out, in]); a last partial block is zero-padded. */
export function quantizeMatrix(w: Float32Array, n: number, k: number, bits: QuantBits): QuantizedMatrix {
  if (w.length !== n * k) throw new RangeError(`quantizeMatrix: ${w.length} values is not ${n}x${k}`);
  const blocks = Math.ceil(k / QUANT_BLOCK);
  const blockBytes = (QUANT_BLOCK * bits) / 8;
  const data = new Uint8Array(n * blocks * blockBytes);
  const scales = new Float32Array(n * blocks);
  const zero = 1 << (bits - 1);
  const qmax = (1 << bits) - 1;
  for (let row = 0; row < n; row++) {
    for (let blk = 0; blk < blocks; blk++) {
      const start = row * k + blk * QUANT_BLOCK;
      const len = Math.min(QUANT_BLOCK, k - blk * QUANT_BLOCK);
      let extreme = 0;
      for (let j = 0; j < len; j++) {
        const v = w[start + j];
        if (Math.abs(v) > Math.abs(extreme)) extreme = v;
      }
      // 4-bit: extreme -> -8 (q4_0). 8-bit: symmetric ±127 keeps both signs exact-ish.
      const scale = Math.fround(bits === 4 ? extreme / -8 : Math.abs(extreme) / 127);
      const inv = scale === 0 ? 0 : 1 / scale;
      scales[row * blocks + blk] = scale;
      const out = (row * blocks + blk) * blockBytes;
      for (let j = 0; j < QUANT_BLOCK; j++) {
        const v = j < len ? w[start + j] : 0;
        const q = Math.min(qmax, Math.max(0, Math.round(v * inv) + zero));
        if (bits === 8) data[out + j] = q;
        else data[out + (j >> 1)] |= (j & 1) === 0 ? q : q << 4;
      }
    }
  }
  return { bits, n, k, blocks, data, scales };
}

/** The float32 [n, k] matrix a QuantizedMatrix stands for: what MatMulNBits multiplies by. */
export function dequantizeMatrix(q: QuantizedMatrix): Float32Array {
  const { n, k, blocks, bits } = q;
  const out = new Float32Array(n * k);
  const blockBytes = (QUANT_BLOCK * bits) / 8;
  const zero = 1 << (bits - 1);
  for (let row = 0; row < n; row++) {
    for (let col = 0; col < k; col++) {
      const blk = Math.floor(col / QUANT_BLOCK);
      const j = col % QUANT_BLOCK;
      const base = (row * blocks + blk) * blockBytes;
      const raw = bits === 8 ? q.data[base + j] : (q.data[base + (j >> 1)] >> ((j & 1) * 4)) & 0xf;
      out[row * k + col] = Math.fround((raw - zero) * q.scales[row * blocks + blk]);
    }
  }
  return out;
}
