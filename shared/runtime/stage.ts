/**
 * A Stage runs a contiguous range of transformer blocks for many requests: a hidden-state
 * frame in, the frame for the next stage out. It keeps each request's KV cache for its layers
 * between steps, as a grid node will; the cache never leaves the stage. Its session runs the
 * range's block graphs stitched into one (shared/model/compose.ts).
 */
import { InfermeshError } from '../errors.ts';
import { decodeFrame, encodeFrame, FrameError } from '../protocol/frame.ts';
import type { ModelConfig } from '../model/config.ts';
import { composedIo } from '../model/compose.ts';
import type { OrtRuntime, OrtSession, OrtTensor } from './ort.ts';
import { createKvRows } from './kv-cache.ts';
import type { KvRows } from './kv-cache.ts';

export class UnknownRequestError extends InfermeshError {
  override name = 'UnknownRequestError';
}

export interface LayerRange {
  /** first layer, inclusive */
  start: number;
  /** last layer, exclusive */
  end: number;
}

interface LayerCache {
  key: KvRows;
  value: KvRows;
}

interface RequestState {
  caches: LayerCache[];
  /** the position the next frame must start at */
  nextPosition: number;
  step: number;
}

export interface Stage {
  readonly layers: LayerRange;
  /** Runs the stage's layers over one frame and returns the output frame. */
  forward(frame: Uint8Array): Promise<Uint8Array>;
  /** Drops a request's KV cache. */
  end(requestId: string): void;
  activeRequests(): number;
  release(): Promise<void>;
}

export interface StageOptions {
  config: ModelConfig;
  layers: LayerRange;
  /** the stage graph of `layers` (composeStageGraph) */
  session: OrtSession;
}

export function createStage(options: StageOptions, deps: { ort: OrtRuntime }): Stage {
  const { config, layers, session } = options;
  const { Tensor } = deps.ort;
  const layerCount = layers.end - layers.start;
  const requests = new Map<string, RequestState>();
  /** Requests with a step running: a request's steps are strictly sequential. */
  const inFlight = new Set<string>();
  /** Requests ended while a step ran: that step's cache is dropped when it finishes. */
  const endedInFlight = new Set<string>();
  const rowWidth = config.nKvHeads * config.headDim;
  const newCache = (): LayerCache => ({ key: createKvRows(rowWidth, config.maxSeqLen), value: createKvRows(rowWidth, config.maxSeqLen) });
  const cacheTensor = (rows: KvRows) => new Tensor('float32', rows.view(), [1, rows.length, config.nKvHeads, config.headDim]);

  return {
    layers,
    async forward(bytes) {
      const frame = decodeFrame(bytes);
      const [batch, seq, width] = frame.dims;
      if (frame.dims.length !== 3 || batch !== 1 || width !== config.dim || seq < 1) {
        throw new FrameError(`expected hidden state [1, seq, ${config.dim}], got [${frame.dims}]`);
      }
      const id = frame.requestId;
      if (inFlight.has(id)) throw new FrameError(`request ${id} already has a step in flight; send its next frame after the output`);
      let state = requests.get(id);
      if (!state) {
        if (frame.position !== 0) throw new UnknownRequestError(`unknown request ${frame.requestId} (a new request starts at position 0)`);
        state = { caches: Array.from({ length: layerCount }, newCache), nextPosition: 0, step: 0 };
      }
      if (frame.position !== state.nextPosition) {
        throw new FrameError(`request ${frame.requestId} expected position ${state.nextPosition}, got ${frame.position}`);
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
      state.caches.forEach((cache, i) => {
        feeds[composedIo.pastKey(layers.start + i)] = cacheTensor(cache.key);
        feeds[composedIo.pastValue(layers.start + i)] = cacheTensor(cache.value);
      });
      inFlight.add(id);
      let out: Record<string, OrtTensor>;
      try {
        out = await session.run(feeds);
      } finally {
        inFlight.delete(id);
      }
      // The request is (re)registered only after its step succeeded: a refused or failed first
      // frame leaves nothing behind, and a failed later step leaves the cache as it was.
      if (endedInFlight.delete(id)) {
        requests.delete(id);
      } else {
        state.caches.forEach((cache, i) => {
          cache.key.append(out[composedIo.newKey(layers.start + i)].data as Float32Array);
          cache.value.append(out[composedIo.newValue(layers.start + i)].data as Float32Array);
        });
        state.nextPosition += seq;
        state.step += 1;
        requests.set(id, state);
      }
      const hidden = out[composedIo.hiddenOut];
      return encodeFrame({ requestId: frame.requestId, step: frame.step, position: frame.position, dims: frame.dims, data: hidden.data as Float32Array });
    },
    end(requestId) {
      requests.delete(requestId);
      if (inFlight.has(requestId)) endedInFlight.add(requestId);
    },
    activeRequests: () => requests.size,
    async release() {
      requests.clear();
      endedInFlight.clear();
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
