/**
 * y = W x against block-quantized weights, on the WebAssembly SIMD kernels of q-gemv.wat: what
 * a quantized stage computes its linears with where onnxruntime has no quantized kernel (WASM).
 *
 * Each matrix is copied once into the kernel's memory as the package stores it (q4: 18 bytes
 * per 32 weights with the scale, against 128 as f32), so a decode step reads 1/8 (q4) or 1/4
 * (q8) of the bytes onnxruntime's f32 GEMV reads. The input vector is quantized to int16 with
 * a scale per block of 32 (each element within 2^-16 of its block's largest, so an outlier
 * costs only its own block precision; far inside what separates q4 from f32), once for all
 * the matrices that share it.
 */
import { QUANT_BLOCK } from '../../model/quantize.ts';
import type { QuantizedMatrix } from '../../model/quantize.ts';
import { WASM_BASE64 } from './q-gemv.wasm.generated.ts';

/** A matrix in the kernel's memory. */
export interface PackedMatrix {
  readonly bits: 4 | 8;
  /** rows (output features) */
  readonly n: number;
  /** columns (input features) */
  readonly k: number;
  readonly blocks: number;
  readonly weights: number;
  readonly scales: number;
}

export interface QuantizedGemv {
  /** Copies a matrix into the kernel's memory; done once, at load. */
  upload(matrix: QuantizedMatrix): PackedMatrix;
  /** outs[i] = matrices[i] x, for matrices of the same input width and bits; x is quantized once. */
  multiply(x: Float32Array, matrices: readonly PackedMatrix[], outs: readonly Float32Array[]): void;
  /** bytes the uploaded matrices take */
  bytes(): number;
}

interface Kernels {
  memory: WebAssembly.Memory;
  q4_gemv(w: number, s: number, x: number, xs: number, corr: number, out: number, rows: number, blocks: number): void;
  q8_gemv(w: number, s: number, x: number, xs: number, corr: number, out: number, rows: number, blocks: number): void;
}

const PAGE = 65536;
const INT16_MAX = 32767;

/** Where element j of a q4 block sits in its int16 lanes: each half-block's even elements, then its odd ones. */
const Q4_LANE = Int32Array.from({ length: QUANT_BLOCK }, (_, j) => (j & 16) + ((j & 1) << 3) + ((j & 15) >> 1));

let compiled: Promise<WebAssembly.Module> | undefined;
const kernelModule = () => (compiled ??= WebAssembly.compile(Uint8Array.from(atob(WASM_BASE64), (c) => c.charCodeAt(0))));

