/**
 * The shard engine's contract: what a donor tab's Web Worker (and a Node host) offers to the
 * rest of infermesh. A handful of methods, exposed with comlink; hidden-state frames cross the
 * boundary as transferred binary frames (shared/protocol/frame.ts), never JSON.
 */
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
}

export interface LoadReport {
  modelId: string;
  layers: LayerRange;
  executionProvider: ExecutionProvider;
  /** Why this provider: e.g. "webgpu unavailable: no adapter" when it fell back. */
  reason: string;
  /** Pieces fetched and hash-checked (0 when bytes were handed in and checked). */
  piecesVerified: number;
  /** the package's bytes for the range */
  weightBytes: number;
  /** what its weights take where they compute: more than weightBytes where they were unpacked (q4 on wasm runs as f32) */
  runtimeWeightBytes: number;
  loadMs: number;
}

/** The engine's compute threads (onnxruntime-web's WASM threads in a browser worker). */
export interface EngineThreads {
  /** threads the engine computes with */
  threads: number;
  /** the machine's logical cores (navigator.hardwareConcurrency) */
  cores: number;
  /** whether threads beyond one are possible: WASM threads need a crossOriginIsolated page and worker */
  isolated: boolean;
}

/** What the engine has cost its host: what a donor page shows the visitor. */
export interface EngineUsage {
  /** milliseconds spent computing steps since the engine started (each on its threads) */
  computeMs: number;
  /** bytes its weights and caches take where they compute */
  memoryBytes: number;
}

export interface MemoryReport {
  /** KV cache bytes held for live requests (GPU or CPU, by the active provider). */
  cacheBytes: number;
  requests: number;
  /** what the loaded weights take where they compute (LoadReport.runtimeWeightBytes) */
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
