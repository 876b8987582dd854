/**
 * The slice of the onnxruntime API the runtime needs, so the same stage and pipeline code runs
 * over onnxruntime-node (CLI, validator) and onnxruntime-web (browser worker). Callers inject
 * the runtime module they have; nothing here imports a runtime.
 */
import type { InferenceSession, Tensor } from 'onnxruntime-common';

export type OrtTensor = Tensor;
export type OrtSession = Pick<InferenceSession, 'run' | 'release' | 'inputNames' | 'outputNames'>;
export type OrtSessionOptions = InferenceSession.SessionOptions;

/** What code that only builds tensors needs (stages, pipelines). */
export interface OrtRuntime {
  Tensor: typeof Tensor;
}

/** What code that also opens sessions needs: both runtimes' namespaces fit it. */
export interface OrtModule extends OrtRuntime {
  InferenceSession: { create(model: Uint8Array, options?: OrtSessionOptions): Promise<OrtSession> };
}

/**
 * Every session of a pipeline shares the same few cores and has its own intra-op thread pool.
 * onnxruntime's pools spin between ops (fast dispatch) and, by default, keep spinning after a
 * run ends, which starves the next stage's pool. `force_spinning_stop` keeps the spinning within
 * a run and parks the threads when it ends: on 2 cores this made the staged pipeline ~1.5x
 * faster than spinning freely and ~20% faster than not spinning (bench local).
 */
export const PIPELINE_SESSION_CONFIG = { intra_op: { allow_spinning: '1' }, force_spinning_stop: '1' };

/**
 * Session options of the CPU sessions a Node process chains (local stages, the Node engine,
 * the head): the thread settings above, and no per-session memory arena. Each session's arena
 * keeps its own buffers, so a token's activations land in a different, cache-cold region at
 * every stage; with plain malloc the buffers one stage frees are the next stage's, still in
 * cache. With 4 stages of 110m f32 this took the staged decode from 0.92-0.94x to 0.95-0.96x
 * the whole-model graph; the whole-model graph itself did not change (bench local, 2 vCPUs).
 */
export const PIPELINE_SESSION_OPTIONS = {
  graphOptimizationLevel: 'all',
  executionMode: 'sequential',
  enableCpuMemArena: false,
  extra: { session: PIPELINE_SESSION_CONFIG },
} as const satisfies OrtSessionOptions;
