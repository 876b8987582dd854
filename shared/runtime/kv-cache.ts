/**
 * A request's keys or values for one layer, held by the stage that serves the layer:
 * position-major rows of kvHeads × headDim floats in one growable buffer. A step appends the
 * rows the block graph returned; the next step passes the filled prefix back in as a view, so
 * no cache bytes are copied in or out of the runtime per token (only capacity growth copies,
 * doubling, so amortised O(1) per row).
 */
export interface KvRows {
  /** rows (positions) held */
  readonly length: number;
  /** the filled rows, [length × rowWidth], a view of the buffer (valid until the next append) */
  view(): Float32Array;
  append(rows: Float32Array): void;
  /** bytes reserved, for memory accounting */
  capacityBytes(): number;
}

import type { ModelConfig } from '../model/config.ts';
import type { OrtRuntime, OrtTensor } from './ort.ts';

const INITIAL_ROWS = 32;

export function createKvRows(rowWidth: number, maxRows: number): KvRows {
  let buffer = new Float32Array(0);
  let length = 0;
  return {
    get length() {
      return length;
    },
    view: () => buffer.subarray(0, length * rowWidth),
    append(rows) {
      if (rows.length % rowWidth !== 0) throw new RangeError(`kv rows of ${rows.length} values are not a multiple of the row width ${rowWidth}`);
      const added = rows.length / rowWidth;
      if (length + added > maxRows) throw new RangeError(`kv cache would hold ${length + added} positions, more than ${maxRows}`);
      if ((length + added) * rowWidth > buffer.length) {
        let capacity = Math.max(INITIAL_ROWS, buffer.length / rowWidth);
        while (capacity < length + added) capacity *= 2;
        const grown = new Float32Array(Math.min(capacity, maxRows) * rowWidth);
        grown.set(buffer.subarray(0, length * rowWidth));
        buffer = grown;
      }
      buffer.set(rows, length * rowWidth);
      length += added;
    },
    capacityBytes: () => buffer.byteLength,
  };
}

/**
 * One layer's keys or values for one request, wherever they live: the stage feeds `tensor()`
 * to the graph as past_key/past_value and hands the graph's new_key/new_value output to
 * `append`. The CPU store below keeps rows in a KvRows buffer; the WebGPU store
 * (worker/gpu-kv-store.ts) keeps them in a GPU buffer and appends with a GPU-side copy.
 */
export interface KvStore {
  readonly length: number;
  tensor(): OrtTensor;
  append(rows: OrtTensor): void;
  /** bytes reserved for this store */
  bytes(): number;
  dispose(): void;
}

/** Makes the stores of one new request: one per (layer, key|value). */
export type KvStoreFactory = () => KvStore;

export function cpuKvStoreFactory(config: Pick<ModelConfig, 'nKvHeads' | 'headDim' | 'maxSeqLen'>, ort: OrtRuntime): KvStoreFactory {
  const width = config.nKvHeads * config.headDim;
  return () => {
    let rows = createKvRows(width, config.maxSeqLen);
    return {
      get length() {
        return rows.length;
      },
      tensor: () => new ort.Tensor('float32', rows.view(), [1, rows.length, config.nKvHeads, config.headDim]),
      append: (out) => rows.append(out.data as Float32Array),
      bytes: () => rows.capacityBytes(),
      dispose: () => {
        rows = createKvRows(width, config.maxSeqLen);
      },
    };
  };
}
