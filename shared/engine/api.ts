/**
 * The shard engine's contract: what a donor tab's Web Worker (and a Node host) offers to the
 * rest of infermesh. A handful of methods, exposed with comlink; hidden-state frames cross the
 * boundary as transferred binary frames (shared/protocol/frame.ts), never JSON.
 */
import { InfermeshError } from '../errors.ts';
import type { LayerRange } from '../runtime/stage.ts';

export type ExecutionProvider = 'webgpu' | 'wasm' | 'cpu';

/** Where whoever serves the app serves onnxruntime-web's dist/ (its .wasm and loader files). */
export const ORT_ASSET_PATH = '/ort/';

/** Where the shard's files come from: handed in, or fetched from a package URL. */
export type ShardSource =
  | { kind: 'bytes'; manifest: string; files: Record<string, Uint8Array> }
  | { kind: 'url'; baseUrl: string };

export interface LoadRequest {
  /** The model the caller expects: the package's manifest id. A shard of another model is refused. */
  modelId: string;
  layers: LayerRange;
  source: ShardSource;
  /** Execution providers to try in order; default ['webgpu', 'wasm'] in browsers. */
  executionProviders?: ExecutionProvider[];
  /** Drop a request's cache after this long without a step (default 5 minutes). */
  idleTimeoutMs?: number;
  /** Evict the oldest requests' caches beyond this many bytes of KV cache (default 1 GiB). */
  maxCacheBytes?: number;
  /**
   * Test-only: serve the range dishonestly, as a cheating donor would (worker/faults.ts), so
   * the validator can be shown catching it. Every frame is still answered with the right shape.
   */
  fault?: StageFault;
}

/**
 * The cheats a test can make a stage commit, each named for what a real cheater saves by it.
 * The fault is applied inside the engine, so the same code cheats in a browser worker and in Node.
 */
export type StageFault =
  /** Layers run with weights that are not the package's (same shapes and value statistics): saves fetching the package, serving a model already held. */
  | { kind: 'other-model' }
  /** An f32 package's layers run as q4 (MatMulNBits): saves 7/8 of the weight memory and bandwidth. */
  | { kind: 'q4-weights' }
  /** One layer of the range is not run (the last, or the middle one of 3 or more): saves that layer's compute and memory. */
  | { kind: 'skip-layer' }
  /** Gaussian noise of `sigma` × each output row's RMS added to every value: what a sloppier kernel or lower precision would cost, made visible at a stated size. */
  | { kind: 'noise'; sigma: number }
  /** From the second decode step on, the output of one step earlier for the same request: saves computing at all. */
  | { kind: 'replay-old-output' };

export type StageFaultKind = StageFault['kind'];
export const STAGE_FAULT_KINDS: readonly StageFaultKind[] = ['other-model', 'q4-weights', 'skip-layer', 'noise', 'replay-old-output'];

/** A fault switch that names no known fault, or a fault that cannot apply to the shard loaded. */
export class StageFaultError extends InfermeshError {
  override name = 'StageFaultError';
}

/**
 * The URL form of a stage fault (`?fault=` on the donor page): `other-model`, `q4-weights`,
 * `skip-layer`, `noise:<sigma>` (sigma a positive number, × the row RMS) or `replay-old-output`.
 */
export function parseStageFault(text: string): StageFault {
  const [kind, arg, ...rest] = text.trim().split(':');
  const bad = (why: string): never => {
    throw new StageFaultError(`bad stage fault "${text}": ${why} (one of other-model, q4-weights, skip-layer, noise:<sigma>, replay-old-output)`);
  };
  if (rest.length > 0) bad('too many ":" parts');
  switch (kind) {
    case 'noise': {
      if (arg === undefined || arg === '') bad('noise needs a size, e.g. noise:0.01 (sigma × the row RMS)');
      const sigma = Number(arg);
      if (!Number.isFinite(sigma) || sigma <= 0) bad(`noise size "${arg}" is not a positive number`);
      return { kind, sigma };
    }
    case 'other-model':
    case 'q4-weights':
    case 'skip-layer':
    case 'replay-old-output':
      if (arg !== undefined) bad(`${kind} takes no value`);
      return { kind };
    default:
      return bad(`unknown fault "${kind}"`);
  }
}

export interface LoadReport {
  modelId: string;
  layers: LayerRange;
  executionProvider: ExecutionProvider;
  /** Why this provider: e.g. "webgpu unavailable: no adapter" when it fell back. */
  reason: string;
  /** Pieces fetched and hash-checked (0 when bytes were handed in and checked). */
  piecesVerified: number;
  weightBytes: number;
  loadMs: number;
  /** the test-only fault this shard is served with (LoadRequest.fault); absent when honest */
  fault?: StageFault;
}

export interface MemoryReport {
  /** KV cache bytes held for live requests (GPU or CPU, by the active provider). */
  cacheBytes: number;
  requests: number;
  weightBytes: number;
  executionProvider: ExecutionProvider | null;
}

export interface EngineEvent {
  kind: 'device-lost' | 'fallback' | 'evicted';
  message: string;
  requestIds?: string[];
}

export interface ShardEngine {
  load(request: LoadRequest): Promise<LoadReport>;
  /** One step of one request: a hidden-state frame in ([1, seq, dim]; seq > 1 is a prefill), the next stage's frame out. */
  step(frame: Uint8Array): Promise<Uint8Array>;
  /** Ends a request and frees its cache. */
  end(requestId: string): Promise<void>;
  memory(): Promise<MemoryReport>;
  /** Events since the last call (device loss, fallback, evictions). */
  events(): Promise<EngineEvent[]>;
  unload(): Promise<void>;
}
