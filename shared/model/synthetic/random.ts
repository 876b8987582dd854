/**
 * Seeded random numbers for synthetic checkpoints: the same (seed, tensor name) gives the same
 * float32 bytes on every platform and JS engine, in any read order, so a synthetic package
 * compiled on one machine matches the reference weights generated on another.
 *
 * Why these choices:
 * - xoshiro128** (Blackman & Vigna) needs only 32-bit integer ops (Math.imul, shifts, xor), which
 *   JS defines exactly, and is fast enough to fill a 1.1B-parameter model in seconds.
 * - Each tensor gets its own generator, keyed by a hash of (seed, name), so reading tensors in
 *   any order or only some of them (one block per shard) gives identical values.
 * - Normals are Irwin–Hall, not Box–Muller: Math.log/Math.cos/Math.sqrt results are
 *   "implementation-approximated" in ECMA-262 and may differ by an ulp between engines. The sum
 *   of four 16-bit uniforms, centred and scaled, uses one integer sum and one double multiply
 *   (IEEE-exact, then rounded to float32 on store), so every engine writes the same bits.
 *   The price is a bounded distribution (|z| ≤ 2√3 ≈ 3.46) with slightly light tails, which is
 *   irrelevant for random weights. Scale factors use exactSqrt (Newton iterations of + * /).
 */

