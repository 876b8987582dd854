/**
 * Hugging Face Llama-family tensor names <-> infermesh canonical names (see checkpoint.ts).
 * HF already stores q/k rows in the rotate-half rotary layout, so names are all that change.
 */
import { EMBED_TENSOR, FINAL_NORM_TENSOR, LM_HEAD_TENSOR } from '../checkpoint.ts';

/** Per-layer HF suffix -> canonical per-layer suffix. */
const LAYER_SUFFIXES: Record<string, string> = {
  'input_layernorm.weight': 'attn_norm',
  'self_attn.q_proj.weight': 'wq',
  'self_attn.k_proj.weight': 'wk',
  'self_attn.v_proj.weight': 'wv',
  'self_attn.o_proj.weight': 'wo',
  'self_attn.q_proj.bias': 'bq',
  'self_attn.k_proj.bias': 'bk',
  'self_attn.v_proj.bias': 'bv',
  'post_attention_layernorm.weight': 'ffn_norm',
  'mlp.gate_proj.weight': 'w1',
  'mlp.down_proj.weight': 'w2',
  'mlp.up_proj.weight': 'w3',
};

const GLOBAL_NAMES: Record<string, string> = {
  'model.embed_tokens.weight': EMBED_TENSOR,
  'model.norm.weight': FINAL_NORM_TENSOR,
  'lm_head.weight': LM_HEAD_TENSOR,
};

/**
 * Biases the canonical set has no place for. Ignoring them would silently compile a different
 * model, so the reader refuses checkpoints that carry them.
 */
const UNSUPPORTED_LAYER_SUFFIXES = ['self_attn.o_proj.bias', 'mlp.gate_proj.bias', 'mlp.up_proj.bias', 'mlp.down_proj.bias'];

const LAYER_RE = /^model\.layers\.(\d+)\.(.+)$/;

/** Canonical name of an HF tensor, or null for tensors the reader ignores (rotary_emb.inv_freq, ...). */
export function hfToCanonical(hfName: string): string | null {
  if (Object.hasOwn(GLOBAL_NAMES, hfName)) return GLOBAL_NAMES[hfName];
  const m = LAYER_RE.exec(hfName);
  if (m && Object.hasOwn(LAYER_SUFFIXES, m[2])) return `layers.${Number(m[1])}.${LAYER_SUFFIXES[m[2]]}`;
  return null;
}

/** HF name of a canonical tensor (inverse of hfToCanonical), for error messages. */
export function canonicalToHf(name: string): string {
  for (const [hf, canonical] of Object.entries(GLOBAL_NAMES)) if (canonical === name) return hf;
  const m = /^layers\.(\d+)\.(.+)$/.exec(name);
  if (m) {
    for (const [suffix, canonical] of Object.entries(LAYER_SUFFIXES)) {
      if (canonical === m[2]) return `model.layers.${m[1]}.${suffix}`;
    }
  }
  return name;
}

/** True for an HF tensor whose presence means a model infermesh cannot represent. */
export function isUnsupportedHfTensor(hfName: string): boolean {
  const m = LAYER_RE.exec(hfName);
  return m !== null && UNSUPPORTED_LAYER_SUFFIXES.includes(m[2]);
}
