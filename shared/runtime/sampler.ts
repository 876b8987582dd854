/**
 * Next-token sampling, identical to llama2.c run.c so that a seeded run reproduces the
 * reference token for token: greedy argmax at temperature 0, otherwise softmax(logits / T)
 * and either plain multinomial sampling or top-p (nucleus) sampling, driven by run.c's
 * xorshift64* generator. Arithmetic is float32 where run.c's is (Math.fround), because a
 * coin that lands near a bucket edge would otherwise pick a different token.
 */
import { UsageError } from '../errors.ts';

export interface SamplerOptions {
  vocabSize: number;
  /** 0 = greedy. */
  temperature: number;
  /** Nucleus mass; <= 0 or >= 1 samples from the full distribution (as run.c). */
  topP: number;
  /**
   * xorshift64* state, as run.c's `-s`: a non-zero integer (negative values wrap to uint64
   * like C's conversion). run.c replaces 0 with the time; we refuse it so a seed is always
   * reproducible. Omitted: seeded from the clock.
   */
  seed?: number | bigint;
}

export interface Sampler {
  /** Picks the next token. Reads `logits` without modifying it. */
  sample(logits: Float32Array): number;
}

const MASK64 = (1n << 64n) - 1n;
const XORSHIFT_MULTIPLIER = 0x2545f4914f6cdd1dn;

/** run.c's random_u32/random_f32 over one uint64 state. */
export class XorShift64Star {
  #state: bigint;

  constructor(seed: number | bigint) {
    const state = BigInt.asUintN(64, BigInt(seed));
    // xorshift maps 0 to 0 forever
    if (state === 0n) throw new UsageError('random seed must be non-zero');
    this.#state = state;
  }

  nextU32(): number {
    let s = this.#state;
    s ^= s >> 12n;
    s = (s ^ (s << 25n)) & MASK64;
    s ^= s >> 27n;
    this.#state = s;
    return Number(((s * XORSHIFT_MULTIPLIER) & MASK64) >> 32n);
  }

  /** A float32 in [0, 1) with 24 random bits. */
  nextF32(): number {
    return (this.nextU32() >>> 8) / 16777216;
  }
}

export function createSampler(options: SamplerOptions): Sampler {
  const { vocabSize } = options;
  if (!Number.isInteger(vocabSize) || vocabSize <= 0) throw new UsageError(`vocabulary size must be a positive integer, got ${vocabSize}`);
  if (!(options.temperature >= 0)) throw new UsageError(`temperature must be 0 or more, got ${options.temperature}`);
  if (Number.isNaN(options.topP)) throw new UsageError('top-p must be a number');
  // run.c parses both flags into C floats
  const temperature = Math.fround(options.temperature);
  const topP = Math.fround(options.topP);
  if (temperature === 0) return { sample: argmax };

  const rng = new XorShift64Star(options.seed ?? defaultSeed());
  const probs = new Float32Array(vocabSize);
  const candidates = new Int32Array(vocabSize);
  const keys = new Float64Array(vocabSize);
  return {
    sample(logits) {
      if (logits.length !== vocabSize) throw new UsageError(`expected ${vocabSize} logits, got ${logits.length}`);
      for (let i = 0; i < vocabSize; i++) probs[i] = logits[i] / temperature; // float32 store rounds like C
      softmax(probs);
      const coin = rng.nextF32();
      return topP <= 0 || topP >= 1 ? sampleMult(probs, coin) : sampleTopP(probs, topP, coin, candidates, keys);
    },
  };
}

/** Index of the largest value, the first on ties (run.c's strict `>`). */
export function argmax(values: Float32Array): number {
  let best = 0;
  let max = values[0];
  for (let i = 1; i < values.length; i++) {
    if (values[i] > max) {
      max = values[i];
      best = i;
    }
  }
  return best;
}

/** In place, float32 accumulation in index order like run.c's softmax. */
function softmax(x: Float32Array): void {
  let max = x[0];
  for (let i = 1; i < x.length; i++) if (x[i] > max) max = x[i];
  let sum = 0;
  for (let i = 0; i < x.length; i++) {
    x[i] = Math.exp(Math.fround(x[i] - max)); // C: expf of a float difference
    sum = Math.fround(sum + x[i]);
  }
  for (let i = 0; i < x.length; i++) x[i] = x[i] / sum;
}

function sampleMult(probs: Float32Array, coin: number): number {
  let cdf = 0;
  for (let i = 0; i < probs.length; i++) {
    cdf = Math.fround(cdf + probs[i]);
    if (coin < cdf) return i;
  }
  return probs.length - 1; // rounding left the cdf short of the coin
}

/**
 * Samples from the smallest set of most-likely tokens whose mass exceeds topP. Tokens below
 * (1 - topP) / (n - 1) cannot be in that set, so they are dropped before sorting (run.c's
 * shortcut, kept because it decides which tokens are candidates when rounding is close).
 * run.c sorts with qsort, which is not stable; we break probability ties by token id. Exact
 * ties among the candidates are rare, and only there could the order (and so the token a coin
 * selects) differ from run.c's.
 */
function sampleTopP(probs: Float32Array, topP: number, coin: number, candidates: Int32Array, keys: Float64Array): number {
  const n = probs.length;
  const cutoff = Math.fround(Math.fround(1 - topP) / (n - 1));
  let n0 = 0;
  for (let i = 0; i < n; i++) if (probs[i] >= cutoff) candidates[n0++] = i;
  const sorted = sortByProbability(probs, candidates.subarray(0, n0), keys);

  let cumulative = 0;
  let last = n0 - 1; // rounding may keep the sum at or below topP: then all candidates count
  for (let i = 0; i < n0; i++) {
    cumulative = Math.fround(cumulative + probs[sorted[i]]);
    if (cumulative > topP) {
      last = i;
      break;
    }
  }
  const r = Math.fround(coin * cumulative);
  let cdf = 0;
  for (let i = 0; i <= last; i++) {
    cdf = Math.fround(cdf + probs[sorted[i]]);
    if (r < cdf) return sorted[i];
  }
  return sorted[last];
}

/**
 * Orders token ids by probability, highest first, ties by lower id. A comparator sort of tens
 * of thousands of candidates (a flat distribution over a 32k vocabulary) took ~4 ms per token;
 * instead each id is packed with its probability into one float64 key and sorted natively.
 * Non-negative float32 values order like their bit patterns, so the key
 * (2^32 - 1 - bits(p)) * 2^ID_BITS + id is exact (< 2^53) and sorts ascending into that order.
 */
const ID_BITS = 2 ** 20;
const f32 = new Float32Array(1);
const f32Bits = new Uint32Array(f32.buffer);

function sortByProbability(probs: Float32Array, ids: Int32Array, keys: Float64Array): Int32Array {
  if (probs.length > ID_BITS) return ids.sort((a, b) => probs[b] - probs[a] || a - b);
  const k = keys.subarray(0, ids.length);
  for (let i = 0; i < ids.length; i++) {
    f32[0] = probs[ids[i]];
    k[i] = (0xffffffff - f32Bits[0]) * ID_BITS + ids[i];
  }
  k.sort();
  for (let i = 0; i < ids.length; i++) ids[i] = k[i] % ID_BITS;
  return ids;
}

function defaultSeed(): bigint {
  // run.c: (unsigned int)time(NULL); any non-zero value will do
  return BigInt(Date.now()) || 1n;
}
