/**
 * What a WebGPU adapter is and what it achieves, for the device handshake: its identity
 * (info, limits, features: the device signature is a hash of these) and two measured speeds,
 * a tiled f32 matmul in WGSL (GFLOP/s) and copyBufferToBuffer (GB/s). The matmul result is
 * checked against the CPU before its speed counts (matmul-check.ts).
 *
 * Isomorphic: the adapter is handed in (`await navigator.gpu.requestAdapter()` in a page or a
 * Web Worker, or a Node WebGPU binding); nothing reads a global but the clock, not even the
 * GPUBufferUsage constants, which Node lacks.
 */
import { DeviceProbeError } from './errors.ts';
import { checkMatmul, matmulOperand } from './matmul-check.ts';
import { defaultClock, timeToTarget } from './timing.ts';
import type { Clock } from './timing.ts';

/** GPUAdapterInfo copied into a plain object (the original does not survive postMessage or JSON). */
export interface WebGpuAdapterInfo {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  /** true for a software (CPU) adapter such as SwiftShader, where the browser says so */
  isFallbackAdapter?: boolean;
}

/** Who the adapter is: stable across runs on one machine and browser, so it can be hashed. */
export interface WebGpuDescription {
  info: WebGpuAdapterInfo;
  /** every numeric GPUSupportedLimits attribute of the adapter */
  limits: Record<string, number>;
  /** sorted feature names */
  features: string[];
  /** WGSL `enable f16;` is available (f16 weights and activations) */
  shaderF16: boolean;
}

export interface MatmulSpeed {
  gflops: number;
  /** m = k = n of the measured square matmul */
  size: number;
  reps: number;
  ms: number;
}

export interface CopySpeed {
  /** bytes copied per second / 1e9 (the memory traffic is twice this: a read and a write) */
  gbps: number;
  bytes: number;
  reps: number;
  ms: number;
}

export interface WebGpuProbeReport extends WebGpuDescription {
  matmul: MatmulSpeed;
  copy: CopySpeed;
}

export interface WebGpuProbeOptions {
  /** duration of each reported measurement; calibration adds about half again (default 200) */
  targetMs?: number;
  /** largest square matmul (default 1024; smaller when the adapter's buffer limits are) */
  maxMatmulSize?: number;
  /** largest copy (default 64 MiB; smaller when maxBufferSize is) */
  maxCopyBytes?: number;
  /** a replacement WGSL matmul with MATMUL_WGSL's bindings, for testing the result check */
  matmulShader?: string;
}

export interface WebGpuProbeDeps {
  adapter: GPUAdapter;
  /** a device of `adapter` to measure on; by default one is requested and destroyed afterwards */
  device?: GPUDevice;
  clock?: Clock;
}

/** GPUBufferUsage and GPUMapMode flags, fixed by the WebGPU spec (the globals do not exist in Node). */
export const BufferUsage = { MAP_READ: 0x0001, COPY_SRC: 0x0004, COPY_DST: 0x0008, UNIFORM: 0x0040, STORAGE: 0x0080 } as const;
const MAP_MODE_READ = 0x0001;

/** Rows and columns of C one workgroup computes; sizes are multiples of it. */
export const MATMUL_TILE = 64;
const DEFAULT_TARGET_MS = 200;
const DEFAULT_MAX_MATMUL = 1024;
/** @see the handshake issue: enough to leave every cache, small enough for any device. */
const DEFAULT_MAX_COPY = 64 << 20;
const MAX_REPS = 4096;
const SOURCE = 'webgpu probe';

/**
 * C = A·B for square n×n f32 matrices (n a multiple of 64). A 16×16 workgroup computes a 64×64
 * tile of C, each thread 4×4 outputs strided by 16 so that reads of the shared B tile are
 * consecutive across threads; A and B go through workgroup memory 16 columns/rows at a time.
 * A register-blocked kernel like this reaches a fair share of a GPU's peak, which a naive
 * one-output-per-thread kernel (memory-bound) would not.
 */
export const MATMUL_WGSL = /* wgsl */ `
struct Params { n: u32 }
@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> c: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

const TILE = 64u;
const DEPTH = 16u;
var<workgroup> tileA: array<f32, 1024>; // TILE rows x DEPTH
var<workgroup> tileB: array<f32, 1024>; // DEPTH rows x TILE

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_id) local: vec3<u32>) {
  let n = params.n;
  let row0 = group.y * TILE;
  let col0 = group.x * TILE;
  let thread = local.y * 16u + local.x;
  var acc: array<f32, 16>;
  for (var k0 = 0u; k0 < n; k0 += DEPTH) {
    for (var i = 0u; i < 4u; i++) {
      let e = thread + i * 256u;
      tileA[e] = a[(row0 + e / DEPTH) * n + k0 + e % DEPTH];
      tileB[e] = b[(k0 + e / TILE) * n + col0 + e % TILE];
    }
    workgroupBarrier();
    for (var kk = 0u; kk < DEPTH; kk++) {
      var bv: array<f32, 4>;
      for (var j = 0u; j < 4u; j++) {
        bv[j] = tileB[kk * TILE + local.x + j * 16u];
      }
      for (var i = 0u; i < 4u; i++) {
        let av = tileA[(local.y + i * 16u) * DEPTH + kk];
        for (var j = 0u; j < 4u; j++) {
          acc[i * 4u + j] += av * bv[j];
        }
      }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < 4u; i++) {
    for (var j = 0u; j < 4u; j++) {
      c[(row0 + local.y + i * 16u) * n + col0 + local.x + j * 16u] = acc[i * 4u + j];
    }
  }
}
`;

