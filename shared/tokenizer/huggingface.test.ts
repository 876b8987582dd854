import { describe, expect, it } from 'vitest';
import { TokenizerError } from '../errors.ts';
import { tinyByteLevelTokenizerJson } from '../../testkit/huggingface-checkpoint.ts';
import { createHuggingFaceTokenizer } from './huggingface.ts';
import type { Tokenizer } from './tokenizer.ts';

/** A Llama 2 style SentencePiece-BPE tokenizer.json: Metaspace-by-normalizer, byte fallback, leading-space Strip. */
function tinySentencePieceJson(): object {
  const vocab: Record<string, number> = { '<unk>': 0, '<s>': 1, '</s>': 2 };
  for (let b = 0; b < 256; b++) vocab[`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`] = 3 + b;
  const merges = ['▁ h', 'l l', '▁h e', '▁he ll', '▁hell o', '▁ w', 'o r', '▁w or', '▁wor l', '▁worl d'];
  for (const p of ['▁', 'h', 'e', 'l', 'o', 'w', 'r', 'd', ...merges.map((m) => m.replace(' ', ''))]) vocab[p] = Object.keys(vocab).length;
  const special = (id: number, content: string) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  return {
    added_tokens: [special(0, '<unk>'), special(1, '<s>'), special(2, '</s>')],
    normalizer: { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: '▁' }, { type: 'Replace', pattern: { String: ' ' }, content: '▁' }] },
    pre_tokenizer: null,
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [],
      special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
    },
    decoder: {
      type: 'Sequence',
      decoders: [{ type: 'Replace', pattern: { String: '▁' }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' }, { type: 'Strip', content: ' ', start: 1, stop: 0 }],
    },
    model: { type: 'BPE', dropout: null, unk_token: '<unk>', continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: true, byte_fallback: true, ignore_merges: false, vocab, merges },
  };
}

/** Streams ids[1..] through a fresh StreamDecoder, as the pipeline does after a prompt. */
function stream(t: Tokenizer, ids: number[]): string[] {
  const d = t.createStreamDecoder();
  const pieces = ids.slice(1).map((id, i) => d.push(ids[i], id));
  pieces.push(d.flush());
  return pieces;
}

describe('createHuggingFaceTokenizer (byte-level BPE)', () => {
  it('encodes and decodes without BOS when the post-processor adds none (Qwen2 style)', () => {
    const t = createHuggingFaceTokenizer(tinyByteLevelTokenizerJson(), { bos_token: null, eos_token: '<|end_of_text|>' });
    expect(t.vocabSize).toBe(267);
    expect(t.bosId).toBeNull();
    expect(t.eosIds).toEqual([266]);
    const ids = t.encode('hello world');
    expect(ids).toEqual([259, 264]); // "hello", "Ġworld" via the merges
    expect(t.decode(ids)).toBe('hello world');
    expect(t.decode([])).toBe('');
  });

  it('knows its longest piece, added tokens included', () => {
    const json = tinyByteLevelTokenizerJson({ bos: true }) as { model: { vocab: Record<string, number> }; added_tokens: { content: string }[] };
    const t = createHuggingFaceTokenizer(json);
    const pieces = [...Object.keys(json.model.vocab), ...json.added_tokens.map((a) => a.content)];
    expect(t.maxPieceChars).toBe(Math.max(...pieces.map((p) => p.length)));
    expect('hello world'.length).toBeLessThanOrEqual(t.maxPieceChars * t.encode('hello world').length);
  });

  it('adds BOS when the TemplateProcessing post-processor says so (Llama 3 style), and decodes it away', () => {
    const t = createHuggingFaceTokenizer(tinyByteLevelTokenizerJson({ bos: true }));
    expect(t.bosId).toBe(265);
    const ids = t.encode('hello world');
    expect(ids).toEqual([265, 259, 264]);
    expect(t.decode(ids)).toBe('hello world');
  });

  it('streams text pieces, holding back a UTF-8 character split over byte tokens', () => {
    const t = createHuggingFaceTokenizer(tinyByteLevelTokenizerJson({ bos: true }));
    const text = 'hello world, héllo! 猫';
    const ids = t.encode(text);
    const pieces = stream(t, ids);
    expect(pieces.join('')).toBe(text);
    expect(pieces.slice(0, 3)).toEqual(['hello', ' world', ',']);
    expect(pieces).toContain('é');
    expect(pieces).toContain('猫');
    expect(pieces.join('')).not.toContain('\uFFFD');
    // The stateless form agrees wherever a token ends on a character boundary.
    expect(t.decodePiece(ids[1], ids[2])).toBe(' world');
  });

  it('flushes an incomplete character at the end of a stream rather than losing it', () => {
    const t = createHuggingFaceTokenizer(tinyByteLevelTokenizerJson());
    const d = t.createStreamDecoder();
    expect(d.push(259, 0xc3)).toBe(''); // first byte of "é" alone
    expect(d.flush()).toBe('\uFFFD');
    expect(d.flush()).toBe('');
  });

  it('takes extra stop ids (generation_config.json) and AddedToken-shaped config tokens', () => {
    const t = createHuggingFaceTokenizer(tinyByteLevelTokenizerJson(), { eos_token: { content: '<|end_of_text|>', __type: 'AddedToken' } }, { eosIds: [42] });
    expect(t.eosIds.sort((a, b) => a - b)).toEqual([42, 266]);
  });

  it('wraps a tokenizer.json the library cannot load in TokenizerError', () => {
    expect(() => createHuggingFaceTokenizer({ model: { type: 'Nope' } }, undefined, { source: '/x/tokenizer.json' })).toThrow(TokenizerError);
  });
});

describe('createHuggingFaceTokenizer (SentencePiece BPE, Llama 2 style)', () => {
  const config = { tokenizer_class: 'LlamaTokenizer', add_bos_token: true, add_eos_token: false, bos_token: '<s>', eos_token: '</s>', clean_up_tokenization_spaces: false };

  it('encodes with BOS, byte fallback for unknown characters, and decodes back', () => {
    const t = createHuggingFaceTokenizer(tinySentencePieceJson(), config);
    expect(t.bosId).toBe(1);
    expect(t.eosIds).toEqual([2]);
    const ids = t.encode('hello world é');
    expect(ids[0]).toBe(1);
    expect(ids.slice(-2)).toEqual([3 + 0xc3, 3 + 0xa9]);
    expect(t.decode(ids)).toBe('hello world é');
  });

  it('honours add_bos_token / add_eos_token for LlamaTokenizer configs, as transformers does', () => {
    const noBos = createHuggingFaceTokenizer(tinySentencePieceJson(), { ...config, add_bos_token: false, add_eos_token: true });
    const ids = noBos.encode('hello');
    expect(ids[0]).not.toBe(1);
    expect(ids.at(-1)).toBe(2);
  });

  it('streams with the SentencePiece leading space dropped only after BOS', () => {
    const t = createHuggingFaceTokenizer(tinySentencePieceJson(), config);
    const ids = t.encode('hello world é hello');
    const pieces = stream(t, ids);
    expect(pieces[0]).toBe('hello');
    expect(pieces[1]).toBe(' world');
    expect(pieces.join('')).toBe('hello world é hello');
    expect(t.decodePiece(1, ids[1])).toBe('hello');
  });
});
