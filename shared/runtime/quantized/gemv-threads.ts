/**
 * Threads for the quantized kernels: one product's rows split among helper threads that share
 * the kernels' WebAssembly memory (weights, quantized input, outputs), so a donor's thread
 * setting applies to q4/q8 blocks as it does to onnxruntime's sessions.
 *
 * The calling thread posts a job in a control block of that memory and wakes the helpers with
 * Atomics.notify; each computes its share of every matrix's rows, the caller its own, and the
 * last to finish wakes the caller. A helper spins briefly for the next job (a decode step's
 * linears follow each other within microseconds) and then sleeps in Atomics.wait: an idle stage's
 * helpers take no CPU. Atomics.wait blocks, so the caller must be a worker (or Node), never a
 * page's main thread.
 */
import { InfermeshError } from '../../errors.ts';
import type { PackedMatrix } from './quantized-gemv.ts';

/** A helper thread of the kernels stopped answering (it crashed, or its worker was killed): the stage cannot compute. */
export class KernelThreadError extends InfermeshError {
  override name = 'KernelThreadError';
}

/** What a helper thread needs: the kernels compiled for shared memory, that memory, where the control block is. */
export interface GemvHelperInit {
  module: WebAssembly.Module;
  memory: WebAssembly.Memory;
  control: number;
  /** this helper's share: 1..threads-1 (the caller takes 0) */
  index: number;
  threads: number;
}

/** Starts one helper thread running runGemvHelper(init); resolves once it waits for work. */
export type SpawnGemvHelper = (init: GemvHelperInit) => Promise<{ terminate(): void }>;

/** The quantized input every matrix of a job multiplies: addresses in the kernels' memory. */
export interface GemvInput {
  x: number;
  xs: number;
  corr: number;
}

/** One matrix of a job and where its outputs go. */
export interface GemvJob {
  matrix: PackedMatrix;
  out: number;
}

interface KernelExports {
  q4_gemv(w: number, s: number, x: number, xs: number, corr: number, out: number, rows: number, blocks: number): void;
  q8_gemv(w: number, s: number, x: number, xs: number, corr: number, out: number, rows: number, blocks: number): void;
}

// The control block, in int32 slots: the input once, then each job's matrix and outputs.
const GENERATION = 0;
const PENDING = 1;
const STOP = 2;
const JOBS = 3;
const INPUT = 4; // x, xs, corr
const FIRST_JOB = 8;
/** A job: bits, weights, scales, rows, blocks, out. */
const JOB_SLOTS = 6;
/** The most matrices one job carries (a block's q, k and v share an input: 3). */
export const MAX_JOBS = 4;
/** Bytes the control block takes. */
export const CONTROL_BYTES = (FIRST_JOB + MAX_JOBS * JOB_SLOTS) * 4;
/** How long a thread spins on a word before it sleeps on it. */
const SPIN_MS = 0.2;
/** No share of one product takes this long: a helper this late is gone. */
export const HELPER_STALL_MS = 10_000;

/** Thread `index` of `threads` computes its share of each job's rows. */
function runShare(kernels: KernelExports, view: Int32Array, base: number, index: number, threads: number): void {
  const x = view[base + INPUT];
  const xs = view[base + INPUT + 1];
  const corr = view[base + INPUT + 2];
  for (let j = 0; j < view[base + JOBS]; j++) {
    const at = base + FIRST_JOB + j * JOB_SLOTS;
    const bits = view[at];
    const w = view[at + 1];
    const s = view[at + 2];
    const rows = view[at + 3];
    const blocks = view[at + 4];
    const out = view[at + 5];
    const first = Math.floor((rows * index) / threads);
    const end = Math.floor((rows * (index + 1)) / threads);
    if (end <= first) continue;
    const blockBytes = bits === 4 ? 16 : 32;
    (bits === 4 ? kernels.q4_gemv : kernels.q8_gemv)(w + first * blocks * blockBytes, s + first * blocks * 4, x, xs, corr, out + first * 4, end - first, blocks);
  }
}

/** Waits until view[slot] is no longer `value`: a short spin, then sleep. False if `timeoutMs` passed first. */
function waitWhile(view: Int32Array, slot: number, value: number, timeoutMs = Infinity): boolean {
  const start = performance.now();
  while (Atomics.load(view, slot) === value) {
    const waited = performance.now() - start;
    if (waited > timeoutMs) return false;
    if (waited > SPIN_MS) Atomics.wait(view, slot, value, Math.min(1000, timeoutMs - waited));
  }
  return true;
}

