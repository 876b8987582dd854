/**
 * The device handshake: what a donor (browser tab or Node host) can do, measured rather than
 * declared. The scheduler places layers with these numbers, and the signature names the device
 * so that one caught computing wrong results can be refused again later.
 *
 *   signature  sha-256 of the device's identity (adapter info, limits and features; or, with no
 *              WebGPU adapter, the CPU model, core count and platform): stable across runs on
 *              the same machine and browser, so it never includes a measured speed
 *   webgpu     adapter identity, shader-f16, matmul GFLOP/s and copy GB/s, or why there are none
 *   wasm       onnxruntime CPU matmul GFLOP/s and JavaScript copy GB/s
 *   layer      ms per layer per decode step of the engine itself, for one model shape
 *
 * Isomorphic, in the js-libp2p style: onnxruntime (web or node), `navigator.gpu` and the host
 * description are handed in, so the same code runs in a Web Worker and in Node.
 */
import type { ExecutionProvider } from '../../shared/engine/api.ts';
import type { InfermeshError } from '../../shared/errors.ts';
import type { ModelConfig } from '../../shared/model/config.ts';
import type { WeightDtype } from '../../shared/model/graphs/linear.ts';
import { canonicalJson, sha256Hex } from '../../shared/model/manifest.ts';
import type { HostInfo } from './host.ts';
import { probeLayer } from './layer-probe.ts';
import type { LayerProbeOptions, LayerProbeReport } from './layer-probe.ts';
import type { CpuExecutionProvider, OrtModule, OrtSessionOptions } from './ort-module.ts';
import type { Clock } from './timing.ts';
import { probeWasm } from './wasm-probe.ts';
import type { WasmProbeOptions, WasmProbeReport } from './wasm-probe.ts';
import { describeAdapter, probeWebGpu } from './webgpu-probe.ts';
import type { WebGpuDescription, WebGpuProbeOptions, WebGpuProbeReport } from './webgpu-probe.ts';
import type { WasmKernelThreads } from '../wasm-stage.ts';

/** A probe that could not give numbers, and why. */
export interface Unavailable {
  unavailable: string;
  /** the error's stable name when a probe failed (e.g. ComputeMismatchError: the device computes wrong results) */
  errorName?: string;
}

export type WebGpuSection = WebGpuProbeReport | (Unavailable & { description?: WebGpuDescription });
export type LayerSection = LayerProbeReport | Unavailable;

export interface DeviceHandshake {
  /** hex sha-256 of canonicalJson(signatureInput(...)) */
  signature: string;
  runtime: HostInfo['runtime'];
  host: HostInfo;
  webgpu: WebGpuSection;
  wasm: WasmProbeReport;
  /** present when the options asked for a model shape */
  layer?: LayerSection;
  /** ISO 8601 */
  measuredAt: string;
}

export interface HandshakeOptions {
  /** time one block of this model shape (no `layer` section without it) */
  layer?: {
    config: ModelConfig;
    dtype: WeightDtype;
    /** default: 'webgpu' when the WebGPU probe succeeded, else the CPU provider */
    executionProvider?: ExecutionProvider;
    prefillTokens?: number;
    decodeSteps?: number;
    sessionOptions?: OrtSessionOptions;
  };
  /** duration of each speed measurement in ms (default 200) */
  targetMs?: number;
  webgpu?: Omit<WebGpuProbeOptions, 'targetMs'>;
  /** the CPU provider defaults to 'wasm' in a browser and 'cpu' in Node */
  wasm?: Omit<WasmProbeOptions, 'targetMs'>;
  /** skip the WebGPU probe even when a GPU is handed in */
  skipWebGpu?: boolean;
}

export interface HandshakeDeps {
  /** onnxruntime-web or onnxruntime-node */
  ort: OrtModule;
  /** browserHost(navigator) or nodeHost() */
  host: HostInfo;
  /** navigator.gpu where there is one */
  gpu?: GPU | null;
  clock?: Clock;
  /** wall clock for measuredAt (default Date.now) */
  wallClock?: () => number;
  /** the threads the quantized WASM kernels take when the layer probe opens a block (default: one) */
  kernels?: WasmKernelThreads;
}

/** What the signature hashes: who the device is, never how fast it was this time. */
export type SignatureInput =
  | { kind: 'webgpu'; adapter: WebGpuDescription['info']; limits: Record<string, number>; features: string[] }
  | { kind: 'cpu'; runtime: HostInfo['runtime']; cpuModel?: string; cores: number; platform: string };

export function signatureInput(host: HostInfo, webgpu?: WebGpuDescription): SignatureInput {
  if (webgpu) return { kind: 'webgpu', adapter: webgpu.info, limits: webgpu.limits, features: webgpu.features };
  return { kind: 'cpu', runtime: host.runtime, cpuModel: host.cpuModel, cores: host.cores, platform: host.platform };
}

export async function deviceSignature(input: SignatureInput): Promise<string> {
  return sha256Hex(new TextEncoder().encode(canonicalJson(input)));
}

export async function runHandshake(options: HandshakeOptions, deps: HandshakeDeps): Promise<DeviceHandshake> {
  const { host, ort, clock } = deps;
  const targetMs = options.targetMs;
  const cpuProvider: CpuExecutionProvider = options.wasm?.executionProvider ?? (host.runtime === 'node' ? 'cpu' : 'wasm');

  const webgpu = options.skipWebGpu ? { unavailable: 'skipped' } : await webGpuSection(deps.gpu, { ...options.webgpu, targetMs }, clock);
  const wasm = await probeWasm({ ...options.wasm, executionProvider: cpuProvider, targetMs }, { ort, clock });

  let layer: LayerSection | undefined;
  if (options.layer) {
    const { executionProvider, ...rest } = options.layer;
    const provider = executionProvider ?? ('matmul' in webgpu ? 'webgpu' : cpuProvider);
    const request: LayerProbeOptions = { ...rest, executionProvider: provider };
    layer = await probeLayer(request, { ort, clock, kernels: deps.kernels }).catch((err: unknown) => unavailable(`layer probe on ${provider} failed`, err));
  }

  const description = 'matmul' in webgpu ? webgpu : webgpu.description;
  return {
    signature: await deviceSignature(signatureInput(host, description)),
    runtime: host.runtime,
    host,
    webgpu,
    wasm,
    ...(layer ? { layer } : {}),
    measuredAt: new Date((deps.wallClock ?? Date.now)()).toISOString(),
  };
}

async function webGpuSection(gpu: GPU | null | undefined, options: WebGpuProbeOptions, clock?: Clock): Promise<WebGpuSection> {
  if (!gpu) return { unavailable: 'WebGPU is not available (no navigator.gpu)' };
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' }).catch(() => null);
  if (!adapter) return { unavailable: 'WebGPU has no adapter' };
  // Described before measuring, so a device whose benchmark fails still gets its own
  // signature: that is the device a blacklist must be able to name.
  const description = describeAdapter(adapter);
  try {
    return await probeWebGpu(options, { adapter, clock });
  } catch (err) {
    return { ...unavailable('WebGPU probe failed', err), description };
  }
}

function unavailable(what: string, err: unknown): Unavailable {
  const e = err as Partial<InfermeshError> & Error;
  return { unavailable: `${what}: ${e?.shortMessage ?? e?.message ?? String(err)}`, errorName: e?.name ?? 'Error' };
}
