/**
 * A helper thread of the quantized kernels in a browser (gemv-threads.ts): started by the
 * engine's worker, it computes its share of each product's rows until the stage is released.
 */
import { runGemvHelper } from '../shared/runtime/quantized/gemv-threads.ts';
import type { GemvHelperInit } from '../shared/runtime/quantized/gemv-threads.ts';

self.onmessage = async (event: MessageEvent<GemvHelperInit>) => {
  const init = event.data;
  const { exports } = await WebAssembly.instantiate(init.module, { env: { memory: init.memory } });
  // Blocks between jobs (Atomics.wait): this worker does nothing else.
  runGemvHelper(init, exports as never, () => self.postMessage('ready'));
};
