/**
 * Test support: hand-builds Hugging Face checkpoint directories (config.json, safetensors
 * weights, tokenizer.json) so reader and compiler tests need no download. Everything but
 * writeHuggingFaceCheckpoint is isomorphic; that one writes to disk, which is why this file
 * (unlike the rest of shared/) imports node:fs. Not imported by production code.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expectedTensors } from '../shared/model/checkpoint.ts';
import type { ModelConfig } from '../shared/model/config.ts';
import { encodeSafetensors, type WritableDtype, type WritableTensor } from './safetensors-writer.ts';
import { canonicalToHf } from '../shared/model/huggingface/tensor-names.ts';

export { encodeSafetensors, encodeSafetensorsRaw, type WritableDtype, type WritableTensor } from './safetensors-writer.ts';

/** Qwen2-shaped and tiny: GQA (4 heads over 2 kv heads), q/k/v bias, tied embeddings; tests change what they check. */
export const TINY_QWEN2: ModelConfig = {
  architecture: 'qwen2',
  dim: 16,
  hiddenDim: 24,
  nLayers: 2,
  nHeads: 4,
  nKvHeads: 2,
  headDim: 4,
  vocabSize: 267,
  maxSeqLen: 64,
  ropeTheta: 1_000_000,
  normEps: 1e-6,
  qkvBias: true,
  tiedEmbeddings: true,
};

export interface WriteCheckpointOptions {
  /** Split the weights over this many shards with a model.safetensors.index.json (default 1: one model.safetensors). */
  shards?: number;
  /** tokenizer_config.json contents; omitted = no file. */
  tokenizerConfig?: object;
}

const HF_ARCHITECTURES = { llama: 'LlamaForCausalLM', mistral: 'MistralForCausalLM', qwen2: 'Qwen2ForCausalLM' } as const;

/** The config.json transformers would save for `c` (inverse of parseHuggingFaceConfig). */
export function toHfConfigJson(c: ModelConfig): Record<string, unknown> {
  const json: Record<string, unknown> = {
    architectures: [HF_ARCHITECTURES[c.architecture]],
    model_type: c.architecture,
    hidden_size: c.dim,
    intermediate_size: c.hiddenDim,
    num_hidden_layers: c.nLayers,
    num_attention_heads: c.nHeads,
    num_key_value_heads: c.nKvHeads,
    head_dim: c.headDim,
    vocab_size: c.vocabSize,
    max_position_embeddings: c.maxSeqLen,
    rope_theta: c.ropeTheta,
    rms_norm_eps: c.normEps,
    tie_word_embeddings: c.tiedEmbeddings,
    hidden_act: 'silu',
    torch_dtype: 'float32',
  };
  if (c.architecture === 'llama') json.attention_bias = c.qkvBias;
  if (c.architecture === 'mistral') json.sliding_window = c.slidingWindow ?? null;
  if (c.architecture === 'qwen2') {
    json.use_sliding_window = c.slidingWindow !== undefined;
    json.sliding_window = c.slidingWindow ?? 4096;
    json.max_window_layers = 0;
  }
  if (c.ropeScaling?.type === 'linear') json.rope_scaling = { rope_type: 'linear', factor: c.ropeScaling.factor };
  if (c.ropeScaling?.type === 'llama3') {
    json.rope_scaling = {
      rope_type: 'llama3',
      factor: c.ropeScaling.factor,
      low_freq_factor: c.ropeScaling.lowFreqFactor,
      high_freq_factor: c.ropeScaling.highFreqFactor,
      original_max_position_embeddings: c.ropeScaling.originalMaxPositionEmbeddings,
    };
  }
  return json;
}

/**
 * Deterministic small-valued weights for every tensor `c` needs, under HF names, so a test can
 * compare what a reader returns with what was written. Norm weights sit near 1 like real ones.
 */
export function makeHfTensors(c: ModelConfig, options: { dtype?: WritableDtype; seed?: number } = {}): Record<string, WritableTensor> {
  let state = (options.seed ?? 1) >>> 0 || 1;
  const next = () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return ((state >>> 0) / 2 ** 32) * 2 - 1;
  };
  const out: Record<string, WritableTensor> = {};
  for (const t of expectedTensors(c)) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    const isNorm = t.name.endsWith('norm');
    const data = Float32Array.from({ length: n }, () => (isNorm ? 1 + 0.1 * next() : 0.2 * next()));
    out[canonicalToHf(t.name)] = { dtype: options.dtype ?? 'F32', shape: t.shape, data };
  }
  return out;
}

/**
 * The files of a checkpoint directory, by file name, as bytes (isomorphic: usable with an
 * in-memory FileOpener). `config` is either a ModelConfig (converted with toHfConfigJson) or a raw
 * config.json object (to test odd configs). Tensors are written as given, so tests can leave one
 * out or give it a wrong shape.
 */
