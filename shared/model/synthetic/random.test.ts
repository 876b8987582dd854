/**
 * The generator behind synthetic checkpoints: correct xoshiro128**, per-tensor independence,
 * and pinned output bits, so a change that would make synthetic packages differ between
 * machines or releases fails here first.
 */
import { describe, expect, it } from 'vitest';
import { Xoshiro128, exactSqrt, fillNormal, fillUniform, seedState } from './random.ts';

const bitsOf = (a: Float32Array) => Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length)).map((x) => x.toString(16));

describe('xoshiro128**', () => {
  it('matches the reference implementation for state {1, 2, 3, 4}', () => {
    const g = new Xoshiro128(new Uint32Array([1, 2, 3, 4]));
    const out = Array.from({ length: 8 }, () => g.nextU32());
    expect(out).toEqual([11520, 0, 5927040, 70819200, 2031721883, 1637235492, 1287239034, 3734860849]);
  });

  it('seeds depend on both halves of the seed and on the name', () => {
    const key = (seed: number, name: string) => Array.from(seedState(seed, name)).join(',');
    const keys = [key(1, 'embed'), key(2, 'embed'), key(2 ** 32 + 1, 'embed'), key(-1, 'embed'), key(1, 'norm'), key(1, 'embee')];
    expect(new Set(keys).size).toBe(keys.length);
    expect(key(1, 'embed')).toBe(key(1, 'embed'));
    expect(() => seedState(1.5, 'x')).toThrow(RangeError);
  });

  it('pins the generated bits (same bytes on every platform)', () => {
    const g = Xoshiro128.forTensor(1, 'embed');
    expect(Array.from({ length: 4 }, () => g.nextU32().toString(16))).toEqual(['4dd0e46e', '84604184', 'f2a2bc5c', '8745419d']);
    expect(bitsOf(fillNormal(new Float32Array(8), 1, 'embed', 1))).toEqual([
      'bd59ce2e', '3f4fa4a4', '3e6671a7', '3e716e80', '3e0e0736', 'bf86dcf8', '3f310e0a', 'bf2701f1',
    ]);
    expect(Array.from(fillUniform(new Float32Array(2), 1, 'embed', 0, 1))).toEqual([0.3039686679840088, 0.5170937180519104]);
  });

  it('bulk fills agree with the generator class', () => {
    const a = fillNormal(new Float32Array(100), 9, 'layers.3.wq', 0.5, 0.25);
    const g = Xoshiro128.forTensor(9, 'layers.3.wq');
    const b = Float32Array.from({ length: 100 }, () => 0.25 + g.nextNormal() * 0.5);
    // the class multiplies by the scale after the sum; the fill folds std into the scale, so
    // allow float32 rounding differences only
    for (let i = 0; i < 100; i++) expect(a[i]).toBeCloseTo(b[i], 6);
  });
});

describe('distributions', () => {
  it('fillNormal has the requested mean and std and bounded tails', () => {
    const n = 1 << 20;
    const x = fillNormal(new Float32Array(n), 3, 't', 2, -1);
    let s = 0;
    let s2 = 0;
    let max = 0;
    for (const v of x) {
      s += v;
      s2 += v * v;
      max = Math.max(max, Math.abs(v + 1));
    }
    const mean = s / n;
    const std = Math.sqrt(s2 / n - mean * mean);
    expect(mean).toBeCloseTo(-1, 2);
    expect(std).toBeGreaterThan(1.99);
    expect(std).toBeLessThan(2.01);
    // Irwin–Hall(4) reaches ±2√3 σ at most, and at 1M samples gets well past 3σ
    expect(max).toBeLessThanOrEqual(2 * 2 * Math.sqrt(3) + 1e-5);
    expect(max).toBeGreaterThan(2 * 3);
  });

  it('fillUniform stays in range with the right mean', () => {
    const x = fillUniform(new Float32Array(1 << 16), 5, 'u', -3, 5);
    let s = 0;
    let min = Infinity;
    let max = -Infinity;
    for (const v of x) {
      s += v;
      min = Math.min(min, v);
      max = Math.max(max, v);
    }
    expect(min).toBeGreaterThanOrEqual(-3);
    expect(max).toBeLessThanOrEqual(5);
    expect(s / x.length).toBeCloseTo(1, 1);
  });

  it('exactSqrt agrees with Math.sqrt to an ulp', () => {
    for (const x of [1e-12, 0.5, 2, 3, 768, 2048 * 44, 12345.678, 1e20]) {
      expect(Math.abs(exactSqrt(x) - Math.sqrt(x)) / Math.sqrt(x)).toBeLessThan(3e-16);
    }
    expect(exactSqrt(0)).toBe(0);
    expect(exactSqrt(4)).toBe(2);
  });
});
