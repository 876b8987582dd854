/**
 * A self-contained tokenizer for synthetic checkpoints, in llama2.c's tokenizer.bin format, so a
 * synthetic package can encode and decode prompts with the same code path as a real llama2.c
 * model and without any download.
 *
 * Layout (what llama2.c's encoder and decoder assume):
 *   0 `<unk>`, 1 `\n<s>\n` (BOS), 2 `\n</s>\n` (EOS), exactly as Llama 2's tokenizer.bin has them;
 *   3..258 byte fallback `<0x00>`..`<0xFF>` (id = byte + 3);
 *   then single printable ASCII characters (" " first: the encoder looks it up for its dummy
 *   prefix), " " + each letter, common English words with and without a leading space, and
 *   finally letter bigrams and trigrams (with and without a leading space) until vocabSize.
 * Scores fall with id, so BPE merges prefer earlier, more common pieces. Every piece longer than
 * one character is added after its prefix one character shorter, so each has a split into two
 * pieces that are both in the vocabulary (prefix + last character) and is reachable by merges.
 */
import { UsageError } from '../../errors.ts';
import type { TokenizerSource } from '../checkpoint.ts';

/** Smallest vocabulary that still has the specials, all 256 byte tokens and " " (the dummy prefix). */
export const MIN_SYNTHETIC_VOCAB = 260;

/** Letters by English frequency, so the n-gram filler reaches common combinations first. */
const LETTERS_BY_FREQUENCY = 'etaoinshrdlcumwfgypbvkjxqz';

/**
 * Common English words, roughly by frequency, with a bias towards the simple narrative
 * vocabulary of the TinyStories-style prompts used in tests and demos.
 */
const COMMON_WORDS = `
the of and to a in is it you that he was for on are with as I his they be at one have this
from or had by not word but what some we can out other were all there when up use your how said
an each she which do their time if will way about many then them write would like so these her
long make thing see him two has look more day could go come did number sound no most people my
over know water than call first who may down side been now find any new work part take get place
made live where after back little only round man year came show every good me give our under name
very through just form sentence great think say help low line differ turn cause much mean before
move right boy old too same tell does set three want air well also play small end put home read
hand port large spell add even land here must big high such follow act why ask men change went
light kind off need house picture try us again animal point mother world near build self earth
father head stand own page should country found answer school grow study still learn plant cover
food sun four between state keep eye never last let thought city tree cross farm hard start might
story saw far sea draw left late run while press close night real life few north open seem
together next white children begin got walk example ease paper group always music those both mark
often letter until mile river car feet care second book carry took science eat room friend began
idea fish mountain stop once base hear horse cut sure watch color face wood main enough plain girl
usual young ready above ever red list though feel talk bird soon body dog family direct pose leave
song measure door product black short numeral class wind question happen complete ship area half
rock order fire south problem piece told knew pass since top whole king space heard best hour
better true during hundred five remember step early hold west ground interest reach fast verb sing
listen six table travel less morning ten simple several vowel toward war lay against pattern slow
center love person money serve appear road map rain rule govern pull cold notice voice unit power
town fine certain fly fall lead cry dark machine note wait plan figure star box noun field rest
correct able pound done beauty drive stood contain front teach week final gave green oh quick
develop ocean warm free minute strong special mind behind clear tail produce fact street inch
happy sad ball toy park smile jump friends named upon loved wanted saw cat bear bunny cake garden
sky flower shiny brave scared laughed played looked said felt went
`;

/** Capitalised forms that start sentences and names in stories. */
const CAPITALISED_WORDS = 'The Once One He She It They We You But And There This What When Then Lily Tom Ben Sue Mom Dad';

interface VocabBuilder {
  pieces: string[];
  seen: Set<string>;
  limit: number;
}

function add(v: VocabBuilder, piece: string): boolean {
  if (v.pieces.length >= v.limit) return false;
  if (!v.seen.has(piece)) {
    v.seen.add(piece);
    v.pieces.push(piece);
  }
  return v.pieces.length < v.limit;
}

