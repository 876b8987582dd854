/**
 * The llama2.c tokenizer against llama2.c run.c itself: prompt encodings and generated texts
 * recorded from the real program (shared/model/llama2c/fixtures/stories260K-reference.json),
 * on the real tok512.bin and the 32k Llama 2 tokenizer.bin from ../shared/models.
 */
import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import reference from '../model/llama2c/fixtures/stories260K-reference.json' with { type: 'json' };
import { llama2cTokenCount, parseLlama2cTokenizer } from './llama2c.ts';

const MODELS = new URL('../../../shared/models/', import.meta.url);
const tok512Bytes = new Uint8Array(await readFile(new URL('tok512.bin', MODELS)));
const llamaBytes = new Uint8Array(await readFile(new URL('tokenizer.bin', MODELS)));
const tok512 = parseLlama2cTokenizer(tok512Bytes, 512, 'tok512.bin');
const llama = parseLlama2cTokenizer(llamaBytes, 32000, 'tokenizer.bin');

/** Text of the tokens run.c printed: everything before the terminating BOS. */
function printed(tokens: number[]): number[] {
  const end = tokens.indexOf(1);
  return end < 0 ? tokens : tokens.slice(0, end);
}

describe('parseLlama2cTokenizer', () => {
  it('reads the vocabulary and the special ids', () => {
    expect(tok512.vocabSize).toBe(512);
    expect(llama.vocabSize).toBe(32000);
    expect(tok512.bosId).toBe(1);
    // the runner stops llama2.c models on BOS (load.ts), as run.c does; EOS is just the vocabulary's
    expect(tok512.eosIds).toEqual([2]);
    expect(llama2cTokenCount(tok512Bytes)).toBe(512);
    expect(llama2cTokenCount(llamaBytes)).toBe(32000);
  });

  it('knows its longest piece, so no text of n tokens is longer than n times it', () => {
    for (const [t, text] of [[tok512, 'Once upon a time, there was a little girl named Lily.'], [llama, 'The quick brown fox jumps over the lazy dog; naïve café, 東京.']] as const) {
      expect(t.maxPieceChars).toBeGreaterThan(1);
      expect(text.length).toBeLessThanOrEqual(t.maxPieceChars * t.encode(text).length);
    }
    expect(llama.maxPieceChars).toBe(Math.max(...Array.from({ length: 32000 }, (_, id) => llama.decodePiece(0, id).length), llama.maxPieceChars));
  });

  it('rejects a truncated file, naming it', () => {
    const cut = tok512Bytes.subarray(0, 3000);
    const err = (() => {
      try {
        parseLlama2cTokenizer(cut, 512, '/tmp/cut-tok512.bin');
      } catch (e) {
        return e as Error;
      }
    })();
    expect(err?.name).toBe('TokenizerError');
    expect(err?.message).toMatch(/^\/tmp\/cut-tok512\.bin: truncated tokenizer: token \d+ of 512 runs past the end of the file \(3000 bytes\)$/);
    expect(() => llama2cTokenCount(cut, 'cut.bin')).toThrow(/cut\.bin: truncated tokenizer/);
    expect(() => parseLlama2cTokenizer(new Uint8Array(2), 512, 'tiny.bin')).toThrow(/tiny\.bin: truncated tokenizer: the header/);
  });
});

describe('encode', () => {
  it('encodes the reference prompts exactly as run.c does', () => {
    for (const run of reference.runs) {
      if (run.prompt === null) continue;
      expect(tok512.encode(run.prompt)).toEqual([1, ...run.promptTokens]);
    }
    expect(tok512.encode('Once upon a time')).toEqual([1, 403, 407, 261, 378]);
  });

  it('matches run.c bpe_encode on tok512.bin, byte fallback included', () => {
    for (const { text, tokens } of reference.encode['tok512.bin']) expect(tok512.encode(text), text).toEqual([1, ...tokens]);
  });

  it('matches run.c bpe_encode on the 32k Llama 2 tokenizer.bin', () => {
    for (const { text, tokens } of reference.encode['tokenizer.bin']) expect(llama.encode(text), text).toEqual([1, ...tokens]);
  });

  it('breaks equal merge scores toward the leftmost pair, as run.c does', () => {
    // a b c, where "ab" and "bc" score the same: run.c's strict > keeps the first pair found
    const tok = parseLlama2cTokenizer(buildTokenizer([[' ', -1], ['a', -2], ['b', -3], ['c', -4], ['ab', -5], ['bc', -5]]), 265);
    expect(tok.encode('abc')).toEqual([1, 259, 263, 262]);
    expect(tok.encode('bcab')).toEqual([1, 259, 264, 263]);
    // a NUL is not the end of the prompt (it would be for run.c's C string): byte token <0x00>
    expect(tok.encode('a\0')).toEqual([1, 259, 260, 3]);
  });

  it('gives just BOS for an empty prompt (no dummy prefix)', () => {
    expect(tok512.encode('')).toEqual([1]);
  });

  it('merges exactly like run.c quadratic loop on many strings', () => {
    // run.c's merge loop, literally: rescan all pairs, take the strict-> best, repeat.
    const vocab = decodeVocab(llamaBytes, 32000);
    const lookup = new Map(vocab.pieces.map((p, i) => [p, i] as const).reverse());
    const naive = (text: string): number[] => {
      const split = [...unmergedSplit(text, lookup)];
      for (;;) {
        let best = Math.fround(-1e10);
        let bestIdx = -1;
        let bestId = -1;
        for (let i = 0; i + 1 < split.length; i++) {
          const id = lookup.get(vocab.pieces[split[i]] + vocab.pieces[split[i + 1]]);
          if (id !== undefined && vocab.scores[id] > best) [best, bestIdx, bestId] = [vocab.scores[id], i, id];
        }
        if (bestIdx < 0) return [1, ...split];
        split.splice(bestIdx, 2, bestId);
      }
    };
    const words = ['the', 'cat', ' ', 'sat', 'on', 'mat', 'aaaa', 'ab', 'ba', '!!', '\n', 'é', '😀', 'ing', 'un', 'able', 'xx', 'e', 'ee'];
    let seed = 12345;
    const rand = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
    for (let n = 0; n < 200; n++) {
      const text = Array.from({ length: 1 + Math.floor(rand() * 30) }, () => words[Math.floor(rand() * words.length)]).join('');
      expect(llama.encode(text), JSON.stringify(text)).toEqual(naive(text));
    }
  });
});

