/**
 * The shape of a Llama-family decoder, in one vocabulary for every checkpoint format.
 * Readers translate llama2.c headers and Hugging Face config.json files into it; the
 * compiler, the reference forward pass and the runtime read only this.
 */
import { ModelConfigError } from '../errors.ts';

export type Architecture = 'llama' | 'mistral' | 'qwen2';

/** Rotary-embedding frequency scaling (Hugging Face `rope_scaling`). */
export type RopeScaling =
  | { type: 'linear'; factor: number }
  | {
      type: 'llama3';
      factor: number;
      lowFreqFactor: number;
      highFreqFactor: number;
      originalMaxPositionEmbeddings: number;
    };

export interface ModelConfig {
  architecture: Architecture;
  /** Hidden size (llama2.c `dim`, HF `hidden_size`). */
  dim: number;
  /** MLP inner size (llama2.c `hidden_dim`, HF `intermediate_size`). */
  hiddenDim: number;
  nLayers: number;
  nHeads: number;
  nKvHeads: number;
  headDim: number;
  vocabSize: number;
  /** Longest context the model was trained for; prompts plus completions must fit. */
  maxSeqLen: number;
  ropeTheta: number;
  ropeScaling?: RopeScaling;
  normEps: number;
  /** q/k/v projections carry a bias (Qwen2, some Llama variants). */
  qkvBias: boolean;
  /** Attention only looks this many positions back (Mistral); absent = full causal. */
  slidingWindow?: number;
  /** The LM head reuses the token embedding matrix. */
  tiedEmbeddings: boolean;
}

/** Throws a ModelConfigError naming the first inconsistency; returns the config for chaining. */
export function validateConfig(config: ModelConfig, source?: string): ModelConfig {
  const fail = (msg: string): never => {
    throw new ModelConfigError(msg, { source });
  };
  const positive = ['dim', 'hiddenDim', 'nLayers', 'nHeads', 'nKvHeads', 'headDim', 'vocabSize', 'maxSeqLen'] as const;
  for (const key of positive) {
    const v = config[key];
    if (!Number.isInteger(v) || v <= 0) fail(`${key} must be a positive integer, got ${v}`);
  }
  if (config.nHeads % config.nKvHeads !== 0) {
    fail(`number of attention heads (${config.nHeads}) is not a multiple of key/value heads (${config.nKvHeads})`);
  }
  if (config.headDim % 2 !== 0) fail(`head size ${config.headDim} must be even for rotary embeddings`);
  if (!(config.ropeTheta > 0)) fail(`rope theta must be positive, got ${config.ropeTheta}`);
  if (!(config.normEps > 0)) fail(`norm epsilon must be positive, got ${config.normEps}`);
  if (config.slidingWindow !== undefined && !(config.slidingWindow > 0)) {
    fail(`sliding window must be positive, got ${config.slidingWindow}`);
  }
  return config;
}

/** Parameters per transformer block, used for sizes and progress reporting. */
export function blockParameterCount(c: ModelConfig): number {
  const q = c.nHeads * c.headDim;
  const kv = c.nKvHeads * c.headDim;
  const attn = c.dim * q + 2 * c.dim * kv + q * c.dim + (c.qkvBias ? q + 2 * kv : 0);
  return attn + 3 * c.dim * c.hiddenDim + 2 * c.dim;
}
