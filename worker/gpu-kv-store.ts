/**
 * KV caches that stay on the GPU between steps (WebGPU execution provider). Each layer's keys
 * or values live in one GPUBuffer, position-major; the graph reads them through a tensor view
 * of the filled prefix and returns the step's new rows as a GPU buffer (preferredOutputLocation
 * 'gpu-buffer'), which is appended with a GPU-side copy. No cache byte crosses to the CPU.
 */
import type { ModelConfig } from '../shared/model/config.ts';
import type { KvStoreFactory } from '../shared/runtime/kv-cache.ts';
import type { OrtRuntime, OrtTensor } from '../shared/runtime/ort.ts';

const INITIAL_ROWS = 32;
const USAGE = 0x80 /* STORAGE */ | 0x04 /* COPY_SRC */ | 0x08; /* COPY_DST */

export function gpuKvStoreFactory(config: Pick<ModelConfig, 'nKvHeads' | 'headDim' | 'maxSeqLen'>, deps: { ort: OrtRuntime; device: GPUDevice }): KvStoreFactory {
  const { device } = deps;
  const rowBytes = config.nKvHeads * config.headDim * 4;
  return () => {
    let capacity = Math.min(INITIAL_ROWS, config.maxSeqLen);
    let buffer = device.createBuffer({ size: capacity * rowBytes, usage: USAGE });
    let length = 0;
    return {
      get length() {
        return length;
      },
      tensor: () => deps.ort.Tensor.fromGpuBuffer(buffer, { dataType: 'float32', dims: [1, length, config.nKvHeads, config.headDim] }),
      append(rows: OrtTensor) {
        const added = rows.dims[1];
        if (length + added > config.maxSeqLen) throw new RangeError(`kv cache would hold ${length + added} positions, more than ${config.maxSeqLen}`);
        const encoder = device.createCommandEncoder();
        if (length + added > capacity) {
          while (capacity < length + added) capacity *= 2;
          capacity = Math.min(capacity, config.maxSeqLen);
          const grown = device.createBuffer({ size: capacity * rowBytes, usage: USAGE });
          if (length > 0) encoder.copyBufferToBuffer(buffer, 0, grown, 0, length * rowBytes);
          const old = buffer;
          buffer = grown;
          device.queue.onSubmittedWorkDone().then(() => old.destroy());
        }
        encoder.copyBufferToBuffer(rows.gpuBuffer as GPUBuffer, 0, buffer, length * rowBytes, added * rowBytes);
        device.queue.submit([encoder.finish()]);
        rows.dispose();
        length += added;
      },
      bytes: () => capacity * rowBytes,
      dispose() {
        const old = buffer;
        length = 0;
        device.queue.onSubmittedWorkDone().then(() => old.destroy());
      },
    };
  };
}
