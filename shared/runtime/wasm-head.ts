/**
 * How a client opens the head on onnxruntime's WASM provider (the browser SDK, and the engine
 * bench that compares against it): a q4/q8 head as the compiler builds it on infermesh's
 * quantized kernels (quantized/quantized-head.ts), any other with its linear unpacked to f32
 * once (shared/model/dequantize-linears.ts).
 */
import type { ModelConfig } from '../model/config.ts';
import { unpackedForWasm } from '../model/dequantize-linears.ts';
import type { ExternalFile } from '../model/dequantize-linears.ts';
import { decodeModel } from '../model/onnx/schema.ts';
import type { OrtModule, OrtSession } from './ort.ts';
import { openQuantizedHead } from './quantized/quantized-head.ts';

export async function openWasmHead(head: { config: ModelConfig; graph: Uint8Array; externalData: ExternalFile[] }, ort: OrtModule, sessionOptions: object = {}): Promise<OrtSession> {
  try {
    return await openQuantizedHead({ config: head.config, head: decodeModel(head.graph), externalData: head.externalData }, { ort });
  } catch (err) {
    if ((err as Error).name !== 'UnsupportedGraphError') throw err;
  }
  const opened = unpackedForWasm(head.graph, head.externalData);
  return ort.InferenceSession.create(opened.graph, { ...sessionOptions, executionProviders: ['wasm'], externalData: opened.externalData } as never);
}
