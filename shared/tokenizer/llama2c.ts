/**
 * The llama2.c tokenizer (tokenizer.bin / tok512.bin): a sentencepiece-style BPE vocabulary
 * with per-piece merge scores. Encoding and decoding follow llama2.c run.c token for token,
 * so prompts and generations match the reference implementation; the few deliberate
 * differences are listed on parseLlama2cTokenizer.
 *
 * File format: int32 max_token_length, then per token: float32 score, int32 byte length, bytes.
 * The vocabulary size is not in the file; it comes from the model header.
 */
import { TokenizerError } from '../errors.ts';
import type { StreamDecoder, Tokenizer } from './tokenizer.ts';

const BOS = 1;
const EOS = 2;
/** Byte-fallback tokens <0x00>..<0xFF> follow <unk>, <s>, </s>. */
const BYTE_TOKEN_OFFSET = 3;
/** run.c's merge loop starts from `float best_score = -1e10`: pairs scoring no higher never merge. */
const MIN_MERGE_SCORE = Math.fround(-1e10);
const BYTE_PIECE = /^<0x([0-9A-Fa-f]{2})>$/;

/**
 * Parses tokenizer bytes for a model with `vocabSize` tokens (trailing bytes are ignored, as
 * run.c does). `source` names the file in errors.
 *
 * eosIds is the vocabulary's EOS [2], but it is not what ends a generation: the stories models
 * end a story by emitting BOS and run.c stops on BOS alone, so the runner stops on BOS for
 * llama2.c packages (shared/tokenizer/load.ts returns stopIds [bosId]).
 *
 * Differences from run.c, all outside what the reference runs exercise:
 * - BOS and EOS decode to '' (run.c never prints BOS; it would print EOS as "\n</s>\n").
 * - Byte-fallback bytes >= 0x80 are kept and assembled into UTF-8 characters. run.c's
 *   safe_printf drops them: isprint() is false for them in the C locale run.c runs in, so
 *   run.c cannot print non-ASCII text that came out as byte tokens. ASCII control bytes
 *   (not printable, not whitespace) are dropped as run.c does.
 * - A NUL in the prompt is encoded as byte token <0x00>; run.c's C string would end there.
 * - BOS does not take part in merges (run.c versions differ here; no real vocabulary has a
 *   piece that starts with BOS's text).
 */
export function parseLlama2cTokenizer(bytes: Uint8Array, vocabSize: number, source = 'tokenizer'): Tokenizer {
  if (!Number.isInteger(vocabSize) || vocabSize <= 0) {
    throw new TokenizerError(`vocabulary size must be a positive integer, got ${vocabSize}`, { source });
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const truncated = (what: string): never => {
    throw new TokenizerError(`truncated tokenizer: ${what} runs past the end of the file (${bytes.byteLength} bytes)`, {
      source,
    });
  };
  if (bytes.byteLength < 4) truncated('the header');
  const pieces: Uint8Array[] = [];
  const scores = new Float32Array(vocabSize);
  let offset = 4;
  for (let i = 0; i < vocabSize; i++) {
    if (offset + 8 > bytes.byteLength) truncated(`token ${i} of ${vocabSize}`);
    scores[i] = view.getFloat32(offset, true);
    const len = view.getInt32(offset + 4, true);
    offset += 8;
    if (len < 0) throw new TokenizerError(`token ${i} has negative length ${len}`, { source });
    if (offset + len > bytes.byteLength) truncated(`token ${i} of ${vocabSize}`);
    pieces.push(bytes.slice(offset, offset + len));
    offset += len;
  }
  return new Llama2cTokenizer(pieces, scores, source);
}

/**
 * How many tokens a llama2.c tokenizer file holds (the format does not say; run.c takes the
 * model's vocabulary size on trust). Lets a checkpoint reader reject a tokenizer made for
 * another model before anything runs. Throws TokenizerError if the last entry is cut short.
 */
export function llama2cTokenCount(bytes: Uint8Array, source = 'tokenizer'): number {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.byteLength < 4) {
    throw new TokenizerError(`truncated tokenizer: the header runs past the end of the file (${bytes.byteLength} bytes)`, { source });
  }
  let offset = 4;
  let count = 0;
  while (offset < bytes.byteLength) {
    const len = offset + 8 <= bytes.byteLength ? view.getInt32(offset + 4, true) : -1;
    if (len < 0 || offset + 8 + len > bytes.byteLength) {
      throw new TokenizerError(`truncated tokenizer: token ${count} runs past the end of the file (${bytes.byteLength} bytes)`, {
        source,
      });
    }
    offset += 8 + len;
    count++;
  }
  return count;
}

