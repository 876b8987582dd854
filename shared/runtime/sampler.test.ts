/**
 * The sampler against llama2.c run.c. Reference values come from a C harness that #includes
 * run.c (karpathy/llama2.c commit bd182289c596fa6059eb7b3b7c8ccd04b5c90fc3) unmodified, built
 * with `gcc -O2 -Dmain=run_main harness.c -lm`, and calls its random_u32/random_f32, and for
 * sampling repeats run.c's main-loop step (argmax, or logits /= T, softmax, then sample or
 * sample_topp) on synthetic logits that are exact in float32:
 *   logits[i] = ((i*7919 + step*104729) % modulus - floor(modulus/2)) / scale
 * End-to-end checks on stories260K (fixtures/stories260K-reference.json in shared/model/llama2c)
 * need the forward pass and live with it.
 */
import { describe, expect, it } from 'vitest';
import { argmax, createSampler, XorShift64Star } from './sampler.ts';

function syntheticLogits(n: number, step: number, modulus = 2001, scale = 128): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (((i * 7919 + step * 104729) % modulus) - Math.floor(modulus / 2)) / scale;
  return out;
}

function run(opts: { seed: number; temperature: number; topP: number; n: number; steps: number; modulus?: number; scale?: number }) {
  const sampler = createSampler({ vocabSize: opts.n, temperature: opts.temperature, topP: opts.topP, seed: opts.seed });
  return Array.from({ length: opts.steps }, (_, s) => sampler.sample(syntheticLogits(opts.n, s, opts.modulus, opts.scale)));
}

describe('XorShift64Star', () => {
  it('matches run.c random_u32 / random_f32 for seed 42', () => {
    // ./harness rng 42 8
    const u32 = [1456360119, 3359763283, 3393612768, 4054632243, 3283045847, 3589475362, 877116966, 1888976411];
    const f32 = [0.339085221, 0.782255828, 0.790136993, 0.944042623, 0.764393628, 0.835739851, 0.204219699, 0.439811587];
    const a = new XorShift64Star(42);
    expect(u32.map(() => a.nextU32())).toEqual(u32);
    const b = new XorShift64Star(42);
    // %.9g round-trips float32, so fround of the printed value is the exact float
    expect(f32.map(() => b.nextF32())).toEqual(f32.map(Math.fround));
  });

  it('wraps seeds to uint64 like C and uses the full 64-bit state', () => {
    // ./harness rng 1 4 and ./harness rng 18446744073709551615 4 (= (unsigned long long)-1)
    const one = new XorShift64Star(1);
    expect([1, 2, 3, 4].map(() => one.nextU32())).toEqual([1206177355, 2882512552, 3117485455, 1303648416]);
    const max = new XorShift64Star(-1);
    expect([1, 2, 3, 4].map(() => max.nextU32())).toEqual([4180462053, 2415166680, 879531507, 3310800028]);
    expect(new XorShift64Star(2n ** 64n - 1n).nextU32()).toBe(4180462053);
  });

  it('refuses seed 0, which xorshift would never leave', () => {
    expect(() => new XorShift64Star(0)).toThrow(expect.objectContaining({ name: 'UsageError' }));
  });
});

