/**
 * The onnxruntime namespace the probes run on, injected by the caller: `onnxruntime-web` in a
 * page or Web Worker, `onnxruntime-node` in Node. Nothing under worker/device imports a runtime.
 */
import type { InferenceSession, Tensor } from 'onnxruntime-common';

export type OrtSessionOptions = InferenceSession.SessionOptions;
export type OrtInferenceSession = Pick<InferenceSession, 'run' | 'release' | 'inputNames' | 'outputNames'>;

export interface OrtModule {
  Tensor: typeof Tensor;
  InferenceSession: {
    create(model: Uint8Array, options?: OrtSessionOptions): Promise<OrtInferenceSession>;
  };
}

/** The CPU execution providers: onnxruntime-web's WebAssembly kernels, onnxruntime-node's native ones. */
export type CpuExecutionProvider = 'wasm' | 'cpu';