/** One byte per char: an exact, cheap Map key for a byte string (what run.c compares with strcmp). */
function byteKey(b: Uint8Array): string {
  let s = '';
  for (let i = 0; i < b.length; i++) s += String.fromCharCode(b[i]);
  return s;
}

/** run.c's safe_printf test: C-locale isprint() || isspace(). */
function printableOrSpace(b: number): boolean {
  return (b >= 0x20 && b <= 0x7e) || (b >= 0x09 && b <= 0x0d);
}

class Llama2cTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly bosId = BOS;
  readonly eosIds = [EOS];
  /** A piece's UTF-8 bytes: never fewer than the UTF-16 units of the text it covers. */
  readonly maxPieceChars: number;
  readonly #pieces: Uint8Array[];
  readonly #keys: string[];
  readonly #scores: Float32Array;
  readonly #lookup = new Map<string, number>();
  readonly #source: string;

  constructor(pieces: Uint8Array[], scores: Float32Array, source: string) {
    this.vocabSize = pieces.length;
    this.maxPieceChars = pieces.reduce((max, p) => Math.max(max, p.byteLength), 1);
    this.#pieces = pieces;
    this.#scores = scores;
    this.#source = source;
    this.#keys = pieces.map(byteKey);
    // run.c bsearches a sorted copy; with duplicate pieces it may find either. Real files have
    // none, and the first occurrence is the deterministic choice.
    this.#keys.forEach((k, id) => {
      if (!this.#lookup.has(k)) this.#lookup.set(k, id);
    });
  }

  encode(text: string): number[] {
    const bytes = new TextEncoder().encode(text);
    const tokens: number[] = [];
    // sentencepiece's add_dummy_prefix: " Once" is one token, so a prompt starts with a space
    if (bytes.length > 0) {
      const space = this.#lookup.get(' ');
      if (space !== undefined) tokens.push(space);
    }
    // Split into UTF-8 codepoints the way run.c does (a lead byte plus at most 3 continuation
    // bytes; stray continuation bytes start a new unit), look each up, else fall back to bytes.
    let unit = '';
    for (let i = 0; i < bytes.length; i++) {
      const c = bytes[i];
      if ((c & 0xc0) !== 0x80) unit = '';
      unit += String.fromCharCode(c);
      if (i + 1 < bytes.length && (bytes[i + 1] & 0xc0) === 0x80 && unit.length < 4) continue;
      const id = this.#lookup.get(unit);
      if (id !== undefined) tokens.push(id);
      else for (let j = 0; j < unit.length; j++) tokens.push(this.#byteToken(unit.charCodeAt(j)));
      unit = '';
    }
    return [BOS, ...this.#merge(tokens)];
  }

  decodePiece(prev: number, token: number): string {
    const bytes = this.#pieceBytes(prev, token);
    if (bytes.length === 1 && bytes[0] >= 0x80) return '\uFFFD'; // half a character; see createStreamDecoder
    return new TextDecoder('utf-8', { ignoreBOM: true }).decode(bytes);
  }

  decode(tokens: number[]): string {
    const stream = this.createStreamDecoder();
    // A sequence is decoded as if it followed BOS, so the dummy-prefix space of its first
    // piece is dropped (decode(encode(s)) === s) just as run.c prints a story after BOS.
    let out = '';
    let prev = BOS;
    for (const t of tokens) {
      out += stream.push(prev, t);
      prev = t;
    }
    return out + stream.flush();
  }

  createStreamDecoder(): StreamDecoder {
    // ignoreBOM: a U+FEFF that the model emits is text, not a byte-order mark to strip
    const decoder = new TextDecoder('utf-8', { ignoreBOM: true });
    return {
      push: (prev, token) => decoder.decode(this.#pieceBytes(prev, token), { stream: true }),
      flush: () => decoder.decode(),
    };
  }

  /** The bytes run.c would print for `token` after `prev` (its decode + safe_printf). */
  #pieceBytes(prev: number, token: number): Uint8Array {
    if (!Number.isInteger(token) || token < 0 || token >= this.vocabSize) {
      throw new TokenizerError(`token id ${token} is outside the vocabulary (0..${this.vocabSize - 1})`, {
        source: this.#source,
      });
    }
    if (token === BOS || token === EOS) return new Uint8Array(0);
    let piece = this.#pieces[token];
    // after BOS the sentencepiece decoder strips the dummy-prefix space (llama2.c PR #89)
    if (prev === BOS && piece[0] === 0x20) piece = piece.subarray(1);
    const byte = BYTE_PIECE.exec(this.#keys[token]);
    if (byte) piece = Uint8Array.of(parseInt(byte[1], 16));
    if (piece.length === 1 && piece[0] < 0x80 && !printableOrSpace(piece[0])) return new Uint8Array(0);
    return piece;
  }

  #byteToken(b: number): number {
    const id = b + BYTE_TOKEN_OFFSET;
    if (id >= this.vocabSize) {
      throw new TokenizerError(`cannot encode byte 0x${b.toString(16)}: the vocabulary has no byte-fallback tokens`, {
        source: this.#source,
      });
    }
    return id;
  }

  /**
   * Repeatedly merges the adjacent pair whose concatenation is in the vocabulary with the highest
   * score, the leftmost on ties (run.c's strict `>` scan), until none is left. run.c rescans every
   * pair after each merge (quadratic); a heap ordered by (score desc, position asc) with lazy
   * invalidation picks the same pair each step, because a merged token keeps its left position
   * and only the pairs beside it change.
   */
  #merge(input: number[]): number[] {
    const n = input.length;
    const ids = input.slice();
    const next = Array.from({ length: n }, (_, i) => (i + 1 < n ? i + 1 : -1));
    const prev = Array.from({ length: n }, (_, i) => i - 1);
    const alive = new Array<boolean>(n).fill(true);
    const heap = new PairHeap();
    const consider = (left: number) => {
      const right = next[left];
      if (left < 0 || right < 0) return;
      const id = this.#lookup.get(this.#keys[ids[left]] + this.#keys[ids[right]]);
      if (id !== undefined && this.#scores[id] > MIN_MERGE_SCORE) {
        heap.push({ score: this.#scores[id], left, leftId: ids[left], right, rightId: ids[right], merged: id });
      }
    };
    for (let i = 0; i + 1 < n; i++) consider(i);
    for (let pair = heap.pop(); pair; pair = heap.pop()) {
      const { left, right } = pair;
      // stale: one side was merged away or replaced since this pair was scored
      if (!alive[left] || !alive[right] || next[left] !== right) continue;
      if (ids[left] !== pair.leftId || ids[right] !== pair.rightId) continue;
      ids[left] = pair.merged;
      alive[right] = false;
      next[left] = next[right];
      if (next[right] >= 0) prev[next[right]] = left;
      consider(prev[left]);
      consider(left);
    }
    const out: number[] = [];
    for (let i = n > 0 ? 0 : -1; i >= 0; i = next[i]) out.push(ids[i]);
    return out;
  }
}

interface Pair {
  score: number;
  left: number;
  leftId: number;
  right: number;
  rightId: number;
  merged: number;
}

/** Binary max-heap: higher score first, then the leftmost position. */
class PairHeap {
  readonly #items: Pair[] = [];

  push(p: Pair): void {
    const a = this.#items;
    a.push(p);
    let i = a.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(a[i], a[parent])) break;
      [a[i], a[parent]] = [a[parent], a[i]];
      i = parent;
    }
  }

  pop(): Pair | undefined {
    const a = this.#items;
    const top = a[0];
    const last = a.pop();
    if (a.length > 0 && last) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let best = i;
        if (l < a.length && before(a[l], a[best])) best = l;
        if (r < a.length && before(a[r], a[best])) best = r;
        if (best === i) break;
        [a[i], a[best]] = [a[best], a[i]];
        i = best;
      }
    }
    return top;
  }
}

function before(x: Pair, y: Pair): boolean {
  return x.score > y.score || (x.score === y.score && x.left < y.left);
}
