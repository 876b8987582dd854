/**
 * The infermesh SDK in Node 24: the same `connect({ url })` as the browser entry
 * (web/sdk/index.ts), with the head on onnxruntime-node and WebRTC through node-datachannel.
 */
import * as ort from 'onnxruntime-node';
import { connectGrid } from '../../shared/grid/client.ts';
import type { ConnectOptions, GridClient } from '../../shared/grid/client.ts';
import type { OrtModule } from '../../shared/runtime/ort.ts';

export * from './exports.ts';

export function connect(options: ConnectOptions): Promise<GridClient> {
  return connectGrid(options, { ort: ort as unknown as OrtModule });
}
