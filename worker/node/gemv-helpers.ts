/** Starts the quantized kernels' helper threads as Node worker threads (gemv-helper.node-worker.ts). */
import { Worker } from 'node:worker_threads';
import type { SpawnGemvHelper } from '../../shared/runtime/quantized/gemv-threads.ts';

export const spawnNodeGemvHelper: SpawnGemvHelper = (init) =>
  new Promise((resolve, reject) => {
    const worker = new Worker(new URL('./gemv-helper.node-worker.ts', import.meta.url), { workerData: init, name: `infermesh kernels ${init.index}` });
    worker.once('message', () => {
      // Once started, a helper never keeps the process alive: its stage's release terminates it.
      worker.unref();
      resolve({ terminate: () => void worker.terminate() });
    });
    worker.once('error', (err) => reject(new Error(`a kernel thread did not start: ${err.message}`, { cause: err })));
  });
