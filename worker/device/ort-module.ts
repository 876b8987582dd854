/**
 * The onnxruntime namespace the probes run on, injected by the caller: `onnxruntime-web` in a
 * page or Web Worker, `onnxruntime-node` in Node. Nothing under worker/device imports a runtime.
 */
import type { OrtSession } from '../../shared/runtime/ort.ts';

export type { OrtModule, OrtSessionOptions } from '../../shared/runtime/ort.ts';
export type OrtInferenceSession = OrtSession;

/** The CPU execution providers: onnxruntime-web's WebAssembly kernels, onnxruntime-node's native ones. */
export type CpuExecutionProvider = 'wasm' | 'cpu';