describe('decode', () => {
  it('reproduces run.c output for every reference run', () => {
    for (const run of reference.runs) {
      const tokens = printed(run.tokens);
      expect(tok512.decode(tokens), run.name).toBe(run.text);
      // streaming gives the same text, piece by piece, with each token's predecessor
      const stream = tok512.createStreamDecoder();
      let prev = 1;
      let text = '';
      for (const t of tokens) {
        text += stream.push(prev, t);
        prev = t;
      }
      expect(text + stream.flush(), run.name).toBe(run.text);
    }
  });

  it('strips the dummy-prefix space only right after BOS', () => {
    expect(tok512.decodePiece(1, 403)).toBe('Once');
    expect(tok512.decodePiece(403, 403)).toBe(' Once');
    expect(tok512.decodePiece(378, 407)).toBe(' upon');
  });

  it('turns byte tokens into bytes and drops control bytes as safe_printf does', () => {
    expect(tok512.decodePiece(5, 13)).toBe('\n'); // <0x0A>
    expect(tok512.decodePiece(5, 12)).toBe('\t'); // <0x09>
    expect(tok512.decodePiece(5, 10)).toBe(''); // <0x07> bell: not printable, not space
    expect(tok512.decodePiece(5, 1)).toBe(''); // BOS is never printed
    expect(tok512.decodePiece(5, 2)).toBe('');
  });

  it('assembles characters split over byte-fallback tokens', () => {
    const tokens = tok512.encode('a 😀 b');
    expect(tokens).toEqual(expect.arrayContaining([243, 162, 155, 131])); // F0 9F 98 80 + 3
    expect(tok512.decode(tokens)).toBe('a 😀 b');
    // one byte alone is half a character: decodePiece can only say so
    expect(tok512.decodePiece(5, 243)).toBe('\uFFFD');
    const stream = tok512.createStreamDecoder();
    expect([243, 162, 155].map((t) => stream.push(5, t))).toEqual(['', '', '']);
    expect(stream.push(158, 131)).toBe('😀');
    expect(stream.push(131, 243) + stream.flush()).toBe('\uFFFD'); // cut off mid-character
  });

  it('round-trips text through encode and decode', () => {
    const texts = [...reference.encode['tokenizer.bin'].map((e) => e.text), '  two leading spaces', '\uFEFFbom kept'];
    for (const text of texts) {
      expect(llama.decode(llama.encode(text))).toBe(text);
      expect(tok512.decode(tok512.encode(text))).toBe(text);
    }
  });

  it('rejects ids outside the vocabulary', () => {
    expect(() => tok512.decodePiece(1, 512)).toThrow(expect.objectContaining({ name: 'TokenizerError' }));
  });
});

/** Pieces as byte strings (one char per byte) and scores, read independently of the parser. */
function decodeVocab(bytes: Uint8Array, n: number): { pieces: string[]; scores: Float32Array } {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const pieces: string[] = [];
  const scores = new Float32Array(n);
  let off = 4;
  for (let i = 0; i < n; i++) {
    scores[i] = view.getFloat32(off, true);
    const len = view.getInt32(off + 4, true);
    pieces.push(String.fromCharCode(...bytes.subarray(off + 8, off + 8 + len)));
    off += 8 + len;
  }
  return { pieces, scores };
}

/** run.c's pre-merge split: dummy prefix, then codepoints, else byte fallback (byte + 3). */
function* unmergedSplit(text: string, lookup: Map<string, number>): Generator<number> {
  if (text.length > 0) yield lookup.get(' ')!;
  for (const ch of text) {
    const bytes = new TextEncoder().encode(ch);
    const id = lookup.get(String.fromCharCode(...bytes));
    if (id !== undefined) yield id;
    else for (const b of bytes) yield b + 3;
  }
}

/** A llama2.c tokenizer file: <unk>, <s>, </s>, the 256 byte tokens, then `extra` (piece, score). */
function buildTokenizer(extra: [string, number][]): Uint8Array {
  const pieces: [string, number][] = [
    ['<unk>', 0],
    ['\n<s>\n', 0],
    ['\n</s>\n', 0],
    ...Array.from({ length: 256 }, (_, b) => [`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`, 0] as [string, number]),
    ...extra,
  ];
  const parts: number[] = [];
  const push32 = (write: (v: DataView) => void) => {
    const b = new Uint8Array(4);
    write(new DataView(b.buffer));
    parts.push(...b);
  };
  push32((v) => v.setInt32(0, 8, true));
  for (const [piece, score] of pieces) {
    const bytes = new TextEncoder().encode(piece);
    push32((v) => v.setFloat32(0, score, true));
    push32((v) => v.setInt32(0, bytes.length, true));
    parts.push(...bytes);
  }
  return Uint8Array.from(parts);
}
