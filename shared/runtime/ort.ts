/**
 * The slice of the onnxruntime API the runtime needs, so the same stage and pipeline code runs
 * over onnxruntime-node (CLI, validator) and onnxruntime-web (browser worker). Callers inject
 * the runtime module they have; nothing here imports a runtime.
 */
import type { InferenceSession, Tensor } from 'onnxruntime-common';

export type OrtTensor = Tensor;
export type OrtSession = Pick<InferenceSession, 'run' | 'release' | 'inputNames' | 'outputNames'>;

export interface OrtRuntime {
  Tensor: typeof Tensor;
}

/** Opens a graph of the package by its path within the package (e.g. "block-3.onnx"). */
export type SessionOpener = (graph: string) => Promise<OrtSession>;
