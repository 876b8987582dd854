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
 *
 * With `threads` > 1 and a way to start threads (`spawn`), the memory is shared and each
 * product's rows are split among the threads (gemv-threads.ts); where shared memory is not
 * available (a page that is not cross-origin isolated) the kernels run on the calling thread.
 */
import { QUANT_BLOCK } from '../../model/quantize.ts';
import type { QuantizedMatrix } from '../../model/quantize.ts';
import { WASM_BASE64, WASM_SHARED_BASE64 } from './q-gemv.wasm.generated.ts';
import { CONTROL_BYTES, MAX_JOBS, startGemvThreads } from './gemv-threads.ts';
import type { GemvJob, SpawnGemvHelper } from './gemv-threads.ts';

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
  /** the threads the products run on */
  readonly threads: number;
  /** Stops the helper threads (a stage released). */
  close(): void;
}

export interface QuantizedGemvOptions {
  /** threads to split each product among (default 1) */
  threads?: number;
  /** how long a helper may take over its share before it counts as gone (default HELPER_STALL_MS) */
  stallMs?: number;
}

export interface QuantizedGemvDeps {
  /** starts a helper thread (worker/gemv-helpers.ts); without it the kernels run on one thread */
  spawn?: SpawnGemvHelper;
}

interface Kernels {
  memory?: WebAssembly.Memory;
  q4_gemv(w: number, s: number, x: number, xs: number, corr: number, out: number, rows: number, blocks: number): void;
  q8_gemv(w: number, s: number, x: number, xs: number, corr: number, out: number, rows: number, blocks: number): void;
}

const PAGE = 65536;
const INT16_MAX = 32767;

/** Where element j of a q4 block sits in its int16 lanes: each half-block's even elements, then its odd ones. */
const Q4_LANE = Int32Array.from({ length: QUANT_BLOCK }, (_, j) => (j & 16) + ((j & 1) << 3) + ((j & 15) >> 1));

/** The most pages a shared memory may grow to (the kernels' import says the same: 4 GiB). */
const SHARED_MAX_PAGES = 65536;
/** Where the threads' control block sits: in page 0, which holds no matrix. */
const CONTROL_AT = 1024;
if (CONTROL_AT + CONTROL_BYTES > PAGE) throw new Error('the kernel threads’ control block does not fit in page 0');

const compiled = new Map<string, Promise<WebAssembly.Module>>();
const kernelModule = (base64: string) => {
  let module = compiled.get(base64);
  if (!module) compiled.set(base64, (module = WebAssembly.compile(Uint8Array.from(atob(base64), (c) => c.charCodeAt(0)))));
  return module;
};

/** Whether this thread can share WebAssembly memory with others (a page must be cross-origin isolated). */
function canShareMemory(): boolean {
  return typeof SharedArrayBuffer === 'function' && (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated !== false;
}

/** One kernel instance with its own memory: a stage's weights live and go with it. */
export async function createQuantizedGemv(options: QuantizedGemvOptions = {}, deps: QuantizedGemvDeps = {}): Promise<QuantizedGemv> {
  const wanted = options.threads ?? 1;
  if (!Number.isInteger(wanted) || wanted < 1) throw new RangeError(`threads must be a whole number of at least 1, got ${wanted}`);
  const shared = wanted > 1 && deps.spawn !== undefined && canShareMemory();
  const module = await kernelModule(shared ? WASM_SHARED_BASE64 : WASM_BASE64);
  const sharedMemory = shared ? new WebAssembly.Memory({ initial: 1, maximum: SHARED_MAX_PAGES, shared: true }) : undefined;
  const kernels = (await WebAssembly.instantiate(module, sharedMemory ? { env: { memory: sharedMemory } } : {})).exports as unknown as Kernels;
  const memory = sharedMemory ?? kernels.memory!;
  // One thread too goes through the pool, which then computes every row on the calling thread.
  const pool = await startGemvThreads({ threads: shared ? wanted : 1, module, memory, control: CONTROL_AT, stallMs: options.stallMs }, { kernels, spawn: deps.spawn });
  let top = PAGE; // page 0 holds no matrix (the control block lives there)
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
  // Scratch for one input vector (int16 lanes, per-block scales and corrections) and the outputs of the matrices that share it; grown on demand.
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
      matrices.forEach((m, i) => {
        const out = outs[i];
        if (x.length < m.k || out.length < m.n) throw new RangeError(`a ${m.n}x${m.k} matrix takes ${m.k} inputs into ${m.n} outputs, got ${x.length} into ${out.length}`);
        blocks = Math.max(blocks, m.blocks);
        rows += m.n;
      });
      const s = scratchFor(blocks, rows);
      // Matrices that take the same quantized input run together: one job for the threads.
      for (let first = 0; first < matrices.length; ) {
        const { bits, k } = matrices[first];
        let end = first + 1;
        while (end < matrices.length && end - first < MAX_JOBS && matrices[end].bits === bits && matrices[end].k === k) end++;
        const group = matrices.slice(first, end);
        if (!quantizeInput(x, k, matrices[first].blocks, bits)) {
          for (let i = first; i < end; i++) outs[i].fill(NaN, 0, matrices[i].n);
        } else {
          let out = s.out;
          const jobs: GemvJob[] = group.map((matrix) => {
            const job = { matrix, out };
            out += matrix.n * 4;
            return job;
          });
          pool.run(s, jobs);
          jobs.forEach((j, i) => outs[first + i].set(new Float32Array(memory.buffer, j.out, j.matrix.n)));
        }
        first = end;
      }
    },
    bytes: () => weightBytes,
    threads: pool.threads,
    close: () => pool.close(),
  };
}