describe('createSampler', () => {
  it('is greedy at temperature 0, taking the first of equal maxima', () => {
    const sampler = createSampler({ vocabSize: 4, temperature: 0, topP: 0.9 });
    expect(sampler.sample(Float32Array.of(1, 3, 3, 2))).toBe(1);
    expect(argmax(Float32Array.of(-5, -1, -1))).toBe(1);
    // ./harness sample 42 0 0.9 512 10
    expect(run({ seed: 42, temperature: 0, topP: 0.9, n: 512, steps: 10 })).toEqual([259, 8, 322, 71, 385, 134, 448, 456, 205, 213]);
  });

  it('matches run.c top-p sampling (T 0.8, p 0.9, seed 42)', () => {
    // ./harness sample 42 0.8 0.9 512 40
    expect(run({ seed: 42, temperature: 0.8, topP: 0.9, n: 512, steps: 40 })).toEqual([
      24, 33, 88, 191, 457, 65, 48, 127, 17, 167, 504, 347, 121, 504, 347, 144, 481, 277, 358, 293, 466, 192, 317, 372, 121, 223,
      467, 334, 12, 256, 404, 153, 232, 383, 154, 115, 218, 60, 304, 382,
    ]);
  });

  it('matches run.c multinomial sampling when top-p is off (p >= 1 or p <= 0)', () => {
    // ./harness sample 42 1.0 1.0 512 40
    expect(run({ seed: 42, temperature: 1, topP: 1, n: 512, steps: 40 })).toEqual([
      167, 409, 395, 475, 386, 417, 95, 222, 158, 355, 222, 182, 449, 104, 41, 309, 152, 159, 501, 175, 230, 356, 199, 184, 168, 130,
      304, 362, 300, 399, 99, 109, 232, 479, 296, 326, 452, 272, 398, 265,
    ]);
    // ./harness sample 7 1.5 0 512 40
    expect(run({ seed: 7, temperature: 1.5, topP: 0, n: 512, steps: 40 })).toEqual([
      424, 480, 42, 48, 197, 206, 428, 83, 184, 404, 344, 371, 331, 461, 66, 167, 506, 442, 238, 387, 161, 123, 225, 281, 334, 11,
      256, 477, 341, 302, 98, 106, 304, 4, 390, 401, 311, 509, 473, 454,
    ]);
  });

  it('matches run.c on a 32,000-token vocabulary', () => {
    // ./harness sample 1234 0.8 0.5 32000 30 32003 4096
    expect(run({ seed: 1234, temperature: 0.8, topP: 0.5, n: 32000, steps: 30, modulus: 32003, scale: 4096 })).toEqual([
      28596, 6279, 27430, 30177, 23257, 31072, 13863, 25606, 274, 27297, 30141, 7355, 9213, 14033, 20005, 25896, 29625, 11232, 14064,
      8296, 22791, 20353, 29962, 7, 7365, 918, 13162, 12296, 22572, 18853,
    ]);
    // ./harness sample 99 0.5 0.95 32000 30 32003 4096
    expect(run({ seed: 99, temperature: 0.5, topP: 0.95, n: 32000, steps: 30, modulus: 32003, scale: 4096 })).toEqual([
      12144, 22880, 4281, 24341, 929, 18669, 3481, 30730, 30636, 10946, 30137, 9618, 4412, 24205, 3686, 1814, 12199, 9256, 19063, 4796,
      5482, 7926, 14601, 29423, 6678, 23905, 5063, 16507, 7219, 25953,
    ]);
    // ./harness sample 5 1 0.9 32000 30 32003 1024
    expect(run({ seed: 5, temperature: 1, topP: 0.9, n: 32000, steps: 30, modulus: 32003, scale: 1024 })).toEqual([
      18109, 21745, 14902, 6786, 22938, 26081, 23053, 23161, 22396, 18010, 16348, 16149, 14406, 17731, 27534, 3366, 15234, 8193, 19948,
      4481, 2629, 18882, 24959, 30446, 23514, 25287, 9634, 9944, 29317, 21815,
    ]);
  });

  it('is deterministic for a seed and differs between seeds', () => {
    const a = run({ seed: 3, temperature: 1, topP: 0.9, n: 512, steps: 50 });
    expect(run({ seed: 3, temperature: 1, topP: 0.9, n: 512, steps: 50 })).toEqual(a);
    expect(run({ seed: 4, temperature: 1, topP: 0.9, n: 512, steps: 50 })).not.toEqual(a);
  });

  it('leaves the logits untouched and checks their length', () => {
    const logits = syntheticLogits(512, 0);
    const copy = logits.slice();
    createSampler({ vocabSize: 512, temperature: 0.7, topP: 0.9, seed: 1 }).sample(logits);
    expect(logits).toEqual(copy);
    expect(() => createSampler({ vocabSize: 8, temperature: 1, topP: 0.9, seed: 1 }).sample(new Float32Array(7))).toThrow(
      expect.objectContaining({ name: 'UsageError' }),
    );
  });
});
