/**
 * What the CPU side of a device achieves, for the device handshake: a MatMul through the
 * injected onnxruntime on its CPU execution provider (WASM in a browser, native CPU in Node),
 * shaped like a prefill chunk against a weight matrix, and memory copy speed in JavaScript.
 * The matmul's result is checked before its speed counts (matmul-check.ts).
 */
import { DataType, encodeModel } from '../../shared/model/onnx/schema.ts';
import { createGraphBuilder } from '../../shared/model/onnx/graph-builder.ts';
import { DeviceProbeError, ComputeMismatchError } from './errors.ts';
import { checkMatmul, matmulOperand } from './matmul-check.ts';
import type { CpuExecutionProvider, OrtModule, OrtSessionOptions } from './ort-module.ts';
import { defaultClock, timeToTarget } from './timing.ts';
import type { Clock } from './timing.ts';
import type { CopySpeed } from './webgpu-probe.ts';

export interface MatmulShape {
  m: number;
  k: number;
  n: number;
}

export interface OrtMatmulSpeed extends MatmulShape {
  gflops: number;
  reps: number;
  ms: number;
}

export interface WasmProbeReport {
  executionProvider: CpuExecutionProvider;
  matmul: OrtMatmulSpeed;
  /** TypedArray.set between two buffers */
  copy: CopySpeed;
}

export interface WasmProbeOptions {
  /** 'wasm' for onnxruntime-web, 'cpu' for onnxruntime-node (default 'wasm') */
  executionProvider?: CpuExecutionProvider;
  /** duration of each reported measurement (default 200) */
  targetMs?: number;
  /** default [128, 1024] × [1024, 1024]: a 128-token prefill chunk through a 1024-wide layer */
  matmul?: MatmulShape;
  /** default 64 MiB */
  copyBytes?: number;
  /** merged into the session options (threads, spinning) */
  sessionOptions?: OrtSessionOptions;
}

export interface WasmProbeDeps {
  ort: OrtModule;
  clock?: Clock;
}

const DEFAULT_SHAPE: MatmulShape = { m: 128, k: 1024, n: 1024 };
const DEFAULT_TARGET_MS = 200;
/** @see the handshake issue: larger than any CPU cache, so this is memory bandwidth. */
const DEFAULT_COPY_BYTES = 64 << 20;
const MAX_REPS = 100_000;
const SOURCE = 'wasm probe';

export async function probeWasm(options: WasmProbeOptions, deps: WasmProbeDeps): Promise<WasmProbeReport> {
  const executionProvider = options.executionProvider ?? 'wasm';
  const clock = deps.clock ?? defaultClock;
  const matmul = await measureOrtMatmul({ ...options, executionProvider }, deps.ort, clock);
  const copy = await measureTypedArrayCopy(options.copyBytes ?? DEFAULT_COPY_BYTES, options.targetMs ?? DEFAULT_TARGET_MS, clock);
  return { executionProvider, matmul, copy };
}

/** a [m, k] input times a [k, n] initializer, as a weight is in a compiled block */
export function matmulGraph(shape: MatmulShape, weights: Float32Array): Uint8Array {
  const g = createGraphBuilder('handshake-matmul');
  const a = g.input('a', DataType.FLOAT, [shape.m, shape.k]);
  g.op('MatMul', [a, g.constFloat(weights, [shape.k, shape.n])], {}, { output: 'c' });
  g.output('c', DataType.FLOAT, [shape.m, shape.n]);
  return encodeModel(g.build());
}

async function measureOrtMatmul(options: WasmProbeOptions & { executionProvider: CpuExecutionProvider }, ort: OrtModule, clock: Clock): Promise<OrtMatmulSpeed> {
  const shape = options.matmul ?? DEFAULT_SHAPE;
  const { m, k, n } = shape;
  const a = matmulOperand(m, k, 1);
  const b = matmulOperand(k, n, 2);
  const source = `${SOURCE}: onnxruntime ${options.executionProvider} MatMul [${m}×${k}]·[${k}×${n}]`;
  let session;
  try {
    session = await ort.InferenceSession.create(matmulGraph(shape, b), {
      executionProviders: [options.executionProvider],
      graphOptimizationLevel: 'all',
      logSeverityLevel: 3,
      ...options.sessionOptions,
    });
  } catch (err) {
    throw new DeviceProbeError(`onnxruntime cannot open the matmul graph: ${(err as Error).message}`, { source, cause: err });
  }
  try {
    const feeds = { a: new ort.Tensor('float32', a, [m, k]) };
    let c: unknown;
    const run = async (reps: number) => {
      const start = clock();
      for (let r = 0; r < reps; r++) c = (await session.run(feeds)).c?.data;
      return clock() - start;
    };
    const check = () => {
      if (!(c instanceof Float32Array)) throw new ComputeMismatchError('MatMul returned no float32 output named c', { source });
      checkMatmul({ a, b, c, m, k, n }, source);
    };
    await run(2); // first runs pack the weights and size the thread pool
    check();
    const timed = await timeToTarget(run, { targetMs: options.targetMs ?? DEFAULT_TARGET_MS, maxReps: MAX_REPS, source });
    check();
    return { ...shape, gflops: (2 * m * k * n * timed.reps) / (timed.ms * 1e6), ...timed };
  } finally {
    await session.release();
  }
}

/** Bytes per second of TypedArray.set between two `bytes`-long buffers, checked at three places. */
export async function measureTypedArrayCopy(bytes: number, targetMs: number, clock: Clock = defaultClock): Promise<CopySpeed> {
  const size = Math.max(4096, Math.floor(bytes / 4096) * 4096);
  const src = new Uint8Array(size);
  const dst = new Uint8Array(size);
  const marks = [0, size >> 1, size - 1];
  marks.forEach((at, i) => (src[at] = 0x5a + i));
  const run = async (reps: number) => {
    const start = clock();
    for (let r = 0; r < reps; r++) dst.set(src);
    return clock() - start;
  };
  await run(1); // touches every page of both buffers
  const timed = await timeToTarget(run, { targetMs, maxReps: MAX_REPS, source: `${SOURCE}: copy` });
  if (!marks.every((at, i) => dst[at] === 0x5a + i)) throw new DeviceProbeError(`TypedArray.set of ${size} bytes did not copy`, { source: SOURCE });
  return { gbps: (size * timed.reps) / (timed.ms * 1e6), bytes: size, ...timed };
}
