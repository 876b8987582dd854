/**
 * Tokenizer over a Hugging Face tokenizer.json, using @huggingface/tokenizers (pure JS, so it
 * runs in the browser too). Decisions a reader should know:
 *  - encode: the tokenizer.json post-processor decides BOS/EOS, as PreTrainedTokenizerFast does;
 *    for `LlamaTokenizer(Fast)` configs, transformers rebuilds that post-processor from
 *    `add_bos_token` (default true) / `add_eos_token` (default false), so we apply those flags.
 *  - decoding skips special tokens (BOS, EOS, chat markers): callers print the result.
 *  - streaming: a piece is decode(window + token) minus decode(window), where the window is only
 *    the last emitted token(s); that keeps per-token cost constant and lets decoders that strip a
 *    leading space (SentencePiece Metaspace/Strip) and byte-level BPE produce the right spacing.
 *    A StreamDecoder holds back text while it ends in U+FFFD (a UTF-8 character split across
 *    byte tokens), for at most 4 tokens (the longest UTF-8 sequence).
 */
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { TokenizerError } from '../errors.ts';
import type { StreamDecoder, Tokenizer } from './tokenizer.ts';

export interface HuggingFaceTokenizerOptions {
  /** Extra stop ids, e.g. generation_config.json's eos_token_id (Llama 3 Instruct lists two). */
  eosIds?: number[];
  /** For error messages. */
  source?: string;
}

/** Special tokens that end a turn or a document in common Llama-family vocabularies. */
const KNOWN_EOS = ['</s>', '<|end_of_text|>', '<|eot_id|>', '<|eom_id|>', '<|endoftext|>', '<|im_end|>'];
const KNOWN_BOS = ['<s>', '<|begin_of_text|>'];
const REPLACEMENT_CHAR = '\uFFFD';
const MAX_HELD_TOKENS = 4;

export function createHuggingFaceTokenizer(
  tokenizerJson: object,
  tokenizerConfig?: object,
  options: HuggingFaceTokenizerOptions = {},
): Tokenizer {
  const json = { normalizer: null, pre_tokenizer: null, post_processor: null, decoder: null, added_tokens: [], ...tokenizerJson } as Record<string, unknown>;
  const config = normalizeConfig((tokenizerConfig ?? {}) as Record<string, unknown>);
  let tk: HfTokenizer;
  try {
    tk = new HfTokenizer(json, config);
  } catch (err) {
    throw new TokenizerError(`cannot load tokenizer.json: ${(err as Error).message}`, { source: options.source, cause: err });
  }
  const vocabSize = tk.model?.vocab.length ?? 0;
  const specialIds = new Set([...tk.get_added_tokens_decoder()].filter(([, t]) => t.special).map(([id]) => id));
  const idOf = (token: unknown): number | null => {
    if (typeof token !== 'string') return null;
    return tk.token_to_id(token) ?? null;
  };

  const hasConfigBos = tokenizerConfig !== undefined && 'bos_token' in config;
  const bosId = hasConfigBos ? idOf(config.bos_token) : (templateBos(json.post_processor) ?? firstKnown(KNOWN_BOS, idOf, specialIds));

  const eos = new Set<number>();
  const configEos = idOf(config.eos_token);
  if (configEos !== null) eos.add(configEos);
  for (const id of options.eosIds ?? []) eos.add(id);
  // Chat and base variants of one vocabulary disagree on which marker ends a reply; stop at any.
  for (const name of KNOWN_EOS) {
    const id = idOf(name);
    if (id !== null && specialIds.has(id)) eos.add(id);
  }

  const llamaStyle = typeof config.tokenizer_class === 'string' && /^(Code)?LlamaTokenizer(Fast)?$/.test(config.tokenizer_class);
  const addBos = config.add_bos_token !== false;
  const addEos = config.add_eos_token === true;
  const cleanUp = config.clean_up_tokenization_spaces === true;

  /** Decodes ids the way a reader sees them; ids outside the vocabulary decode to nothing. */
  const text = (ids: number[]): string => {
    const known = ids.filter((id) => Number.isInteger(id) && id >= 0 && tk.id_to_token(id) !== undefined);
    if (known.length === 0) return '';
    return tk.decode(known, { skip_special_tokens: true, clean_up_tokenization_spaces: cleanUp });
  };

  const encode = (input: string): number[] => {
    if (!llamaStyle) return tk.encode(input).ids;
    const ids = tk.encode(input, { add_special_tokens: false }).ids;
    if (addBos && bosId !== null) ids.unshift(bosId);
    if (addEos && configEos !== null) ids.push(configEos);
    return ids;
  };

  const createStreamDecoder = (): StreamDecoder => {
    // `window` holds the tokens of the last emitted piece (the context) followed by held-back ones.
    let window: number[] = [];
    let read = 0;
    const emit = (force: boolean): string => {
      const prefix = text(window.slice(0, read));
      const full = text(window);
      const held = window.length - read;
      if (!force && held < MAX_HELD_TOKENS && (full.length <= prefix.length || full.endsWith(REPLACEMENT_CHAR))) return '';
      window = window.slice(read);
      read = window.length;
      return full.slice(prefix.length);
    };
    return {
      push(prev, token) {
        if (window.length === 0) {
          window = [prev];
          read = 1;
        }
        window.push(token);
        return emit(false);
      },
      flush() {
        return window.length > read ? emit(true) : '';
      },
    };
  };

  // Byte-level pieces spell each byte of their text with one character; Metaspace's '▁' one space.
  let maxPieceChars = 1;
  for (const piece of tk.get_vocab(true).keys()) maxPieceChars = Math.max(maxPieceChars, piece.length);

  return {
    vocabSize,
    bosId,
    eosIds: [...eos],
    maxPieceChars,
    encode,
    decode: text,
    decodePiece(prev, token) {
      // Stateless two-token window: exact except for a character split across byte tokens,
      // which comes out as U+FFFD here; streams should use createStreamDecoder.
      return text([prev, token]).slice(text([prev]).length);
    },
    createStreamDecoder,
  };
}

/** tokenizer_config.json may hold special tokens as AddedToken objects; the library wants strings. */
function normalizeConfig(raw: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...raw };
  for (const key of ['bos_token', 'eos_token', 'unk_token', 'pad_token']) {
    const v = out[key];
    if (typeof v === 'object' && v !== null && typeof (v as { content?: unknown }).content === 'string') {
      out[key] = (v as { content: string }).content;
    }
  }
  return out;
}

/** The special token a TemplateProcessing post-processor puts before a single sequence, if any. */
function templateBos(postProcessor: unknown): number | null {
  const pp = postProcessor as { type?: string; single?: unknown[]; special_tokens?: Record<string, { ids?: number[] }>; processors?: unknown[] } | null;
  if (!pp) return null;
  if (pp.type === 'Sequence') {
    for (const p of pp.processors ?? []) {
      const id = templateBos(p);
      if (id !== null) return id;
    }
    return null;
  }
  if (pp.type !== 'TemplateProcessing' || !Array.isArray(pp.single)) return null;
  const first = pp.single[0] as { SpecialToken?: { id: string } } | undefined;
  const name = first?.SpecialToken?.id;
  if (name === undefined) return null;
  return pp.special_tokens?.[name]?.ids?.[0] ?? null;
}

function firstKnown(names: string[], idOf: (t: string) => number | null, special: Set<number>): number | null {
  for (const n of names) {
    const id = idOf(n);
    if (id !== null && special.has(id)) return id;
  }
  return null;
}
