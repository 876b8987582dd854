import { describe, expect, it } from 'vitest';
import {
  compareFingerprint,
  decodeFingerprint,
  encodeFingerprint,
  FINGERPRINT_TOP_K,
  fingerprintHidden,
  fromF16Bits,
  thresholdsFor,
  toF16Bits,
} from './fingerprint.ts';
import { seededNormal } from '../../testkit/seeded-steps.ts';

/** Reproducible Gaussian rows. */
function gaussian(n: number, seed: number): Float32Array {
  const normal = seededNormal(seed);
  return Float32Array.from({ length: n }, () => normal());
}

const WIDTH = 256;

describe('fingerprintHidden', () => {
  it('lists each row\'s k largest magnitudes by decreasing |value|, with their signed values', () => {
    const data = gaussian(3 * WIDTH, 1);
    const fp = fingerprintHidden(data, 3, WIDTH);
    expect(fp.k).toBe(FINGERPRINT_TOP_K);
    for (let r = 0; r < 3; r++) {
      const row = Array.from(data.subarray(r * WIDTH, (r + 1) * WIDTH), (v, i) => ({ v, i }));
      const expected = row.sort((a, b) => Math.abs(b.v) - Math.abs(a.v) || a.i - b.i).slice(0, fp.k);
      expect(Array.from(fp.indices.subarray(r * fp.k, (r + 1) * fp.k))).toEqual(expected.map((e) => e.i));
      fp.values.subarray(r * fp.k, (r + 1) * fp.k).forEach((v, j) => expect(Math.abs(v - expected[j].v)).toBeLessThanOrEqual(Math.abs(expected[j].v) * 2 ** -11));
    }
  });

  it('takes the lower index first among equal magnitudes, and caps k at the width', () => {
    const fp = fingerprintHidden(Float32Array.of(1, -2, 2, 0.5), 1, 4, 2);
    expect(Array.from(fp.indices)).toEqual([1, 2]);
    expect(Array.from(fp.values)).toEqual([-2, 2]);
    expect(fingerprintHidden(Float32Array.of(3, 1), 1, 2).k).toBe(2);
  });

  it('refuses data that is not rows × width', () => {
    expect(() => fingerprintHidden(new Float32Array(10), 3, 4)).toThrow(expect.objectContaining({ name: 'FingerprintShapeError' }));
  });
});

describe('f16 values', () => {
  it('round to nearest even and saturate beyond ±65504', () => {
    expect(fromF16Bits(toF16Bits(1 + 2 ** -11))).toBe(1); // tie, rounds to even
    expect(fromF16Bits(toF16Bits(1 + 3 * 2 ** -11))).toBe(1 + 2 ** -9); // tie, rounds up to even
    expect(fromF16Bits(toF16Bits(-3.140625))).toBe(-3.140625);
    expect(fromF16Bits(toF16Bits(1e6))).toBe(65504);
    expect(fromF16Bits(toF16Bits(2 ** -24))).toBe(2 ** -24);
    expect(fromF16Bits(toF16Bits(2 ** -26))).toBe(0);
    expect(fromF16Bits(toF16Bits(NaN))).toBeNaN();
  });
});

describe('fingerprint encoding', () => {
  it('round-trips in 16 + 4·k bytes a row', () => {
    const fp = fingerprintHidden(gaussian(5 * WIDTH, 2), 5, WIDTH);
    const bytes = encodeFingerprint(fp);
    expect(bytes.byteLength).toBe(16 + 5 * 4 * FINGERPRINT_TOP_K);
    expect(decodeFingerprint(bytes)).toEqual(fp);
  });

  it.each([
    ['a short buffer', (b: Uint8Array) => b.subarray(0, 10), /shorter than its header/],
    ['bad magic', (b: Uint8Array) => (b.set([0], 0), b), /bad magic/],
    ['a missing row', (b: Uint8Array) => b.subarray(0, b.byteLength - 4), /need \d+ bytes/],
    ['an index past the width', (b: Uint8Array) => (b.set([0xff, 0xff], 16), b), /outside width/],
    ['an unknown value encoding', (b: Uint8Array) => (b.set([7], 5), b), /value encoding 7/],
  ])('names the problem in %s', (_, damage, message) => {
    const bytes = encodeFingerprint(fingerprintHidden(gaussian(2 * WIDTH, 3), 2, WIDTH));
    expect(() => decodeFingerprint(damage(bytes.slice()))).toThrow(expect.objectContaining({ name: 'FingerprintFormatError', message: expect.stringMatching(message) }));
  });
});

describe('compareFingerprint', () => {
  const data = gaussian(4 * WIDTH, 4);
  const fp = fingerprintHidden(data, 4, WIDTH);

  it('passes the same hidden state with full marks and positive margins', () => {
    const v = compareFingerprint(fp, data, thresholdsFor('f32'));
    expect(v.ok).toBe(true);
    expect(v.worstMatch.matchFraction).toBe(1);
    expect(v.worstValue.valueError).toBe(0);
    expect(v.margins.matchFraction).toBeCloseTo(1 - thresholdsFor('f32').minMatchFraction);
  });

  it('passes float-level noise of a different summation order', () => {
    const replay = data.map((x, i) => x * (1 + 1e-6 * Math.sin(i)));
    expect(compareFingerprint(fp, replay).ok).toBe(true);
  });

  it('fails a row changed by noise of 1% of its RMS and names that row', () => {
    const replay = data.slice();
    const noise = gaussian(WIDTH, 5);
    for (let j = 0; j < WIDTH; j++) replay[2 * WIDTH + j] += 0.01 * noise[j];
    const v = compareFingerprint(fp, replay);
    expect(v.ok).toBe(false);
    expect(v.worstValue.row).toBe(2);
    expect(v.margins.valueError).toBeLessThan(0);
  });

  it('fails a replay whose top positions differ', () => {
    const v = compareFingerprint(fp, gaussian(4 * WIDTH, 99));
    expect(v.ok).toBe(false);
    expect(v.worstMatch.matchFraction).toBeLessThan(0.5);
    expect(v.margins.matchFraction).toBeLessThan(0);
  });

  it('fails a replay holding NaN', () => {
    const replay = data.slice();
    replay[fp.indices[0]] = NaN;
    expect(compareFingerprint(fp, replay).ok).toBe(false);
  });

  it('passes an honest value beyond the f16 range', () => {
    const big = Float32Array.of(1e6, 1, -2, 3);
    expect(compareFingerprint(fingerprintHidden(big, 1, 4, 2), big).ok).toBe(true);
  });

  it('refuses a replay of another shape', () => {
    expect(() => compareFingerprint(fp, new Float32Array(3 * WIDTH))).toThrow(expect.objectContaining({ name: 'FingerprintShapeError' }));
  });
});
