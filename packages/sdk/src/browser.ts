/**
 * The infermesh SDK in a browser: `const grid = await connect({ url })`, then
 * `for await (const t of grid.generate(prompt, { maxTokens, temperature, topP, seed, signal }))`
 * or `await grid.chat.completions.create({ messages, stream })` in OpenAI's shape. The client
 * runs the embedding and the head itself (onnxruntime-web's WASM build: no WebGPU code, its .wasm
 * half the size of the default build's) and streams hidden states
 * through a route of donor tabs over direct WebRTC (shared/grid/client.ts).
 * To pay for requests, pass `payer: privateKeyToAccount(key)` (viem/accounts): after each request
 * the client signs an EIP-712 voucher for everything it owes so far and posts it to the server;
 * the account needs escrow on the server's Settlement contract (`deposit` in
 * shared/settle/settlement-client.ts). A refused voucher is thrown as a PaymentRefusedError by
 * the next call, or handed to `onPaymentError` when one is given.
 * In Node the same API comes from node.ts; the package's `exports` pick the right one.
 */
import * as ort from 'onnxruntime-web/wasm';
import { ORT_ASSET_PATH } from '../../../shared/engine/api.ts';
import { connectGrid } from '../../../shared/grid/client.ts';
import type { ConnectOptions, GridClient } from '../../../shared/grid/client.ts';
import type { OrtModule } from '../../../shared/runtime/ort.ts';

export * from './exports.ts';

export interface BrowserConnectOptions extends ConnectOptions {
  /** where onnxruntime-web's .wasm files are served (default: the grid server's /ort/, so a bundler need not copy them) */
  ortAssets?: string;
}

export async function connect(options: BrowserConnectOptions): Promise<GridClient> {
  // The head is one matmul per token: onnxruntime-web's WASM kernels, from the grid server.
  ort.env.wasm.wasmPaths ??= options.ortAssets ?? new URL(ORT_ASSET_PATH, options.url).href;
  return connectGrid(options, { ort: ort as unknown as OrtModule, headSessionOptions: { executionProviders: ['wasm'] }, headOnWasm: true });
}
