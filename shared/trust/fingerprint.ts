/**
 * Activation fingerprints: a tolerant summary of a stage's output hidden state that a validator
 * can check against its own replay of the layers (TOPLOC, Prime Intellect, arXiv 2501.16007).
 * Per row (token): the k positions of largest |value| and their values. A serving stage
 * fingerprints every step's output (the step journal, shared/trust/step-journal.ts); the
 * validator replays the challenged steps and calls compareFingerprint, which tolerates the
 * float noise of a different execution provider, thread count or prefill-versus-decode, and
 * fails wrong weights, skipped layers, added noise and stale outputs (calibrated in
 * fingerprint-calibration.test.ts).
 *
 * Encoding (binary, little-endian, the header binary-header.ts's):
 *   0 magic "IMFP"  4 version u8 (1)  5 value encoding u8 (1 = f16)  6 k u16  8 rows u32  12 width u32
 *   16 indices u16 × rows × k  then values f16 × rows × k
 * Each row lists its entries by decreasing |value| (ties: lower index first).
 */
import { InfermeshError } from '../errors.ts';
import { binaryFormat, readDocument, startDocument } from '../protocol/binary-header.ts';

/** Bytes that are not a fingerprint (bad magic, version, sizes, indices). */
export class FingerprintFormatError extends InfermeshError {
  override name = 'FingerprintFormatError';
}

/** A replay whose size does not match the fingerprint's rows × width: nothing to compare. */
export class FingerprintShapeError extends InfermeshError {
  override name = 'FingerprintShapeError';
}

/**
 * 16 positions per row: the check is the overlap of two top-k sets plus the error at those
 * positions, and with 16 a cheat that only gets the few "massive activation" channels right
 * (the same handful in every row of a Llama) still misses most of the set. On stories260K
 * (width 64) it is a quarter of the row, the hardest case for index overlap; on a 4096-wide
 * model it is 0.4%, so the proof stays 64 bytes a row whatever the width.
 */
export const FINGERPRINT_TOP_K = 16;
/**
 * Values are stored as IEEE f16: 2 bytes like bf16, but 10 mantissa bits instead of 7, so the
 * rounding the comparison must forgive (half an f16 step, at most 2^-11 of the value) is 8×
 * smaller and noise down to about 0.3% of the row RMS stays visible; f32 would double the
 * proof bytes to see noise no cheat would bother to add. Hidden states beyond the f16 range
 * (±65504) are saturated, and compareFingerprint clamps the replay the same way, so an honest
 * outlier cannot fail.
 */
export const VALUE_ENCODING_F16 = 1;
const FINGERPRINT = binaryFormat({ magic: 'IMFP', version: 1, noun: 'fingerprint', error: FingerprintFormatError });
const HEADER_BYTES = 16;
const F16_MAX = 65504;

export interface Fingerprint {
  rows: number;
  width: number;
  k: number;
  /** rows × k positions, each row by decreasing |value| */
  indices: Uint16Array;
  /** rows × k values at those positions, already rounded to f16 (what the encoding carries) */
  values: Float32Array;
}

export interface FingerprintThresholds {
  /** a row fails when fewer than this fraction of its committed positions are in the replay's top-k */
  minMatchFraction: number;
  /**
   * a row fails when the mean over its positions of |committed − replay| beyond f16 rounding,
   * over the replay row's RMS, exceeds this
   */
  maxValueError: number;
}

export interface FingerprintVerdict {
  ok: boolean;
  /** the row with the fewest matching positions and that fraction */
  worstMatch: { row: number; matchFraction: number };
  /** the row with the largest value error and that error */
  worstValue: { row: number; valueError: number };
  /** distance of the worst figures from their thresholds: positive passes, negative fails */
  margins: { matchFraction: number; valueError: number };
}