/** Copies a GPUSupportedLimits' numeric attributes (accessors on its prototype, so for...in). */
export function copyLimits(limits: GPUSupportedLimits): Record<string, number> {
  const out: Record<string, number> = {};
  const record = limits as unknown as Record<string, unknown>;
  for (const key in limits) {
    const value = record[key];
    if (typeof value === 'number') out[key] = value;
  }
  return out;
}

export function describeAdapter(adapter: GPUAdapter): WebGpuDescription {
  const raw = adapter.info;
  const info: WebGpuAdapterInfo = { vendor: raw.vendor, architecture: raw.architecture, device: raw.device, description: raw.description };
  // Newer than some browsers: absent rather than guessed where it is not reported.
  if (typeof raw.isFallbackAdapter === 'boolean') info.isFallbackAdapter = raw.isFallbackAdapter;
  const features = [...adapter.features].sort();
  return { info, limits: copyLimits(adapter.limits), features, shaderF16: adapter.features.has('shader-f16') };
}

export async function probeWebGpu(options: WebGpuProbeOptions, deps: WebGpuProbeDeps): Promise<WebGpuProbeReport> {
  const { adapter } = deps;
  const description = describeAdapter(adapter);
  const device = deps.device ?? (await adapter.requestDevice());
  try {
    const matmul = await measureMatmul(device, options, deps.clock ?? defaultClock);
    const copy = await measureCopy(device, options, deps.clock ?? defaultClock);
    return { ...description, matmul, copy };
  } finally {
    if (!deps.device) device.destroy();
  }
}

/** Runs `body` inside validation and out-of-memory error scopes and turns a reported error into a DeviceProbeError. */
async function withErrorScopes<T>(device: GPUDevice, what: string, body: () => Promise<T>): Promise<T> {
  device.pushErrorScope('validation');
  device.pushErrorScope('out-of-memory');
  let result: T;
  try {
    result = await body();
  } finally {
    const outOfMemory = await device.popErrorScope();
    const validation = await device.popErrorScope();
    const error = outOfMemory ?? validation;
    if (error) throw new DeviceProbeError(`${what}: ${error.message}`, { source: SOURCE });
  }
  return result;
}

async function readBack(device: GPUDevice, source: GPUBuffer, byteLength: number, offset = 0): Promise<ArrayBuffer> {
  const staging = device.createBuffer({ size: byteLength, usage: BufferUsage.MAP_READ | BufferUsage.COPY_DST });
  try {
    const encoder = device.createCommandEncoder();
    encoder.copyBufferToBuffer(source, offset, staging, 0, byteLength);
    device.queue.submit([encoder.finish()]);
    await staging.mapAsync(MAP_MODE_READ);
    const copy = staging.getMappedRange().slice(0);
    staging.unmap();
    return copy;
  } finally {
    staging.destroy();
  }
}

