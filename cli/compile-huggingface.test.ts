/**
 * Hugging Face checkpoints end to end: a hand-built checkpoint directory is compiled to an f32
 * package, run through a two-stage local pipeline, and its logits are checked against the
 * reference forward pass over the very weights the reader returns (so BF16 rounding is shared).
 */
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { expectedTensors } from '../shared/model/checkpoint.ts';
import type { ModelConfig } from '../shared/model/config.ts';
import { openHuggingFaceCheckpoint } from '../shared/model/huggingface/hf-checkpoint.ts';
import { makeHfTensors, tinyByteLevelTokenizerJson, writeHuggingFaceCheckpoint, type WritableDtype } from '../testkit/huggingface-checkpoint.ts';
import { createReferenceModel, type Weights } from '../testkit/reference/forward.ts';
import { createHuggingFaceTokenizer } from '../shared/tokenizer/huggingface.ts';
import { openLocalPipeline } from '../worker/node/local-package.ts';
import { nodeFileOpener } from '../worker/node/node-files.ts';
import { compileTo, removeTempDirs, tempDir } from '../testkit/model-fixtures.ts';

afterAll(removeTempDirs);

const TOLERANCE = 1e-4;

/** Qwen2 with GQA (4 query heads over 2 kv heads), q/k/v bias and an untied LM head. */
const qwen2: ModelConfig = {
  architecture: 'qwen2',
  dim: 64,
  hiddenDim: 96,
  nLayers: 2,
  nHeads: 4,
  nKvHeads: 2,
  headDim: 16,
  vocabSize: 267, // tinyByteLevelTokenizerJson's vocabulary
  maxSeqLen: 64,
  ropeTheta: 1_000_000,
  normEps: 1e-6,
  qkvBias: true,
  tiedEmbeddings: false,
};

/** Llama 3 style rope scaling with a short original context, so the scaled frequencies are hit. */
const llama3Scaled: ModelConfig = {
  ...qwen2,
  architecture: 'llama',
  ropeTheta: 10000,
  qkvBias: false,
  tiedEmbeddings: true,
  ropeScaling: { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 16 },
};

const mistralWindowed: ModelConfig = { ...qwen2, architecture: 'mistral', ropeTheta: 10000, qkvBias: false, slidingWindow: 4 };

const PROMPT_6 = [104, 261, 264, 33, 7, 200];
const PROMPT_8 = [104, 261, 264, 33, 7, 200, 31, 150];

interface Built {
  dir: string;
  weights: Weights;
}

/** Writes the checkpoint, compiles it to f32, and reads its weights back as the reader sees them. */
async function buildPackage(config: ModelConfig, options: { dtype?: WritableDtype; shards?: number; seed?: number } = {}): Promise<Built> {
  const ckptDir = join(await tempDir('infermesh-hf-'), 'model');
  writeHuggingFaceCheckpoint(ckptDir, config, makeHfTensors(config, { dtype: options.dtype, seed: options.seed ?? 7 }), undefined, { shards: options.shards });
  const checkpoint = await openHuggingFaceCheckpoint(ckptDir, nodeFileOpener);
  try {
    expect(checkpoint.config).toEqual(config);
    const { dir } = await compileTo(checkpoint, 'f32');
    const tensors = new Map<string, Float32Array>();
    for (const { name } of expectedTensors(config)) tensors.set(name, await checkpoint.read(name));
    return { dir, weights: (name) => tensors.get(name)! };
  } finally {
    await checkpoint.close?.();
  }
}

function lastRow(logits: Float32Array, vocab: number): Float32Array {
  return logits.subarray(logits.length - vocab);
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

function spread(a: ArrayLike<number>): number {
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < a.length; i++) {
    lo = Math.min(lo, a[i]);
    hi = Math.max(hi, a[i]);
  }
  return hi - lo;
}

/**
 * Prefill `prompt` at position 0, then decode one token at position prompt.length, through the
 * package and through the reference; returns the max abs logit errors of both steps.
 */
