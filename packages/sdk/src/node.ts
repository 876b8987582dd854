/**
 * The infermesh SDK in Node (22 or later): the same `connect({ url })` as the browser entry
 * (browser.ts), with WebRTC through node-datachannel (prebuilt, no install step). The client's
 * embedding and head run on onnxruntime-node when the app has installed it (an optional peer:
 * native kernels, about 10 % faster per token on an f32 head, even on a q4 one) and otherwise on
 * onnxruntime-web's WASM build (no WebGPU in it, half the size), which the package depends on
 * and which installs anywhere with no native download.
 */
import { connectGrid } from '../../../shared/grid/client.ts';
import type { ClientDeps, ConnectOptions, GridClient } from '../../../shared/grid/client.ts';
import { UsageError } from '../../../shared/errors.ts';
import type { OrtModule } from '../../../shared/runtime/ort.ts';
import { closeChannelsWithConnection } from './webrtc-close.ts';

export * from './exports.ts';

/** Which onnxruntime runs the client's share of the model in Node. */
export type NodeRuntime = 'auto' | 'native' | 'wasm';

export interface NodeConnectOptions extends ConnectOptions {
  /**
   * 'native': onnxruntime-node (`npm install onnxruntime-node`); 'wasm': onnxruntime-web's WASM;
   * 'auto' (default): native when it is installed, else WASM
   */
  runtime?: NodeRuntime;
}

export async function connect(options: NodeConnectOptions): Promise<GridClient> {
  // So that the app's process can exit once its clients are closed (webrtc-close.ts).
  closeChannelsWithConnection();
  return connectGrid(options, await runtimeDeps(options.runtime ?? 'auto'));
}

async function runtimeDeps(runtime: NodeRuntime): Promise<ClientDeps> {
  if (runtime !== 'auto' && runtime !== 'native' && runtime !== 'wasm') {
    throw new UsageError(`runtime must be 'auto', 'native' or 'wasm', not ${JSON.stringify(runtime)}`);
  }
  if (runtime !== 'wasm') {
    const native = await import('onnxruntime-node').catch((err: unknown) => {
      if (runtime === 'native') throw new UsageError(`runtime 'native' needs onnxruntime-node: npm install onnxruntime-node (${(err as Error).message})`);
      return null;
    });
    if (native) return { ort: native as unknown as OrtModule };
  }
  const web = await import('onnxruntime-web/wasm');
  // The head is one matmul per token: on WASM it runs on infermesh's quantized kernels.
  return { ort: web as unknown as OrtModule, headSessionOptions: { executionProviders: ['wasm'] }, headOnWasm: true };
}