export function huggingFaceCheckpointFiles(
  config: ModelConfig | Record<string, unknown>,
  tensorsByHfName: Record<string, WritableTensor>,
  tokenizerJson: object = tinyByteLevelTokenizerJson(),
  options: WriteCheckpointOptions = {},
): Record<string, Uint8Array> {
  const text = (v: unknown) => new TextEncoder().encode(JSON.stringify(v, null, 2));
  const configJson = 'dim' in config && 'architecture' in config ? toHfConfigJson(config as ModelConfig) : config;
  const files: Record<string, Uint8Array> = { 'config.json': text(configJson), 'tokenizer.json': text(tokenizerJson) };
  if (options.tokenizerConfig) files['tokenizer_config.json'] = text(options.tokenizerConfig);

  const names = Object.keys(tensorsByHfName);
  const shards = Math.max(1, Math.min(options.shards ?? 1, names.length));
  if (shards === 1) {
    files['model.safetensors'] = encodeSafetensors(tensorsByHfName, { format: 'pt' });
    return files;
  }
  const weightMap: Record<string, string> = {};
  const per = Math.ceil(names.length / shards);
  for (let s = 0; s < shards; s++) {
    const file = `model-${String(s + 1).padStart(5, '0')}-of-${String(shards).padStart(5, '0')}.safetensors`;
    const part: Record<string, WritableTensor> = {};
    for (const name of names.slice(s * per, (s + 1) * per)) {
      part[name] = tensorsByHfName[name];
      weightMap[name] = file;
    }
    files[file] = encodeSafetensors(part, { format: 'pt' });
  }
  files['model.safetensors.index.json'] = text({ metadata: {}, weight_map: weightMap });
  return files;
}

/** Writes huggingFaceCheckpointFiles(...) into `dir` (created if needed). Node only. */
export function writeHuggingFaceCheckpoint(
  dir: string,
  config: ModelConfig | Record<string, unknown>,
  tensorsByHfName: Record<string, WritableTensor>,
  tokenizerJson: object = tinyByteLevelTokenizerJson(),
  options: WriteCheckpointOptions = {},
): void {
  mkdirSync(dir, { recursive: true });
  for (const [name, bytes] of Object.entries(huggingFaceCheckpointFiles(config, tensorsByHfName, tokenizerJson, options))) {
    writeFileSync(join(dir, name), bytes);
  }
}

/** GPT-2's byte -> printable character map, which byte-level BPE vocabularies are written in. */
export function bytesToUnicode(): string[] {
  const printable: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) printable.push(b);
  for (let b = 0xa1; b <= 0xac; b++) printable.push(b);
  for (let b = 0xae; b <= 0xff; b++) printable.push(b);
  const map: string[] = new Array(256);
  let extra = 0;
  for (let b = 0; b < 256; b++) map[b] = String.fromCodePoint(printable.includes(b) ? b : 256 + extra++);
  return map;
}

/**
 * A tiny byte-level BPE tokenizer.json (the Llama 3 / Qwen2 kind): ids 0..255 are the bytes,
 * then a few merges spelling "hello" and " world", then the specials. With `bos` (Llama 3 style)
 * the post-processor prepends <|begin_of_text|>; without it (Qwen2 style) nothing is added.
 * Any text encodes, so it also serves end-to-end tests; 267 ids in all.
 */
export function tinyByteLevelTokenizerJson(options: { bos?: boolean } = {}): object {
  const chars = bytesToUnicode();
  const vocab: Record<string, number> = {};
  chars.forEach((ch, b) => (vocab[ch] = b));
  const merges = ['h e', 'l l', 'he ll', 'hell o', 'Ġ w', 'o r', 'Ġw or', 'l d', 'Ġwor ld'];
  for (const m of merges) vocab[m.replace(' ', '')] = Object.keys(vocab).length;
  const bosId = Object.keys(vocab).length;
  const specials = [
    { id: bosId, content: '<|begin_of_text|>' },
    { id: bosId + 1, content: '<|end_of_text|>' },
  ];
  const addedTokens = specials.map((s) => ({ ...s, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }));
  const postProcessor = options.bos
    ? {
        type: 'TemplateProcessing',
        single: [{ SpecialToken: { id: '<|begin_of_text|>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
        pair: [
          { SpecialToken: { id: '<|begin_of_text|>', type_id: 0 } },
          { Sequence: { id: 'A', type_id: 0 } },
          { SpecialToken: { id: '<|begin_of_text|>', type_id: 1 } },
          { Sequence: { id: 'B', type_id: 1 } },
        ],
        special_tokens: { '<|begin_of_text|>': { id: '<|begin_of_text|>', ids: [bosId], tokens: ['<|begin_of_text|>'] } },
      }
    : { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false };
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: addedTokens,
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: postProcessor,
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges,
    },
  };
}
