import { describe, expect, it } from 'vitest';
import { bf16BytesToF32, f16BitsToF32, f16BytesToF32, f32ToBf16Bits, f32ToF16Bits } from './float16.ts';

// Node 24 has Float16Array, an oracle where present (vitest may run on an older system Node).
const NativeF16 = (globalThis as unknown as { Float16Array?: new (b: ArrayBuffer) => ArrayLike<number> }).Float16Array;

/** Independent rounding oracle: the nearest finite binary16 by search, ties to the even pattern. */
function nearestF16(v: number): number {
  if (Number.isNaN(v)) return NaN;
  const a = Math.abs(v);
  const sign = v < 0 || Object.is(v, -0) ? -1 : 1;
  if (a >= 65520) return sign * Infinity; // halfway to 2^16 rounds to even, which is infinity
  let lo = 0;
  let hi = 0x7bff;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (f16BitsToF32(mid) <= a) lo = mid;
    else hi = mid - 1;
  }
  const below = f16BitsToF32(lo);
  const above = f16BitsToF32(lo + 1);
  const pick = a - below < above - a || (a - below === above - a && lo % 2 === 0) ? below : above;
  return sign * pick;
}

function le16(words: number[]): Uint8Array {
  const bytes = new Uint8Array(words.length * 2);
  words.forEach((w, i) => {
    bytes[2 * i] = w & 0xff;
    bytes[2 * i + 1] = w >> 8;
  });
  return bytes;
}

describe('f16 -> f32', () => {
  it.skipIf(!NativeF16)('matches Float16Array for all 65536 bit patterns (subnormals, inf, nan included)', () => {
    const words = Array.from({ length: 65536 }, (_, i) => i);
    const native = new NativeF16!(new Uint16Array(words).buffer);
    const out = new Float32Array(65536);
    f16BytesToF32(le16(words), out);
    for (let h = 0; h < 65536; h++) {
      expect(Object.is(out[h], native[h]) || (Number.isNaN(out[h]) && Number.isNaN(native[h]))).toBe(true);
      expect(f16BitsToF32(h)).toBe(out[h]);
    }
  });

  it('decodes every exponent class consistently', () => {
    // Independent of the formula: consecutive finite patterns are strictly increasing and evenly spaced per binade.
    for (let h = 1; h < 0x7c00; h++) expect(f16BitsToF32(h)).toBeGreaterThan(f16BitsToF32(h - 1));
    for (let h = 1; h < 0x400; h++) expect(f16BitsToF32(h)).toBe(h * 2 ** -24);
  });

  it('decodes named values', () => {
    expect(f16BitsToF32(0x3c00)).toBe(1);
    expect(f16BitsToF32(0xc000)).toBe(-2);
    expect(f16BitsToF32(0x0001)).toBe(2 ** -24); // smallest subnormal
    expect(f16BitsToF32(0x7bff)).toBe(65504);
    expect(f16BitsToF32(0x7c00)).toBe(Infinity);
    expect(f16BitsToF32(0xfc00)).toBe(-Infinity);
    expect(f16BitsToF32(0x7e00)).toBeNaN();
    expect(Object.is(f16BitsToF32(0x8000), -0)).toBe(true);
  });

  it('reads from an odd byte offset', () => {
    const bytes = new Uint8Array(5);
    bytes.set(le16([0x3c00, 0x4000]), 1);
    const out = new Float32Array(2);
    f16BytesToF32(bytes.subarray(1), out);
    expect([...out]).toEqual([1, 2]);
  });
});

describe('f32 -> f16', () => {
  it('rounds to the nearest binary16, ties to even, overflowing to infinity', () => {
    const values = [0, -0, 1, -1, 0.1, 1 / 3, 65504, 65519, 65520, 1e6, -1e6, 2 ** -24, 2 ** -25, 2 ** -25 * 1.0001, 3 * 2 ** -26, 2 ** -14, 2 ** -14 - 2 ** -25, 1e-8, Infinity, -Infinity];
    let seed = 7;
    for (let i = 0; i < 2000; i++) {
      seed = (seed * 1103515245 + 12345) >>> 0;
      values.push(((seed / 2 ** 32) * 2 - 1) * 2 ** ((seed % 40) - 28));
    }
    for (const v of values) {
      const expected = nearestF16(Math.fround(v));
      expect(Object.is(f16BitsToF32(f32ToF16Bits(v)), expected), `value ${v}`).toBe(true);
    }
    expect(f16BitsToF32(f32ToF16Bits(NaN))).toBeNaN();
  });
});

describe('bf16', () => {
  it('round-trips and rounds half to even', () => {
    const out = new Float32Array(6);
    const words = [1, -2.5, 3.14159, 1e30, Infinity, NaN].map(f32ToBf16Bits);
    bf16BytesToF32(le16(words), out);
    expect(out[0]).toBe(1);
    expect(out[1]).toBe(-2.5);
    expect(out[2]).toBeCloseTo(3.140625, 6);
    expect(out[3]).toBeCloseTo(1e30, -27);
    expect(out[4]).toBe(Infinity);
    expect(out[5]).toBeNaN();
    // 1 + 2^-8 is exactly halfway between two bf16 values: ties go to the even one (1).
    expect(f32ToBf16Bits(1 + 2 ** -8)).toBe(0x3f80);
    expect(f32ToBf16Bits(1 + 3 * 2 ** -8)).toBe(0x3f82);
  });

  it('keeps bf16 subnormals exact', () => {
    const out = new Float32Array(1);
    bf16BytesToF32(le16([0x0001]), out);
    expect(out[0]).toBe(2 ** -133);
  });
});