/**
 * A helper thread's life: say it is `ready`, wait for a job, compute its share, say so; until
 * told to stop. Never returns before. It notes the current job before it says it is ready, so
 * the first job posted after that wakes it.
 */
export function runGemvHelper(init: GemvHelperInit, kernels: KernelExports, ready: () => void): void {
  const view = () => new Int32Array(init.memory.buffer);
  const base = init.control / 4;
  let seen = Atomics.load(view(), base + GENERATION);
  ready();
  for (;;) {
    waitWhile(view(), base + GENERATION, seen);
    const v = view(); // the memory may have grown since
    seen = Atomics.load(v, base + GENERATION);
    if (Atomics.load(v, base + STOP)) return;
    runShare(kernels, v, base, init.index, init.threads);
    if (Atomics.sub(v, base + PENDING, 1) === 1) Atomics.notify(v, base + PENDING);
  }
}

export interface GemvThreads {
  readonly threads: number;
  /** Computes every job's rows across the threads; returns when all are done. */
  run(input: GemvInput, jobs: readonly GemvJob[]): void;
  /** Stops the helpers. */
  close(): void;
}

/**
 * Starts `threads - 1` helpers on `memory` (the caller is the first thread). With one thread
 * there are none: the caller computes every row through the same control block, and never waits
 * (so a page's main thread, where Atomics.wait is refused, runs it too).
 */
export async function startGemvThreads(
  options: { threads: number; module: WebAssembly.Module; memory: WebAssembly.Memory; control: number; stallMs?: number },
  deps: { kernels: KernelExports; spawn?: SpawnGemvHelper },
): Promise<GemvThreads> {
  const { threads, memory, stallMs = HELPER_STALL_MS } = options;
  const { spawn } = deps;
  if (threads > 1 && !spawn) throw new Error('more than one kernel thread needs a way to start helpers');
  const base = options.control / 4;
  const helpers = await Promise.all(Array.from({ length: threads - 1 }, (_, i) => spawn!({ module: options.module, memory, control: options.control, index: i + 1, threads })));
  let closed = false;
  // A view of the memory, made again only when it grew (a step posts several jobs: no garbage per job).
  let view = new Int32Array(memory.buffer);
  const control = () => (view.buffer === memory.buffer ? view : (view = new Int32Array(memory.buffer)));
  return {
    threads,
    run(input, jobs) {
      if (closed) throw new Error('the kernels’ threads are closed');
      if (jobs.length > MAX_JOBS) throw new RangeError(`at most ${MAX_JOBS} matrices share a job, got ${jobs.length}`);
      const v = control();
      v[base + INPUT] = input.x;
      v[base + INPUT + 1] = input.xs;
      v[base + INPUT + 2] = input.corr;
      for (let j = 0; j < jobs.length; j++) {
        const { matrix: m, out } = jobs[j];
        const at = base + FIRST_JOB + j * JOB_SLOTS;
        v[at] = m.bits;
        v[at + 1] = m.weights;
        v[at + 2] = m.scales;
        v[at + 3] = m.n;
        v[at + 4] = m.blocks;
        v[at + 5] = out;
      }
      v[base + JOBS] = jobs.length;
      Atomics.store(v, base + PENDING, threads - 1);
      Atomics.add(v, base + GENERATION, 1);
      Atomics.notify(v, base + GENERATION);
      runShare(deps.kernels, v, base, 0, threads);
      for (let left = Atomics.load(v, base + PENDING); left !== 0; left = Atomics.load(v, base + PENDING)) {
        if (!waitWhile(v, base + PENDING, left, stallMs)) throw new KernelThreadError(`${left} of the kernels' ${threads - 1} helper threads did not finish their share within ${stallMs} ms`);
      }
    },
    close() {
      if (closed) return;
      closed = true;
      const v = control();
      Atomics.store(v, base + STOP, 1);
      Atomics.add(v, base + GENERATION, 1);
      Atomics.notify(v, base + GENERATION);
      for (const h of helpers) h.terminate();
    },
  };
}
