/**
 * A Stage runs a contiguous range of transformer blocks for many requests: a hidden-state
 * frame in, the frame for the next stage out. It keeps each request's KV cache for its layers
 * between steps, as a grid node will; the cache never leaves the stage. Its session runs the
 * range's block graphs stitched into one (shared/model/compose.ts).
 *
 * Caches are dropped when a request ends, when it has been idle too long, and under memory
 * pressure, least recently used first; a frame for a dropped request is refused by name.
 */
import { InfermeshError } from '../errors.ts';
import { decodeFrame, encodeFrame, FrameError } from '../protocol/frame.ts';
import type { HiddenFrame } from '../protocol/frame.ts';
import type { ModelConfig } from '../model/config.ts';
import { composedIo } from '../model/compose.ts';
import type { OrtRuntime, OrtSession, OrtTensor } from './ort.ts';
import { cpuKvStoreFactory } from './kv-cache.ts';
import type { KvStore, KvStoreFactory } from './kv-cache.ts';

export class UnknownRequestError extends InfermeshError {
  override name = 'UnknownRequestError';
}

export interface LayerRange {
  /** first layer, inclusive */
  start: number;
  /** last layer, exclusive */
  end: number;
}

export const sameRange = (a: LayerRange, b: LayerRange): boolean => a.start === b.start && a.end === b.end;

export type EvictionReason = 'idle' | 'memory';

interface RequestState {
  /** per layer of the range: [key, value] */
  caches: [KvStore, KvStore][];
  /** the position the next frame must start at */
  nextPosition: number;
  lastUsed: number;
}

export interface Stage {
  readonly layers: LayerRange;
  /**
   * Runs the stage's layers over one frame and returns the output frame: the hidden states,
   * or, from a session composed with the head, the logits of the last row [1, 1, vocab].
   */
  forward(frame: Uint8Array): Promise<Uint8Array>;
  /**
   * The same step on a decoded frame, for a caller in the same process: a hand-off between
   * in-process stages need not be encoded to bytes and parsed back (bench local).
   */
  forwardFrame(frame: HiddenFrame): Promise<HiddenFrame>;
  /** Drops a request's KV cache. */
  end(requestId: string): void;
  activeRequests(): number;
  /** Bytes reserved by all live requests' caches. */
  cacheBytes(): number;
  /** Drops caches idle longer than the limit; returns the ids dropped. */
  sweep(): string[];
  release(): Promise<void>;
}

export interface StageLimits {
  /** drop a request after this long without a step */
  idleTimeoutMs: number;
  /** beyond this many cache bytes, drop least recently used requests */
  maxCacheBytes: number;
}

export const DEFAULT_STAGE_LIMITS: StageLimits = { idleTimeoutMs: 5 * 60_000, maxCacheBytes: 1 << 30 };
/** Remembered so a late frame for an evicted request says why it is unknown. */
const EVICTED_MEMORY = 1024;

export interface StageOptions {
  config: ModelConfig;
  layers: LayerRange;
  /** the stage graph of `layers` (composeStageGraph) */
  session: OrtSession;
  limits?: Partial<StageLimits>;
}

export interface StageDeps {
  ort: OrtRuntime;
  /** where caches live; default: CPU buffers */
  kv?: KvStoreFactory;
  now?: () => number;
  onEvict?: (requestIds: string[], reason: EvictionReason) => void;
}