/** One kernel instance with its own memory: a stage's weights live and go with it. */
export async function createQuantizedGemv(): Promise<QuantizedGemv> {
  const kernels = (await WebAssembly.instantiate(await kernelModule())).exports as unknown as Kernels;
  const { memory } = kernels;
  let top = PAGE; // page 0 stays unused: no matrix at address 0
  let weightBytes = 0;
  const alloc = (bytes: number) => {
    const at = top;
    top += Math.ceil(bytes / 16) * 16;
    if (top > memory.buffer.byteLength) {
      try {
        memory.grow(Math.ceil((top - memory.buffer.byteLength) / PAGE));
      } catch (err) {
        throw new RangeError(`the quantized kernels cannot hold ${(top / 2 ** 20).toFixed(0)} MiB of weights in one WebAssembly memory (${(err as Error).message}); load fewer layers`, { cause: err });
      }
    }
    return at;
  };
  // Scratch for one input vector (int16 lanes, per-block scales and corrections) and one output; grown on demand.
  let scratch = { blocks: 0, rows: 0, x: 0, xs: 0, corr: 0, out: 0 };
  const scratchFor = (blocks: number, rows: number) => {
    if (blocks > scratch.blocks || rows > scratch.rows) {
      const b = Math.max(blocks, scratch.blocks);
      const r = Math.max(rows, scratch.rows);
      scratch = { blocks: b, rows: r, x: alloc(b * QUANT_BLOCK * 2), xs: alloc(b * 4), corr: alloc(b * 16), out: alloc(r * 4) };
    }
    return scratch;
  };

  /** Quantizes x into the scratch lanes for `bits`, a scale per block; false if x is not finite. */
  const quantizeInput = (x: Float32Array, k: number, blocks: number, bits: 4 | 8): boolean => {
    const lanes = new Int16Array(memory.buffer, scratch.x, blocks * QUANT_BLOCK);
    const scales = new Float32Array(memory.buffer, scratch.xs, blocks);
    const corr = new Int32Array(memory.buffer, scratch.corr, blocks * 4);
    const zero = bits === 4 ? 8 : 128;
    for (let b = 0; b < blocks; b++) {
      const base = b * QUANT_BLOCK;
      const end = Math.min(k, base + QUANT_BLOCK);
      let max = 0;
      for (let i = base; i < end; i++) {
        const a = Math.abs(x[i]);
        if (!(a <= max)) max = a; // NaN lands here too
      }
      if (!Number.isFinite(max)) return false;
      const inv = max > 0 ? INT16_MAX / max : 0;
      let sum = 0;
      for (let j = 0; j < QUANT_BLOCK; j++) {
        const q = base + j < end ? Math.round(x[base + j] * inv) : 0;
        sum += q;
        lanes[base + (bits === 4 ? Q4_LANE[j] : j)] = q;
      }
      scales[b] = max / INT16_MAX;
      corr[b * 4] = -zero * sum;
    }
    return true;
  };

  return {
    upload(m) {
      const blockBytes = (QUANT_BLOCK * m.bits) / 8;
      if (m.data.byteLength !== m.n * m.blocks * blockBytes || m.scales.length !== m.n * m.blocks || m.blocks !== Math.ceil(m.k / QUANT_BLOCK)) {
        throw new RangeError(`a ${m.n}x${m.k} q${m.bits} matrix needs ${m.n * m.blocks * blockBytes} bytes and ${m.n * m.blocks} scales, got ${m.data.byteLength} and ${m.scales.length}`);
      }
      const weights = alloc(m.data.byteLength);
      new Uint8Array(memory.buffer, weights, m.data.byteLength).set(m.data);
      const scales = alloc(m.scales.byteLength);
      new Float32Array(memory.buffer, scales, m.scales.length).set(m.scales);
      weightBytes += m.data.byteLength + m.scales.byteLength;
      return { bits: m.bits, n: m.n, k: m.k, blocks: m.blocks, weights, scales };
    },
    multiply(x, matrices, outs) {
      // Sized first: growing the scratch later would move it from under the quantized input.
      let blocks = 0;
      let rows = 0;
      for (const m of matrices) (blocks = Math.max(blocks, m.blocks)), (rows = Math.max(rows, m.n));
      const s = scratchFor(blocks, rows);
      let prepared: { bits: number; k: number; finite: boolean } | undefined;
      matrices.forEach((m, i) => {
        const out = outs[i];
        if (x.length < m.k || out.length < m.n) throw new RangeError(`a ${m.n}x${m.k} matrix takes ${m.k} inputs into ${m.n} outputs, got ${x.length} into ${out.length}`);
        if (prepared?.bits !== m.bits || prepared.k !== m.k) prepared = { bits: m.bits, k: m.k, finite: quantizeInput(x, m.k, m.blocks, m.bits) };
        if (!prepared.finite) return void out.fill(NaN, 0, m.n);
        (m.bits === 4 ? kernels.q4_gemv : kernels.q8_gemv)(m.weights, m.scales, s.x, s.xs, s.corr, s.out, m.n, m.blocks);
        out.set(new Float32Array(memory.buffer, s.out, m.n));
      });
    },
    bytes: () => weightBytes,
  };
}