/**
 * Thresholds per package dtype, between the honest maxima and cheat minima measured by
 * fingerprint-calibration.test.ts (stories260K, stage = layers 1..3 of 5, 4 requests of a
 * prompt + 24 decode steps = 100 steps; honest replays: one prefill with onnxruntime's default
 * threads, with 1 thread, and the float64 TypeScript reference standing in for another EP).
 * Value errors are the excess beyond f16 rounding, over the row RMS (compareFingerprint).
 *
 *        honest worst (match, value)   closest non-noise cheat        noise σ×RMS: best value error
 *   f32  1.00, 1.8e-8 (0 for ORT)      q4 weights: 1.00, 0.062        0.3%: 0.00088   0.5%: 0.0016
 *   q8   1.00, 0 (all three)           q4 weights: 1.00, 0.067        0.3%: 0.00091   0.5%: 0.0017
 *   q4   1.00, 0 (all three)           q8 weights: 1.00, 0.063        0.3%: 0.0012    0.5%: 0.0022
 * Other cheats: another model ≥ 0.38, layers reordered ≥ 0.10, a skipped layer ≥ 0.20, the
 * previous step's output ≥ 0.55 (match ≤ 0.69).
 *
 * Across execution providers (e2e/trust-calibration.test.ts: 2,528 honest steps of stages
 * 0..1 and 1..3 served by WebGPU, WASM and Node CPU engines, f32 and q4, against the Node
 * prefill replay): CPU and WASM stay below 1e-7; WebGPU (SwiftShader) reaches 1.0e-4 (f32)
 * and 1.6e-4 (q4) with one of 16 top-k positions swapped (match 0.938).
 *
 * maxValueError 1e-3 sits over 10 000× above every honest CPU or WASM replay and about 6×
 * above honest WebGPU, and still fails every step with noise of 0.5% of the RMS (the smallest
 * σ of the sweep caught on all 100 steps; at 0.3%, 99-100 of 100; at 0.2%, about 70). WebGPU's
 * error comes from summation order and its own exp/sin/cos and will grow with deeper stages and
 * wider models: re-measure there before tightening. The dtypes share the threshold. minMatchFraction 0.8 lets 3 of 16 positions swap at a near-tie
 * top-k boundary; honest rows matched 16 of 16 here. On this width-64 model the overlap alone
 * does not separate cheats (a quarter of the row is in the top-16), the value error does;
 * on wide models the overlap is the cheaper first filter.
 */
const THRESHOLDS: Record<'f32' | 'q4' | 'q8', FingerprintThresholds> = {
  f32: { minMatchFraction: 0.8, maxValueError: 1e-3 },
  q8: { minMatchFraction: 0.8, maxValueError: 1e-3 },
  q4: { minMatchFraction: 0.8, maxValueError: 1e-3 },
};

export function thresholdsFor(dtype: 'f32' | 'q4' | 'q8'): FingerprintThresholds {
  return THRESHOLDS[dtype];
}

// f16 conversion by bit manipulation: Float16Array is not in every browser or Node yet.
const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** f32 → f16 bits, rounding to nearest even, saturating finite overflow to ±65504. */
export function toF16Bits(x: number): number {
  f32Scratch[0] = x;
  const b = u32Scratch[0];
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  let mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 112; // rebias 127 → 15
  if (e >= 0x1f) return sign | 0x7bff;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && half & 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++;
  if ((half & 0x7fff) >= 0x7c00) return sign | 0x7bff;
  return sign | half;
}

export function fromF16Bits(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return sign * m * 2 ** -24;
  if (e === 0x1f) return m ? NaN : sign * Infinity;
  return sign * (1 + m / 1024) * 2 ** (e - 15);
}

/**
 * Half the f16 spacing at |v|: how far the true output may lie from its stored value. The
 * comparison forgives exactly this much, so the encoding costs no sensitivity and a row with
 * massive activations (values ~sqrt(width) × RMS, as in Llama) does not fail on rounding alone.
 */
function halfUlpF16(v: number): number {
  const e = (toF16Bits(v) >>> 10) & 0x1f;
  return 2 ** (Math.max(e, 1) - 26);
}

/**
 * Writes the k positions of largest |value| of data[offset..offset+width) into idx/mag at `at`,
 * by decreasing magnitude. Insertion into a k-long sorted list: O(width) compares plus
 * O(k log(width/k)) expected insertions, no allocation. NaN ranks above everything so it shows.
 */
function topK(data: Float32Array, offset: number, width: number, k: number, idx: Uint16Array | Int32Array, mag: Float32Array | Float64Array, at: number): void {
  let count = 0;
  for (let j = 0; j < width; j++) {
    const x = data[offset + j];
    const a = x !== x ? Infinity : Math.abs(x);
    if (count === k && !(a > mag[at + k - 1])) continue;
    let p = count < k ? count++ : k - 1;
    while (p > 0 && a > mag[at + p - 1]) {
      mag[at + p] = mag[at + p - 1];
      idx[at + p] = idx[at + p - 1];
      p--;
    }
    mag[at + p] = a;
    idx[at + p] = j;
  }
}

/** Fingerprints a [rows, width] float32 hidden state; runs on the serving stage for every step. */
export function fingerprintHidden(data: Float32Array, rows: number, width: number, k = FINGERPRINT_TOP_K): Fingerprint {
  if (!Number.isInteger(rows) || rows < 1 || !Number.isInteger(width) || width < 1 || width > 0xffff) {
    throw new FingerprintShapeError(`cannot fingerprint ${rows} rows of width ${width} (rows ≥ 1, width 1..65535)`);
  }
  if (data.length !== rows * width) throw new FingerprintShapeError(`${data.length} values are not ${rows} rows of ${width}`);
  const kk = Math.min(k, width);
  const indices = new Uint16Array(rows * kk);
  const values = new Float32Array(rows * kk);
  // `values` doubles as the magnitude list while selecting, then takes the signed f16 values.
  for (let r = 0; r < rows; r++) {
    topK(data, r * width, width, kk, indices, values, r * kk);
    for (let i = r * kk; i < (r + 1) * kk; i++) values[i] = fromF16Bits(toF16Bits(data[r * width + indices[i]]));
  }
  return { rows, width, k: kk, indices, values };
}

