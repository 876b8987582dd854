/**
 * Synthetic checkpoints: Llama-shaped models with seeded random weights, generated tensor by
 * tensor on read, for tests and benchmarks at realistic sizes without any download.
 *
 * The initialisation keeps a deep random model numerically tame, so compiled shards can be
 * checked against the reference forward pass at every layer and sampling is not degenerate:
 * - embeddings ~ N(0, 1): the residual stream starts at RMS 1;
 * - norm weights 1 + N(0, 0.1²): close to identity, but a norm weight that is dropped or applied
 *   to the wrong channel still shows up in the outputs;
 * - input projections (wq, wk, wv, w1, w3) ~ N(0, 1/fan_in): normalised inputs give O(1) outputs,
 *   so attention scores and SiLU gates stay in their interesting range;
 * - output projections (wo, w2) ~ N(0, 1/(fan_in · 2·nLayers)), GPT-2 style: the 2·nLayers residual
 *   additions then add O(1) variance in total, so the hidden state neither explodes nor is
 *   swamped by the embedding;
 * - q/k/v biases ~ N(0, 0.1²): small, yet large enough that a missing bias fails a comparison;
 * - the untied LM head ~ N(0, 4/dim): logits have std ≈ 2 after the final norm, a peaked but far
 *   from one-hot distribution (greedy decoding is stable, sampling still varies). A tied head
 *   reuses the N(0, 1) embedding, giving larger logits; no preset ties.
 */
import { CheckpointFormatError, UsageError } from '../../errors.ts';
import {
  EMBED_TENSOR,
  FINAL_NORM_TENSOR,
  LM_HEAD_TENSOR,
  expectedTensors,
  type Checkpoint,
  type TensorInfo,
} from '../checkpoint.ts';
import type { ModelConfig } from '../config.ts';
import { exactSqrt, fillNormal } from './random.ts';
import { syntheticConfig } from './presets.ts';
import { syntheticTokenizer } from './tokenizer.ts';

/** mean + std·z for one tensor; z approximately standard normal (see random.ts). */
export interface WeightInit {
  mean: number;
  std: number;
}

const NORM_NOISE = 0.1;
const BIAS_STD = 0.1;
const HEAD_LOGIT_STD = 2;

/** How the tensor `name` (with its canonical `shape`) is initialised for `config`. */
export function syntheticWeightInit(config: ModelConfig, name: string, shape: readonly number[]): WeightInit {
  if (name === EMBED_TENSOR) return { mean: 0, std: 1 };
  if (name === LM_HEAD_TENSOR) return { mean: 0, std: HEAD_LOGIT_STD / exactSqrt(config.dim) };
  if (name === FINAL_NORM_TENSOR || name.endsWith('_norm')) return { mean: 1, std: NORM_NOISE };
  const kind = name.slice(name.lastIndexOf('.') + 1);
  if (kind === 'bq' || kind === 'bk' || kind === 'bv') return { mean: 0, std: BIAS_STD };
  const fanIn = shape[shape.length - 1];
  if (kind === 'wo' || kind === 'w2') return { mean: 0, std: 1 / exactSqrt(fanIn * 2 * config.nLayers) };
  return { mean: 0, std: 1 / exactSqrt(fanIn) };
}

function checkSeed(seed: number): void {
  if (!Number.isSafeInteger(seed)) throw new UsageError(`synthetic seed must be an integer, got ${seed}`);
}

/** One canonical tensor of the synthetic model (config, seed), generated synchronously. */
export function syntheticTensor(config: ModelConfig, seed: number, name: string, source = 'synthetic'): Float32Array {
  checkSeed(seed);
  const info = expectedTensors(config).find((t) => t.name === name);
  if (!info) throw new CheckpointFormatError(`no tensor named ${name}`, { source });
  return generate(config, seed, info);
}

function generate(config: ModelConfig, seed: number, { name, shape }: TensorInfo): Float32Array {
  const size = shape.reduce((a, b) => a * b, 1);
  const { mean, std } = syntheticWeightInit(config, name, shape);
  return fillNormal(new Float32Array(size), seed, name, std, mean);
}

/**
 * A checkpoint with seeded random weights of any config; `source` names it in errors and the
 * manifest. Nothing is held in memory between reads: each read generates a fresh tensor.
 */
export function createSyntheticCheckpointFromConfig(config: ModelConfig, seed: number, source: string): Checkpoint {
  checkSeed(seed);
  const infos = expectedTensors(config);
  const byName = new Map(infos.map((t) => [t.name, t]));
  let tokenizer: ReturnType<typeof syntheticTokenizer> | undefined;
  return {
    source,
    config,
    // Built on first use: 32k pieces take tens of milliseconds that a caller reading only
    // tensors need not pay.
    get tokenizer() {
      tokenizer ??= syntheticTokenizer(config.vocabSize);
      return tokenizer;
    },
    tensors: () => infos.map((t) => ({ name: t.name, shape: [...t.shape] })),
    async read(name: string): Promise<Float32Array> {
      const info = byName.get(name);
      if (!info) throw new CheckpointFormatError(`no tensor named ${name}`, { source });
      return generate(config, seed, info);
    },
  };
}

/** A synthetic checkpoint of a named preset (tiny, 110m, 1b); source `synthetic:<preset>`. */
export function createSyntheticCheckpoint(preset: string, seed: number): Checkpoint {
  return createSyntheticCheckpointFromConfig(syntheticConfig(preset), seed, `synthetic:${preset}`);
}
