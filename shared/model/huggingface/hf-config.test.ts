import { describe, expect, it } from 'vitest';
import { ModelConfigError } from '../../errors.ts';
import { parseHuggingFaceConfig } from './hf-config.ts';

const SRC = '/models/x/config.json';

const llama = {
  architectures: ['LlamaForCausalLM'],
  hidden_size: 64,
  intermediate_size: 172,
  num_hidden_layers: 2,
  num_attention_heads: 8,
  vocab_size: 300,
  max_position_embeddings: 256,
  hidden_act: 'silu',
};

function expectConfigError(json: object, pattern: RegExp) {
  try {
    parseHuggingFaceConfig(json, SRC);
  } catch (err) {
    expect(err).toBeInstanceOf(ModelConfigError);
    expect((err as ModelConfigError).source).toBe(SRC);
    expect((err as ModelConfigError).message.startsWith(`${SRC}: `)).toBe(true);
    expect((err as ModelConfigError).shortMessage).toMatch(pattern);
    return;
  }
  throw new Error('expected a ModelConfigError');
}

describe('parseHuggingFaceConfig', () => {
  it('maps a minimal Llama config, applying transformers defaults', () => {
    expect(parseHuggingFaceConfig(llama, SRC)).toEqual({
      architecture: 'llama',
      dim: 64,
      hiddenDim: 172,
      nLayers: 2,
      nHeads: 8,
      nKvHeads: 8,
      headDim: 8,
      vocabSize: 300,
      maxSeqLen: 256,
      ropeTheta: 10000,
      normEps: 1e-6,
      qkvBias: false,
      tiedEmbeddings: false,
    });
  });

  it('reads Llama 3 style fields: GQA, head_dim, rope theta, llama3 rope scaling, tied embeddings', () => {
    const c = parseHuggingFaceConfig(
      {
        ...llama,
        num_key_value_heads: 2,
        head_dim: 16,
        rope_theta: 500000,
        rms_norm_eps: 1e-5,
        tie_word_embeddings: true,
        attention_bias: true,
        rope_scaling: { rope_type: 'llama3', factor: 32, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 },
      },
      SRC,
    );
    expect(c).toMatchObject({ nKvHeads: 2, headDim: 16, ropeTheta: 500000, normEps: 1e-5, tiedEmbeddings: true, qkvBias: true });
    expect(c.ropeScaling).toEqual({ type: 'llama3', factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 });
  });

  it('accepts linear and "default" rope scaling, old `type` key and transformers v5 rope_parameters', () => {
    expect(parseHuggingFaceConfig({ ...llama, rope_scaling: { type: 'linear', factor: 2 } }, SRC).ropeScaling).toEqual({ type: 'linear', factor: 2 });
    expect(parseHuggingFaceConfig({ ...llama, rope_scaling: { rope_type: 'default' } }, SRC).ropeScaling).toBeUndefined();
    const v5 = parseHuggingFaceConfig({ ...llama, rope_parameters: { rope_type: 'linear', rope_theta: 1e6, factor: 4 } }, SRC);
    expect(v5.ropeTheta).toBe(1e6);
    expect(v5.ropeScaling).toEqual({ type: 'linear', factor: 4 });
  });

  it('maps Mistral, with and without a sliding window', () => {
    const base = { ...llama, architectures: ['MistralForCausalLM'], num_key_value_heads: 2 };
    expect(parseHuggingFaceConfig({ ...base, sliding_window: 4096 }, SRC)).toMatchObject({ architecture: 'mistral', slidingWindow: 4096, qkvBias: false });
    expect(parseHuggingFaceConfig({ ...base, sliding_window: null }, SRC).slidingWindow).toBeUndefined();
    expect(parseHuggingFaceConfig({ ...base, head_dim: null }, SRC).headDim).toBe(8);
  });

  it('maps Qwen2: q/k/v bias always, sliding window only when use_sliding_window', () => {
    const base = { ...llama, architectures: ['Qwen2ForCausalLM'], num_key_value_heads: 2, tie_word_embeddings: true, sliding_window: 128, max_window_layers: 2 };
    const c = parseHuggingFaceConfig({ ...base, use_sliding_window: false }, SRC);
    expect(c).toMatchObject({ architecture: 'qwen2', qkvBias: true, tiedEmbeddings: true });
    expect(c.slidingWindow).toBeUndefined();
    // max_window_layers = all layers: transformers gives every layer full attention.
    expect(parseHuggingFaceConfig({ ...base, use_sliding_window: true }, SRC).slidingWindow).toBeUndefined();
    expect(parseHuggingFaceConfig({ ...base, use_sliding_window: true, max_window_layers: 0 }, SRC).slidingWindow).toBe(128);
    expectConfigError({ ...base, use_sliding_window: true, max_window_layers: 1 }, /mixing full-attention layers/);
  });

  it('falls back to model_type when architectures is absent', () => {
    const { architectures: _, ...rest } = llama;
    expect(parseHuggingFaceConfig({ ...rest, model_type: 'qwen2' }, SRC).architecture).toBe('qwen2');
    expectConfigError(rest, /names no architecture \(supported: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM\)/);
  });

  it('rejects what it cannot compile, one line each', () => {
    expectConfigError({ ...llama, architectures: ['GPT2LMHeadModel'] }, /^unknown architecture GPT2LMHeadModel \(supported: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM\)$/);
    expectConfigError({ ...llama, rope_scaling: { rope_type: 'yarn', factor: 4 } }, /unsupported rope_scaling type "yarn" \(supported: llama3, linear\)/);
    expectConfigError({ ...llama, rope_scaling: { type: 'dynamic', factor: 2 } }, /unsupported rope_scaling type "dynamic"/);
    expectConfigError({ ...llama, rope_scaling: { rope_type: 'llama3', factor: 8 } }, /rope_scaling.low_freq_factor must be a positive number/);
    expectConfigError({ ...llama, mlp_bias: true }, /mlp_bias: true is not supported/);
    expectConfigError({ ...llama, hidden_act: 'gelu' }, /unsupported hidden_act "gelu"/);
    expectConfigError({ ...llama, hidden_size: 60 }, /hidden_size 60 is not divisible by num_attention_heads 8 and config.json gives no head_dim/);
    expectConfigError({ ...llama, vocab_size: undefined }, /config.json is missing vocab_size/);
    expectConfigError({ ...llama, num_hidden_layers: 1.5 }, /num_hidden_layers must be a positive integer, got 1.5/);
    expectConfigError({ ...llama, num_key_value_heads: 3 }, /not a multiple of key\/value heads \(3\)/); // from validateConfig
    expectConfigError([], /not a JSON object/);
  });
});
