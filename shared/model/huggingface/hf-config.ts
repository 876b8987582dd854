/**
 * Translates a Hugging Face config.json (Llama, Mistral, Qwen2) into ModelConfig. Anything that
 * would change the math in a way the compiler does not implement (YaRN rope, MLP bias, another
 * activation) is refused here with a one-line reason, rather than compiled into a wrong model.
 * Defaults for absent fields are those of the transformers config classes, since those are what
 * the checkpoint was trained and evaluated with.
 */
import { ModelConfigError } from '../../errors.ts';
import { validateConfig, type Architecture, type ModelConfig, type RopeScaling } from '../config.ts';

const ARCHITECTURES: Record<string, Architecture> = {
  LlamaForCausalLM: 'llama',
  MistralForCausalLM: 'mistral',
  Qwen2ForCausalLM: 'qwen2',
};

/** model_type values, for configs saved without an `architectures` list. */
const MODEL_TYPES: Record<string, Architecture> = { llama: 'llama', mistral: 'mistral', qwen2: 'qwen2' };

export function parseHuggingFaceConfig(json: unknown, source: string): ModelConfig {
  const fail = (msg: string): never => {
    throw new ModelConfigError(msg, { source });
  };
  if (typeof json !== 'object' || json === null || Array.isArray(json)) fail('config.json is not a JSON object');
  const c = json as Record<string, unknown>;

  const architecture = pickArchitecture(c, fail);

  const int = (key: string, fallback?: number): number => {
    const v = c[key] ?? fallback;
    if (v === undefined) fail(`config.json is missing ${key}`);
    if (!Number.isInteger(v) || (v as number) <= 0) fail(`${key} must be a positive integer, got ${JSON.stringify(v)}`);
    return v as number;
  };
  const num = (key: string, fallback: number): number => {
    const v = c[key] ?? fallback;
    if (typeof v !== 'number' || !Number.isFinite(v)) fail(`${key} must be a number, got ${JSON.stringify(v)}`);
    return v as number;
  };

  const hiddenAct = c.hidden_act ?? 'silu';
  // transformers maps both names to the same SiLU function.
  if (hiddenAct !== 'silu' && hiddenAct !== 'swish') {
    fail(`unsupported hidden_act ${JSON.stringify(hiddenAct)} (infermesh implements SwiGLU with silu only)`);
  }
  if (c.mlp_bias === true) fail('mlp_bias: true is not supported (the MLP projections must have no bias)');

  const dim = int('hidden_size');
  const nHeads = int('num_attention_heads');
  const nKvHeads = int('num_key_value_heads', nHeads);
  let headDim: number;
  if (c.head_dim !== undefined && c.head_dim !== null) {
    headDim = int('head_dim');
  } else {
    if (dim % nHeads !== 0) {
      fail(`hidden_size ${dim} is not divisible by num_attention_heads ${nHeads} and config.json gives no head_dim`);
    }
    headDim = dim / nHeads;
  }

  // transformers v5 moves rope settings into `rope_parameters`; older configs use rope_theta / rope_scaling.
  const ropeParams = isObject(c.rope_parameters) ? c.rope_parameters : undefined;
  const ropeTheta =
    ropeParams && ropeParams.rope_theta !== undefined
      ? numberField(ropeParams, 'rope_parameters.rope_theta', fail)
      : num('rope_theta', 10000);
  const ropeScaling = parseRopeScaling(ropeParams ?? c.rope_scaling, fail);

  const config: ModelConfig = {
    architecture,
    dim,
    hiddenDim: int('intermediate_size'),
    nLayers: int('num_hidden_layers'),
    nHeads,
    nKvHeads,
    headDim,
    vocabSize: int('vocab_size'),
    maxSeqLen: int('max_position_embeddings'),
    ropeTheta,
    normEps: num('rms_norm_eps', 1e-6),
    qkvBias: qkvBias(architecture, c),
    tiedEmbeddings: c.tie_word_embeddings === true,
  };
  if (ropeScaling) config.ropeScaling = ropeScaling;
  const window = slidingWindow(architecture, c, config.nLayers, fail);
  if (window !== undefined) config.slidingWindow = window;
  return validateConfig(config, source);
}

function pickArchitecture(c: Record<string, unknown>, fail: (msg: string) => never): Architecture {
  const supported = Object.keys(ARCHITECTURES).join(', ');
  if (Array.isArray(c.architectures) && c.architectures.length > 0) {
    const name = String(c.architectures[0]);
    if (Object.hasOwn(ARCHITECTURES, name)) return ARCHITECTURES[name];
    return fail(`unknown architecture ${name} (supported: ${supported})`);
  }
  if (typeof c.model_type === 'string' && Object.hasOwn(MODEL_TYPES, c.model_type)) return MODEL_TYPES[c.model_type];
  return fail(`config.json names no architecture (supported: ${supported})`);
}

function qkvBias(arch: Architecture, c: Record<string, unknown>): boolean {
  if (arch === 'qwen2') return true; // Qwen2 always has q/k/v bias and no o_proj bias
  if (arch === 'llama') return c.attention_bias === true;
  return false;
}

function slidingWindow(
  arch: Architecture,
  c: Record<string, unknown>,
  nLayers: number,
  fail: (msg: string) => never,
): number | undefined {
  const w = c.sliding_window;
  if (arch === 'mistral') {
    if (w === null || w === undefined) return undefined;
    if (!Number.isInteger(w)) fail(`sliding_window must be an integer or null, got ${JSON.stringify(w)}`);
    return w as number;
  }
  if (arch === 'qwen2' && c.use_sliding_window === true) {
    if (!Number.isInteger(w)) fail(`use_sliding_window is true but sliding_window is ${JSON.stringify(w)}`);
    // transformers' Qwen2 slides only in layers >= max_window_layers; one window for all layers is all we express.
    const fullLayers = typeof c.max_window_layers === 'number' ? c.max_window_layers : 0;
    if (fullLayers >= nLayers) return undefined;
    if (fullLayers > 0) {
      fail(`mixing full-attention layers (max_window_layers ${fullLayers}) with sliding-window layers is not supported`);
    }
    return w as number;
  }
  return undefined;
}

function parseRopeScaling(raw: unknown, fail: (msg: string) => never): RopeScaling | undefined {
  if (raw === null || raw === undefined) return undefined;
  if (!isObject(raw)) return fail(`rope_scaling must be an object or null, got ${JSON.stringify(raw)}`);
  const type = raw.rope_type ?? raw.type;
  if (type === undefined || type === 'default') return undefined;
  if (type === 'linear') return { type: 'linear', factor: numberField(raw, 'rope_scaling.factor', fail) };
  if (type === 'llama3') {
    return {
      type: 'llama3',
      factor: numberField(raw, 'rope_scaling.factor', fail),
      lowFreqFactor: numberField(raw, 'rope_scaling.low_freq_factor', fail),
      highFreqFactor: numberField(raw, 'rope_scaling.high_freq_factor', fail),
      originalMaxPositionEmbeddings: numberField(raw, 'rope_scaling.original_max_position_embeddings', fail),
    };
  }
  return fail(`unsupported rope_scaling type ${JSON.stringify(type)} (supported: llama3, linear)`);
}

function numberField(obj: Record<string, unknown>, path: string, fail: (msg: string) => never): number {
  const v = obj[path.slice(path.indexOf('.') + 1)];
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) fail(`${path} must be a positive number, got ${JSON.stringify(v)}`);
  return v as number;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