export function createStage(options: StageOptions, deps: StageDeps): Stage {
  const { config, layers, session } = options;
  const limits: StageLimits = {
    idleTimeoutMs: options.limits?.idleTimeoutMs ?? DEFAULT_STAGE_LIMITS.idleTimeoutMs,
    maxCacheBytes: options.limits?.maxCacheBytes ?? DEFAULT_STAGE_LIMITS.maxCacheBytes,
  };
  const { Tensor } = deps.ort;
  const newStore = deps.kv ?? cpuKvStoreFactory(config, deps.ort);
  const now = deps.now ?? (() => Date.now());
  const layerCount = layers.end - layers.start;
  /** Map order is recency order: a request is re-inserted on every step. */
  const requests = new Map<string, RequestState>();
  /** Requests with a step running: a request's steps are strictly sequential. */
  const inFlight = new Set<string>();
  /** The session runs under way, which release() waits for. */
  const runs = new Set<Promise<unknown>>();
  /** Requests ended while a step ran: that step's cache is dropped when it finishes. */
  const endedInFlight = new Set<string>();
  const evicted = new Map<string, EvictionReason>();
  /** the graph's cache inputs and outputs, per layer of the range */
  const cacheIo = Array.from({ length: layerCount }, (_, i) => {
    const layer = layers.start + i;
    return { pastKey: composedIo.pastKey(layer), pastValue: composedIo.pastValue(layer), newKey: composedIo.newKey(layer), newValue: composedIo.newValue(layer) };
  });

  const bytesOf = (state: RequestState) => state.caches.reduce((sum, [k, v]) => sum + k.bytes() + v.bytes(), 0);
  const drop = (id: string) => {
    requests.get(id)?.caches.forEach(([k, v]) => (k.dispose(), v.dispose()));
    requests.delete(id);
  };
  const evict = (ids: string[], reason: EvictionReason) => {
    if (ids.length === 0) return;
    for (const id of ids) {
      drop(id);
      evicted.set(id, reason);
      if (evicted.size > EVICTED_MEMORY) evicted.delete(evicted.keys().next().value!);
    }
    deps.onEvict?.(ids, reason);
  };
  const sweep = () => {
    const cutoff = now() - limits.idleTimeoutMs;
    const idle: string[] = [];
    // Map order is recency order: the idle requests come first.
    for (const [id, s] of requests) {
      if (s.lastUsed >= cutoff) break;
      if (!inFlight.has(id)) idle.push(id);
    }
    evict(idle, 'idle');
    return idle;
  };
  /** Least recently used first, never the request being served. */
  const relievePressure = (keep: string) => {
    let total = 0;
    for (const state of requests.values()) total += bytesOf(state);
    if (total <= limits.maxCacheBytes) return;
    const victims: string[] = [];
    for (const [id, state] of requests) {
      if (total <= limits.maxCacheBytes) break;
      if (id === keep || inFlight.has(id)) continue;
      total -= bytesOf(state);
      victims.push(id);
    }
    evict(victims, 'memory');
  };

  const forwardFrame = async (frame: HiddenFrame): Promise<HiddenFrame> => {
    const [batch, seq, width] = frame.dims;
    if (frame.dims.length !== 3 || batch !== 1 || width !== config.dim || seq < 1) {
      throw new FrameError(`expected hidden state [1, seq, ${config.dim}], got [${frame.dims}]`);
    }
    if (frame.data.length !== seq * width) throw new FrameError(`dims [${frame.dims}] hold ${seq * width} values but data has ${frame.data.length}`);
    const id = frame.requestId;
    if (inFlight.has(id)) throw new FrameError(`request ${id} already has a step in flight; send its next frame after the output`);
    sweep();
    let state = requests.get(id);
    if (!state) {
      if (frame.position !== 0) {
        const why = evicted.get(id);
        throw new UnknownRequestError(
          why ? `request ${id} was evicted (${why === 'idle' ? 'idle timeout' : 'memory pressure'}); start it again at position 0`
            : `unknown request ${id} (a new request starts at position 0)`,
        );
      }
      state = { caches: Array.from({ length: layerCount }, () => [newStore(), newStore()]), nextPosition: 0, lastUsed: now() };
    }
    if (frame.position !== state.nextPosition) {
      throw new FrameError(`request ${id} expected position ${state.nextPosition}, got ${frame.position}`);
    }
    if (frame.position + seq > config.maxSeqLen) {
      throw new FrameError(`positions up to ${frame.position + seq} exceed the context of ${config.maxSeqLen}`);
    }
    const positions = new BigInt64Array(seq);
    for (let i = 0; i < seq; i++) positions[i] = BigInt(frame.position + i);
    const feeds: Record<string, OrtTensor> = {
      [composedIo.hidden]: new Tensor('float32', frame.data, [1, seq, config.dim]),
      [composedIo.positions]: new Tensor('int64', positions, [1, seq]),
    };
    state.caches.forEach(([key, value], i) => {
      feeds[cacheIo[i].pastKey] = key.tensor();
      feeds[cacheIo[i].pastValue] = value.tensor();
    });
    inFlight.add(id);
    let out: Record<string, OrtTensor>;
    const run = session.run(feeds);
    runs.add(run);
    try {
      out = await run;
    } catch (err) {
      // A fresh request that failed leaves nothing behind; a live one keeps its cache as it was.
      if (!requests.has(id)) state.caches.forEach(([k, v]) => (k.dispose(), v.dispose()));
      throw err;
    } finally {
      inFlight.delete(id);
      runs.delete(run);
    }
    if (endedInFlight.delete(id)) {
      state.caches.forEach(([k, v]) => (k.dispose(), v.dispose()));
      requests.delete(id);
    } else {
      state.caches.forEach(([key, value], i) => {
        key.append(out[cacheIo[i].newKey]);
        value.append(out[cacheIo[i].newValue]);
      });
      state.nextPosition += seq;
      state.lastUsed = now();
      requests.delete(id);
      requests.set(id, state);
      evicted.delete(id);
      relievePressure(id);
    }
    // A last stage composed with the head returns the logits of the last row instead.
    const result = out[composedIo.hiddenOut] ?? out[composedIo.logits];
    return { requestId: id, step: frame.step, position: frame.position, dims: [...result.dims], data: result.data as Float32Array };
  };

  return {
    layers,
    forwardFrame,
    async forward(bytes) {
      return encodeFrame(await forwardFrame(decodeFrame(bytes)));
    },
    end(requestId) {
      // A running step still reads its cache: it is disposed when that step finishes.
      if (inFlight.has(requestId)) {
        endedInFlight.add(requestId);
        requests.delete(requestId);
      } else drop(requestId);
    },
    activeRequests: () => requests.size,
    cacheBytes: () => [...requests.values()].reduce((sum, s) => sum + bytesOf(s), 0),
    sweep,
    async release() {
      for (const id of [...requests.keys()]) drop(id);
      endedInFlight.clear();
      // A session is never released under a running step (onnxruntime would free what it computes on).
      await Promise.allSettled([...runs]);
      await session.release();
    },
  };
}

/** Splits layers 0..n into k contiguous ranges as evenly as possible (earlier ranges take the remainder). */
export function splitLayers(nLayers: number, stages: number): LayerRange[] {
  if (!Number.isInteger(stages) || stages < 1 || stages > nLayers) {
    throw new RangeError(`stages must be an integer from 1 to ${nLayers} (the number of layers), got ${stages}`);
  }
  const base = Math.floor(nLayers / stages);
  const extra = nLayers % stages;
  const ranges: LayerRange[] = [];
  let start = 0;
  for (let i = 0; i < stages; i++) {
    const size = base + (i < extra ? 1 : 0);
    ranges.push({ start, end: start + size });
    start += size;
  }
  return ranges;
}
