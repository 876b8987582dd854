/**
 * The synthetic tokenizer parsed back from its bytes the way llama2.c reads tokenizer.bin, and
 * driven through a minimal copy of llama2.c's BPE encode/decode, so a synthetic package can
 * round-trip prompts with the real llama2.c tokenizer code path.
 */
import { describe, expect, it } from 'vitest';
import { MIN_SYNTHETIC_VOCAB, syntheticTokenizer, syntheticTokenizerBytes } from './tokenizer.ts';

interface Parsed {
  maxTokenLength: number;
  pieces: Uint8Array[];
  scores: number[];
}

function parse(bytes: Uint8Array, vocabSize: number): Parsed {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const maxTokenLength = view.getInt32(0, true);
  const pieces: Uint8Array[] = [];
  const scores: number[] = [];
  let off = 4;
  for (let i = 0; i < vocabSize; i++) {
    scores.push(view.getFloat32(off, true));
    const len = view.getInt32(off + 4, true);
    if (!(len > 0 && len <= maxTokenLength)) throw new Error(`token ${i} has length ${len} (max ${maxTokenLength})`);
    pieces.push(bytes.subarray(off + 8, off + 8 + len));
    off += 8 + len;
  }
  expect(off).toBe(bytes.length);
  return { maxTokenLength, pieces, scores };
}

const dec = new TextDecoder();
const enc = new TextEncoder();

/** llama2.c's encode(): BOS, dummy " ", code points or byte fallback, then best-score pair merges. */
function encode(text: string, pieces: string[], scores: number[]): number[] {
  const lookup = new Map(pieces.map((p, i) => [p, i]));
  const tokens = [1];
  if (text.length > 0) tokens.push(lookup.get(' ')!);
  for (const ch of text) {
    const id = lookup.get(ch);
    if (id !== undefined) tokens.push(id);
    else for (const b of enc.encode(ch)) tokens.push(b + 3);
  }
  for (;;) {
    let best = -1e10;
    let bestId = -1;
    let bestIdx = -1;
    for (let i = 0; i + 1 < tokens.length; i++) {
      const id = lookup.get(pieces[tokens[i]] + pieces[tokens[i + 1]]);
      if (id !== undefined && scores[id] > best) {
        best = scores[id];
        bestId = id;
        bestIdx = i;
      }
    }
    if (bestIdx < 0) break;
    tokens.splice(bestIdx, 2, bestId);
  }
  return tokens;
}

/** llama2.c's decode(): strip the dummy space after BOS, turn <0xHH> into raw bytes. */
function decode(tokens: number[], pieces: string[]): string {
  const out: number[] = [];
  for (let i = 0; i < tokens.length; i++) {
    if (tokens[i] === 1) continue;
    let piece = pieces[tokens[i]];
    if (tokens[i - 1] === 1 && piece.startsWith(' ')) piece = piece.slice(1);
    const m = /^<0x([0-9A-F]{2})>$/.exec(piece);
    if (m) out.push(parseInt(m[1], 16));
    else out.push(...enc.encode(piece));
  }
  return dec.decode(new Uint8Array(out));
}

describe('synthetic llama2.c tokenizer', () => {
  for (const vocabSize of [MIN_SYNTHETIC_VOCAB, 512, 32000]) {
    it(`parses as a valid tokenizer.bin of ${vocabSize} tokens`, () => {
      const bytes = syntheticTokenizerBytes(vocabSize);
      const { maxTokenLength, pieces: raw, scores } = parse(bytes, vocabSize);
      const pieces = raw.map((p) => dec.decode(p));
      expect(maxTokenLength).toBe(Math.max(...raw.map((p) => p.length)));
      expect(new Set(pieces).size).toBe(vocabSize);
      expect(pieces.slice(0, 3)).toEqual(['<unk>', '\n<s>\n', '\n</s>\n']);
      for (let b = 0; b < 256; b++) expect(pieces[3 + b]).toBe(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
      expect(pieces[259]).toBe(' ');
      // (collected, then asserted once: an expect per token costs seconds at 32k)
      const unordered = scores.flatMap((s, id) => (id >= 260 && !(s < scores[id - 1]) ? [id] : []));
      expect(unordered).toEqual([]);
      // every multi-character piece is its prefix plus one character, both in the vocabulary
      const set = new Set(pieces);
      const unreachable = pieces.slice(259).filter((p) => p.length > 1 && !(set.has(p.slice(0, -1)) && set.has(p.slice(-1))));
      expect(unreachable).toEqual([]);
      // same bytes every time
      expect(syntheticTokenizerBytes(vocabSize)).toEqual(bytes);
    });
  }

  it('round-trips text through llama2.c-style encode and decode', () => {
    for (const vocabSize of [MIN_SYNTHETIC_VOCAB, 512, 32000]) {
      const { pieces: raw, scores } = parse(syntheticTokenizerBytes(vocabSize), vocabSize);
      const pieces = raw.map((p) => dec.decode(p));
      for (const text of [
        'Once upon a time, there was a little girl named Lily.\nShe loved to play outside!',
        'héllo wörld 🚀 {}[]~\t<0x41> <s>',
        'x',
        '',
      ]) {
        const tokens = encode(text, pieces, scores);
        expect(tokens[0]).toBe(1);
        expect(decode(tokens, pieces)).toBe(text);
      }
    }
  });

  it('encodes common words as single tokens at the 32k size', () => {
    const { pieces: raw, scores } = parse(syntheticTokenizerBytes(32000), 32000);
    const pieces = raw.map((p) => dec.decode(p));
    const text = 'Once upon a time there was a little girl named Lily She loved to play in the park with her friends';
    const tokens = encode(text, pieces, scores);
    // BOS + one token per word (the dummy space merges into the first word)
    expect(tokens.length).toBe(1 + text.split(' ').length);
  });

  it('wraps the bytes as a llama2c TokenizerSource', () => {
    const src = syntheticTokenizer(512);
    expect(src.kind).toBe('llama2c');
    if (src.kind === 'llama2c') {
      expect(src.file).toBe('tokenizer.bin');
      expect(src.bytes).toEqual(syntheticTokenizerBytes(512));
    }
  });

  it('rejects vocabularies too small for byte fallback', () => {
    expect(() => syntheticTokenizerBytes(100)).toThrow(expect.objectContaining({ name: 'UsageError' }));
    expect(() => syntheticTokenizerBytes(511.5)).toThrow(expect.objectContaining({ name: 'UsageError' }));
  });
});
