/** A helper thread of the quantized kernels under Node (worker_threads; gemv-threads.ts). */
import { parentPort, workerData } from 'node:worker_threads';
import { runGemvHelper } from '../../shared/runtime/quantized/gemv-threads.ts';
import type { GemvHelperInit } from '../../shared/runtime/quantized/gemv-threads.ts';

const init = workerData as GemvHelperInit;
const { exports } = await WebAssembly.instantiate(init.module, { env: { memory: init.memory } });
runGemvHelper(init, exports as never, () => parentPort!.postMessage('ready'));