async function measureMatmul(device: GPUDevice, options: WebGpuProbeOptions, clock: Clock): Promise<MatmulSpeed> {
  const targetMs = options.targetMs ?? DEFAULT_TARGET_MS;
  const maxBytes = Math.min(device.limits.maxStorageBufferBindingSize, device.limits.maxBufferSize);
  let maxN = MATMUL_TILE;
  while (maxN * 2 <= (options.maxMatmulSize ?? DEFAULT_MAX_MATMUL) && (maxN * 2) ** 2 * 4 <= maxBytes) maxN *= 2;

  const module = device.createShaderModule({ code: options.matmulShader ?? MATMUL_WGSL });
  const errors = (await module.getCompilationInfo()).messages.filter((m) => m.type === 'error');
  if (errors.length > 0) {
    throw new DeviceProbeError(`matmul shader does not compile: ${errors.map((m) => `line ${m.lineNum}: ${m.message}`).join('; ')}`, { source: SOURCE });
  }
  const bytes = maxN * maxN * 4;
  const storage = BufferUsage.STORAGE | BufferUsage.COPY_DST | BufferUsage.COPY_SRC;
  const a = matmulOperand(maxN, maxN, 1);
  const b = matmulOperand(maxN, maxN, 2);
  const buffers: GPUBuffer[] = [];
  try {
    return await withErrorScopes(device, 'matmul', async () => {
      const [bufA, bufB, bufC] = [0, 1, 2].map(() => device.createBuffer({ size: bytes, usage: storage }));
      const params = device.createBuffer({ size: 16, usage: BufferUsage.UNIFORM | BufferUsage.COPY_DST });
      buffers.push(bufA, bufB, bufC, params);
      device.queue.writeBuffer(bufA, 0, a);
      device.queue.writeBuffer(bufB, 0, b);
      const pipeline = await device.createComputePipelineAsync({ layout: 'auto', compute: { module, entryPoint: 'main' } });
      const group = device.createBindGroup({
        layout: pipeline.getBindGroupLayout(0),
        entries: [bufA, bufB, bufC, params].map((buffer, binding) => ({ binding, resource: { buffer } })),
      });

      // One submission of `reps` dispatches; the first n×n elements of A and B are the n×n operands.
      const run = async (n: number, reps: number) => {
        device.queue.writeBuffer(params, 0, Uint32Array.of(n, 0, 0, 0));
        const encoder = device.createCommandEncoder();
        const pass = encoder.beginComputePass();
        pass.setPipeline(pipeline);
        pass.setBindGroup(0, group);
        for (let r = 0; r < reps; r++) pass.dispatchWorkgroups(n / MATMUL_TILE, n / MATMUL_TILE);
        pass.end();
        const commands = encoder.finish();
        const start = clock();
        device.queue.submit([commands]);
        await device.queue.onSubmittedWorkDone();
        return clock() - start;
      };

      // Grow n while one dispatch stays under a quarter of the target; the first run at the
      // smallest size also pays the pipeline's first use, so it is run twice.
      let n = Math.min(2 * MATMUL_TILE, maxN);
      await run(n, 1);
      let ms = await run(n, 1);
      while (n * 2 <= maxN && ms * 8 <= targetMs / 4) {
        n *= 2;
        ms = await run(n, 1);
      }
      const timed = await timeToTarget((reps) => run(n, reps), { targetMs, maxReps: MAX_REPS, source: `${SOURCE}: matmul ${n}` });

      const c = new Float32Array(await readBack(device, bufC, n * n * 4));
      checkMatmul({ a: matmulOperand(n, n, 1), b: matmulOperand(n, n, 2), c, m: n, k: n, n }, `${SOURCE}: WGSL matmul ${n}`);
      return { gflops: (2 * n ** 3 * timed.reps) / (timed.ms * 1e6), size: n, ...timed };
    });
  } finally {
    for (const buffer of buffers) buffer.destroy();
  }
}

async function measureCopy(device: GPUDevice, options: WebGpuProbeOptions, clock: Clock): Promise<CopySpeed> {
  const targetMs = options.targetMs ?? DEFAULT_TARGET_MS;
  const size = Math.floor(Math.min(options.maxCopyBytes ?? DEFAULT_MAX_COPY, device.limits.maxBufferSize) / 4096) * 4096;
  if (size < 4096) throw new DeviceProbeError(`maxBufferSize leaves only ${size} bytes to copy`, { source: SOURCE });
  const buffers: GPUBuffer[] = [];
  try {
    return await withErrorScopes(device, 'copy', async () => {
      const src = device.createBuffer({ size, usage: BufferUsage.COPY_SRC | BufferUsage.COPY_DST });
      const dst = device.createBuffer({ size, usage: BufferUsage.COPY_SRC | BufferUsage.COPY_DST });
      buffers.push(src, dst);
      // A marker at the start, middle and end of the source shows afterwards that the copy ran.
      const windows = [0, Math.floor(size / 8192) * 4096, size - 4096];
      windows.forEach((offset, i) => device.queue.writeBuffer(src, offset, marker(i)));

      const run = async (reps: number) => {
        const encoder = device.createCommandEncoder();
        for (let r = 0; r < reps; r++) encoder.copyBufferToBuffer(src, 0, dst, 0, size);
        const commands = encoder.finish();
        const start = clock();
        device.queue.submit([commands]);
        await device.queue.onSubmittedWorkDone();
        return clock() - start;
      };
      await run(1); // first touch of both buffers (lazy zero-initialisation)
      const timed = await timeToTarget(run, { targetMs, maxReps: MAX_REPS, source: `${SOURCE}: copy` });

      for (const [i, offset] of windows.entries()) {
        const got = new Uint32Array(await readBack(device, dst, 4096, offset));
        if (!got.every((v, j) => v === marker(i)[j])) {
          throw new DeviceProbeError(`copyBufferToBuffer of ${size} bytes did not copy the bytes at offset ${offset}`, { source: SOURCE });
        }
      }
      return { gbps: (size * timed.reps) / (timed.ms * 1e6), bytes: size, ...timed };
    });
  } finally {
    for (const buffer of buffers) buffer.destroy();
  }
}

function marker(window: number): Uint32Array<ArrayBuffer> {
  return Uint32Array.from({ length: 1024 }, (_, j) => (window + 1) * 0x01000193 + j);
}