/** Adds every missing prefix of `piece` (shortest first), then the piece itself. */
function addWithPrefixes(v: VocabBuilder, piece: string): boolean {
  for (let n = 2; n <= piece.length; n++) {
    if (!add(v, piece.slice(0, n))) return false;
  }
  return true;
}

/** The pieces in id order; exported for tests and for anyone wanting the vocabulary as strings. */
export function syntheticTokenizerPieces(vocabSize: number): string[] {
  if (!Number.isInteger(vocabSize) || vocabSize < MIN_SYNTHETIC_VOCAB) {
    throw new UsageError(`synthetic tokenizer needs a vocabulary of at least ${MIN_SYNTHETIC_VOCAB} tokens, got ${vocabSize}`);
  }
  const v: VocabBuilder = { pieces: [], seen: new Set(), limit: vocabSize };
  add(v, '<unk>');
  add(v, '\n<s>\n');
  add(v, '\n</s>\n');
  for (let b = 0; b < 256; b++) add(v, `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);

  const fill = (): boolean => {
    for (let c = 0x20; c <= 0x7e; c++) if (!add(v, String.fromCharCode(c))) return false;
    const lower = 'abcdefghijklmnopqrstuvwxyz';
    for (const ch of lower + lower.toUpperCase()) if (!add(v, ' ' + ch)) return false;

    const words = [...COMMON_WORDS.trim().split(/\s+/), ...CAPITALISED_WORDS.split(' ')];
    for (const w of words) {
      if (!addWithPrefixes(v, ' ' + w)) return false;
      if (!addWithPrefixes(v, w)) return false;
    }

    // N-gram filler. Bigrams come before the trigrams that extend them, and " ab" before " abc",
    // which keeps the prefix property.
    const L = LETTERS_BY_FREQUENCY;
    for (const lead of ['', ' ']) {
      for (const a of L) for (const b of L) if (!add(v, lead + a + b)) return false;
    }
    for (const lead of ['', ' ']) {
      for (const a of L) for (const b of L) for (const c of L) if (!add(v, lead + a + b + c)) return false;
    }
    // Past ~37k tokens: four-letter pieces, still prefix-closed.
    for (const lead of ['', ' ']) {
      for (const a of L) for (const b of L) for (const c of L) for (const d of L) {
        if (!add(v, lead + a + b + c + d)) return false;
      }
    }
    return true;
  };
  fill();
  if (v.pieces.length < vocabSize) {
    // Only reachable above ~950k tokens; say so rather than hand back a short vocabulary.
    throw new UsageError(`synthetic tokenizer cannot build ${vocabSize} distinct tokens (at most ${v.pieces.length})`);
  }
  return v.pieces;
}

/** The score llama2.c's BPE merges by: 0 for specials and bytes, then falling by one per id. */
export function syntheticTokenScore(id: number): number {
  return id < 259 ? 0 : -(id - 259);
}

/** tokenizer.bin bytes: int32 max_token_length, then per token float32 score, int32 length, UTF-8 bytes (little-endian). */
export function syntheticTokenizerBytes(vocabSize: number): Uint8Array {
  const enc = new TextEncoder();
  const encoded = syntheticTokenizerPieces(vocabSize).map((p) => enc.encode(p));
  let maxLen = 0;
  let total = 4;
  for (const e of encoded) {
    maxLen = Math.max(maxLen, e.length);
    total += 8 + e.length;
  }
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  view.setInt32(0, maxLen, true);
  let off = 4;
  for (let id = 0; id < encoded.length; id++) {
    view.setFloat32(off, syntheticTokenScore(id), true);
    view.setInt32(off + 4, encoded[id].length, true);
    out.set(encoded[id], off + 8);
    off += 8 + encoded[id].length;
  }
  return out;
}

/** The TokenizerSource a synthetic checkpoint ships. */
export function syntheticTokenizer(vocabSize: number): TokenizerSource {
  return { kind: 'llama2c', file: 'tokenizer.bin', bytes: syntheticTokenizerBytes(vocabSize) };
}