/** 32-bit FNV-1a over UTF-16 code units; `basis` picks an independent hash. */
export function hashString(s: string, basis = 0x811c9dc5): number {
  let h = basis | 0;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** MurmurHash3's finaliser: spreads every input bit over the output word. */
export function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * The 128-bit xoshiro state for one tensor. `seed` may be any safe integer (negative too):
 * both 32-bit halves count, so seeds 1 and 2^32+1 differ.
 */
export function seedState(seed: number, name: string): Uint32Array {
  if (!Number.isSafeInteger(seed)) throw new RangeError(`seed must be a safe integer, got ${seed}`);
  const lo = seed >>> 0;
  const hi = Math.floor(seed / 0x1_0000_0000) >>> 0;
  // Four independent words of key material, each a different mix of seed and name, expanded
  // through splitmix32 so that nearby seeds and similar names give unrelated states.
  const key = [lo, hi, hashString(name), hashString(name, 0x9747b28c)];
  const state = new Uint32Array(4);
  let acc = 0x6a09e667;
  for (let round = 0; round < 2; round++) {
    for (let i = 0; i < 4; i++) {
      acc = (acc + 0x9e3779b9 + key[i]) | 0;
      state[i] ^= fmix32(acc ^ state[(i + 3) & 3]);
    }
  }
  // xoshiro's one forbidden state; unreachable in practice but cheap to rule out.
  if ((state[0] | state[1] | state[2] | state[3]) === 0) state[0] = 1;
  return state;
}

/**
 * Square root from + * / only (Newton's method, fixed iteration count), so scale factors are
 * bit-identical everywhere. Accurate to an ulp or so, which is all a weight scale needs.
 */
export function exactSqrt(x: number): number {
  if (!(x >= 0) || !Number.isFinite(x)) throw new RangeError(`exactSqrt of ${x}`);
  if (x === 0) return 0;
  // Start within a factor of 2 by halving the binary exponent, then 8 quadratic steps
  // (far more than double precision needs from that start).
  let r = 1;
  let y = x;
  while (y >= 4) {
    y /= 4;
    r *= 2;
  }
  while (y < 1) {
    y *= 4;
    r /= 2;
  }
  for (let i = 0; i < 8; i++) r = 0.5 * (r + x / r);
  return r;
}

// A 16-bit uniform has mean 32767.5 and variance (65536² − 1)/12; the sum of four has mean
// 2·65535 and variance (65536² − 1)/3, so (sum − U16_MEAN4) · NORMAL_SCALE has unit variance.
const U16_MEAN4 = 2 * 65535;
const NORMAL_SCALE = exactSqrt(3 / (65536 * 65536 - 1));

/** A seeded xoshiro128** generator for occasional values; the bulk fill of weights (fillNormal) inlines it. */
export class Xoshiro128 {
  #s0: number;
  #s1: number;
  #s2: number;
  #s3: number;

  constructor(state: Uint32Array) {
    this.#s0 = state[0] | 0;
    this.#s1 = state[1] | 0;
    this.#s2 = state[2] | 0;
    this.#s3 = state[3] | 0;
  }

  static forTensor(seed: number, name: string): Xoshiro128 {
    return new Xoshiro128(seedState(seed, name));
  }

  /** The next 32 random bits as an unsigned integer. */
  nextU32(): number {
    const s1 = this.#s1;
    const m = Math.imul(s1, 5);
    const result = Math.imul((m << 7) | (m >>> 25), 9);
    const t = s1 << 9;
    this.#s2 ^= this.#s0;
    this.#s3 ^= this.#s1;
    this.#s1 ^= this.#s2;
    this.#s0 ^= this.#s3;
    this.#s2 ^= t;
    this.#s3 = (this.#s3 << 11) | (this.#s3 >>> 21);
    return result >>> 0;
  }

  /** Uniform in [0, 1) with 24 random bits (exact in float32). */
  nextFloat(): number {
    return (this.nextU32() >>> 8) * (1 / 16777216);
  }

  /** Approximately standard normal (Irwin–Hall of four 16-bit uniforms), see the module comment. */
  nextNormal(): number {
    const a = this.nextU32();
    const b = this.nextU32();
    return ((a & 0xffff) + (a >>> 16) + (b & 0xffff) + (b >>> 16) - U16_MEAN4) * NORMAL_SCALE;
  }
}

/**
 * Fills `out` with mean + std·z, z approximately standard normal, from the generator keyed by
 * (seed, name). The generator is inlined into locals: this loop is the whole cost of building a
 * synthetic checkpoint, and V8 keeps int32 locals in registers where object fields would spill.
 */
export function fillNormal(out: Float32Array, seed: number, name: string, std: number, mean = 0): Float32Array {
  const st = seedState(seed, name);
  let s0 = st[0] | 0;
  let s1 = st[1] | 0;
  let s2 = st[2] | 0;
  let s3 = st[3] | 0;
  const k = std * NORMAL_SCALE;
  const n = out.length;
  for (let i = 0; i < n; i++) {
    // two xoshiro128** steps give four 16-bit uniforms
    let m = Math.imul(s1, 5);
    const a = Math.imul((m << 7) | (m >>> 25), 9);
    let t = s1 << 9;
    s2 ^= s0;
    s3 ^= s1;
    s1 ^= s2;
    s0 ^= s3;
    s2 ^= t;
    s3 = (s3 << 11) | (s3 >>> 21);
    m = Math.imul(s1, 5);
    const b = Math.imul((m << 7) | (m >>> 25), 9);
    t = s1 << 9;
    s2 ^= s0;
    s3 ^= s1;
    s1 ^= s2;
    s0 ^= s3;
    s2 ^= t;
    s3 = (s3 << 11) | (s3 >>> 21);
    out[i] = mean + ((a & 0xffff) + (a >>> 16) + (b & 0xffff) + (b >>> 16) - U16_MEAN4) * k;
  }
  return out;
}

/**
 * Fills `out` with values uniform over [lo, hi] (24-bit resolution; float32 rounding may reach
 * `hi`) from the (seed, name) generator. No weights are built with it, so unlike fillNormal it
 * need not inline the generator.
 */
export function fillUniform(out: Float32Array, seed: number, name: string, lo: number, hi: number): Float32Array {
  const generator = Xoshiro128.forTensor(seed, name);
  const k = (hi - lo) * (1 / 16777216);
  for (let i = 0; i < out.length; i++) out[i] = lo + (generator.nextU32() >>> 8) * k;
  return out;
}