async function compareWithReference(built: Built, config: ModelConfig, prompt: number[], decodeToken = 42): Promise<{ prefill: number; decode: number }> {
  const { pipeline, release } = await openLocalPipeline(built.dir, { stages: 2 });
  try {
    const reference = createReferenceModel(config, built.weights);
    const positions = prompt.map((_, i) => i);
    const want = lastRow(reference.forward(prompt, positions), config.vocabSize);
    const got = await pipeline.step('r1', prompt, 0, 0);
    // The logits must carry signal, or a 1e-4 bound would say nothing.
    expect(spread(want)).toBeGreaterThan(0.5);
    const prefill = maxAbsDiff(got, want);

    const wantNext = reference.forward([decodeToken], [prompt.length]);
    const gotNext = await pipeline.step('r1', [decodeToken], prompt.length, 1);
    const decode = maxAbsDiff(gotNext, wantNext);
    pipeline.end('r1');
    return { prefill, decode };
  } finally {
    await release();
  }
}

describe('compiled Hugging Face checkpoints match the reference forward pass', () => {
  it('Qwen2 with GQA and q/k/v bias in F32: prefill and decode logits within 1e-4', async () => {
    const built = await buildPackage(qwen2);
    const err = await compareWithReference(built, qwen2, PROMPT_6);
    expect(err.prefill).toBeLessThan(TOLERANCE);
    expect(err.decode).toBeLessThan(TOLERANCE);
  });

  it('Qwen2 sharded in BF16: matches the reference over the bf16-rounded weights within 1e-4', async () => {
    const built = await buildPackage(qwen2, { dtype: 'BF16', shards: 3 });
    // The weights really are rounded: not what the same seed gives in F32.
    const f32 = makeHfTensors(qwen2, { seed: 7 })['model.layers.0.self_attn.q_proj.weight'];
    const bf16 = built.weights('layers.0.wq');
    expect(maxAbsDiff(bf16, 'data' in f32 ? Float32Array.from(f32.data) : [])).toBeGreaterThan(1e-4);
    const err = await compareWithReference(built, qwen2, PROMPT_6);
    expect(err.prefill).toBeLessThan(TOLERANCE);
    expect(err.decode).toBeLessThan(TOLERANCE);
  });

  // Each option changes the answer at this length, so matching the reference with it means it was applied.
  it.each([
    { model: 'Llama with llama3 rope_scaling', config: llama3Scaled, option: 'ropeScaling' },
    { model: 'Mistral with sliding_window 4 over an 8-token prompt', config: mistralWindowed, option: 'slidingWindow' },
  ] as const)('$model: prefill and decode logits within 1e-4', async ({ config, option }) => {
    const built = await buildPackage(config);
    const { [option]: _, ...without } = config;
    const logits = (c: ModelConfig) => lastRow(createReferenceModel(c, built.weights).forward(PROMPT_8, PROMPT_8.map((_, i) => i)), 267);
    expect(maxAbsDiff(logits(config), logits(without))).toBeGreaterThan(1e-2);
    const err = await compareWithReference(built, config, PROMPT_8);
    expect(err.prefill).toBeLessThan(TOLERANCE);
    expect(err.decode).toBeLessThan(TOLERANCE);
  });
});

describe('generating from a compiled Hugging Face package', () => {
  it('greedy generation yields the reference argmax tokens, streamed as their tokenizer.json decoding', async () => {
    const built = await buildPackage(qwen2);
    const tokenizer = createHuggingFaceTokenizer(tinyByteLevelTokenizerJson());
    const prompt = 'hello world';
    const promptIds = tokenizer.encode(prompt);
    expect(promptIds.length).toBeGreaterThan(0);

    // Greedy continuation by the reference, stopping at the tokenizer's EOS like the pipeline.
    const reference = createReferenceModel(qwen2, built.weights);
    const argmax = (row: Float32Array) => row.reduce((best, v, i) => (v > row[best] ? i : best), 0);
    const expected: number[] = [];
    let row = lastRow(reference.forward(promptIds, promptIds.map((_, i) => i)), qwen2.vocabSize);
    for (let n = 0; n < 8; n++) {
      const next = argmax(row);
      if (tokenizer.eosIds.includes(next)) break;
      expected.push(next);
      row = reference.forward([next], [promptIds.length + n]);
    }

    const { pipeline, release } = await openLocalPipeline(built.dir, { stages: 2 });
    try {
      const ids: number[] = [];
      let text = '';
      for await (const t of pipeline.generate(prompt, { maxTokens: 8, temperature: 0, topP: 1, seed: 0 })) {
        if (t.id !== null) ids.push(t.id);
        text += t.text;
      }
      expect(ids).toEqual(expected);
      expect(ids.length).toBeGreaterThan(0);
      expect(text).toBe(tokenizer.decode(ids));
    } finally {
      await release();
    }
  });
});
