/**
 * Named model shapes for synthetic (seeded random) checkpoints. They let tests and benchmarks
 * compile and run Llama-shaped packages at realistic sizes without downloading weights:
 * speed depends on the shape, not on the weight values.
 */
import { UsageError } from '../../errors.ts';
import { validateConfig, type ModelConfig } from '../config.ts';

const LLAMA_DEFAULTS = {
  architecture: 'llama',
  ropeTheta: 10000,
  normEps: 1e-5,
} as const;

export const SYNTHETIC_PRESETS = {
  /**
   * Small enough for unit tests, but exercises every optional path the compiler has:
   * grouped-query attention (4 heads share 2 kv heads), q/k/v biases and an untied head.
   * hiddenDim 176 is deliberately not a power of two.
   */
  tiny: {
    ...LLAMA_DEFAULTS,
    dim: 64,
    hiddenDim: 176,
    nLayers: 3,
    nHeads: 4,
    nKvHeads: 2,
    headDim: 16,
    vocabSize: 512,
    maxSeqLen: 256,
    qkvBias: true,
    tiedEmbeddings: false,
  },
  /** llama2.c's stories110M shape with the Llama 2 vocabulary size: ~110M parameters. */
  '110m': {
    ...LLAMA_DEFAULTS,
    dim: 768,
    hiddenDim: 2048,
    nLayers: 12,
    nHeads: 12,
    nKvHeads: 12,
    headDim: 64,
    vocabSize: 32000,
    maxSeqLen: 2048,
    qkvBias: false,
    tiedEmbeddings: false,
  },
  /** TinyLlama-1.1B's shape (grouped-query attention, 8 q heads per kv head, untied head). */
  '1b': {
    ...LLAMA_DEFAULTS,
    dim: 2048,
    hiddenDim: 5632,
    nLayers: 22,
    nHeads: 32,
    nKvHeads: 4,
    headDim: 64,
    vocabSize: 32000,
    maxSeqLen: 2048,
    qkvBias: false,
    tiedEmbeddings: false,
  },
} as const satisfies Record<string, ModelConfig>;

export type SyntheticPreset = keyof typeof SYNTHETIC_PRESETS;

export function isSyntheticPreset(name: string): name is SyntheticPreset {
  return Object.hasOwn(SYNTHETIC_PRESETS, name);
}

/** A fresh, validated copy of a preset's config (callers may mutate it). */
export function syntheticConfig(preset: string): ModelConfig {
  if (!isSyntheticPreset(preset)) {
    throw new UsageError(`unknown synthetic preset ${preset} (known: ${Object.keys(SYNTHETIC_PRESETS).join(', ')})`);
  }
  return validateConfig({ ...SYNTHETIC_PRESETS[preset] }, `synthetic:${preset}`);
}