export function encodeFingerprint(fp: Fingerprint): Uint8Array {
  const n = fp.rows * fp.k;
  if (fp.indices.length !== n || fp.values.length !== n) throw new FingerprintFormatError(`fingerprint of ${fp.rows}×${fp.k} holds ${fp.indices.length} indices and ${fp.values.length} values`);
  const { bytes, view } = startDocument(FINGERPRINT, HEADER_BYTES + 4 * n);
  view.setUint8(5, VALUE_ENCODING_F16);
  view.setUint16(6, fp.k, true);
  view.setUint32(8, fp.rows, true);
  view.setUint32(12, fp.width, true);
  for (let i = 0; i < n; i++) {
    view.setUint16(HEADER_BYTES + 2 * i, fp.indices[i], true);
    view.setUint16(HEADER_BYTES + 2 * n + 2 * i, toF16Bits(fp.values[i]), true);
  }
  return bytes;
}

export function decodeFingerprint(bytes: Uint8Array): Fingerprint {
  const header = readDocument(FINGERPRINT, bytes, HEADER_BYTES);
  const encoding = header.u8('the value encoding');
  if (encoding !== VALUE_ENCODING_F16) throw new FingerprintFormatError(`unknown value encoding ${encoding}`);
  const k = header.u16('k');
  const rows = header.u32('the rows');
  const width = header.u32('the width');
  const { view } = header;
  if (k === 0 || rows === 0 || width === 0 || k > width || width > 0xffff) throw new FingerprintFormatError(`bad shape: ${rows} rows, width ${width}, k ${k}`);
  const n = rows * k;
  if (bytes.byteLength !== HEADER_BYTES + 4 * n) throw new FingerprintFormatError(`${rows} rows of k ${k} need ${HEADER_BYTES + 4 * n} bytes, got ${bytes.byteLength}`);
  const indices = new Uint16Array(n);
  const values = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    indices[i] = view.getUint16(HEADER_BYTES + 2 * i, true);
    if (indices[i] >= width) throw new FingerprintFormatError(`index ${indices[i]} of row ${Math.floor(i / k)} is outside width ${width}`);
    values[i] = fromF16Bits(view.getUint16(HEADER_BYTES + 2 * n + 2 * i, true));
  }
  return { rows, width, k, indices, values };
}

/**
 * Checks a committed fingerprint against the validator's replay of the same rows, wherever the
 * replay ran. The value error is relative to the replay row's RMS: it weighs every position of
 * the row, so unlike the k-th largest value it does not jump when the top-k boundary is flat,
 * and it is the scale RMSNorm reads the state at, so one threshold fits every layer and model.
 */
export function compareFingerprint(committed: Fingerprint, replayed: Float32Array, thresholds: FingerprintThresholds = thresholdsFor('f32')): FingerprintVerdict {
  const { rows, width, k } = committed;
  if (replayed.length !== rows * width) throw new FingerprintShapeError(`replay of ${replayed.length} values does not match ${rows} rows of ${width}`);
  const replayIdx = new Int32Array(k);
  const replayMag = new Float64Array(k);
  const inReplay = new Uint8Array(width);
  let worstMatch = { row: 0, matchFraction: Infinity };
  let worstValue = { row: 0, valueError: -Infinity };
  for (let r = 0; r < rows; r++) {
    const base = r * width;
    topK(replayed, base, width, k, replayIdx, replayMag, 0);
    for (let i = 0; i < k; i++) inReplay[replayIdx[i]] = 1;
    let sumSq = 0;
    for (let j = 0; j < width; j++) sumSq += replayed[base + j] * replayed[base + j];
    const rms = Math.max(Math.sqrt(sumSq / width), 1e-30);
    let matched = 0;
    let err = 0;
    for (let i = r * k; i < (r + 1) * k; i++) {
      const at = committed.indices[i];
      if (at >= width) {
        err = Infinity;
        continue;
      }
      matched += inReplay[at];
      const want = Math.min(F16_MAX, Math.max(-F16_MAX, replayed[base + at]));
      const d = Math.abs(committed.values[i] - want) - halfUlpF16(committed.values[i]);
      err += d === d ? Math.max(0, d) : Infinity;
    }
    for (let i = 0; i < k; i++) inReplay[replayIdx[i]] = 0;
    const matchFraction = matched / k;
    const valueError = rms === rms ? err / k / rms : Infinity;
    if (matchFraction < worstMatch.matchFraction) worstMatch = { row: r, matchFraction };
    if (!(valueError <= worstValue.valueError)) worstValue = { row: r, valueError };
  }
  const margins = {
    matchFraction: worstMatch.matchFraction - thresholds.minMatchFraction,
    valueError: thresholds.maxValueError - worstValue.valueError,
  };
  return { ok: margins.matchFraction >= 0 && margins.valueError >= 0, worstMatch, worstValue, margins };
}
