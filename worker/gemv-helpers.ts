/** Starts the quantized kernels' helper threads as Web Workers (gemv-helper.worker.ts). */
import type { SpawnGemvHelper } from '../shared/runtime/quantized/gemv-threads.ts';

export const spawnGemvHelper: SpawnGemvHelper = (init) =>
  new Promise((resolve, reject) => {
    const worker = new Worker(new URL('./gemv-helper.worker.ts', import.meta.url), { type: 'module', name: `infermesh kernels ${init.index}` });
    worker.onmessage = () => resolve(worker);
    worker.onerror = (event) => {
      worker.terminate();
      reject(new Error(`a kernel thread did not start: ${event.message || 'its script failed to load'}`));
    };
    worker.postMessage(init);
  });
