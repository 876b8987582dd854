/**
 * Half-precision conversions for safetensors weights: IEEE binary16 (F16) and bfloat16 (BF16)
 * to float32 for reading, and float32 back to both for the test writer. Written by hand
 * (not Float16Array) so the reader also runs in browsers and Node versions without it.
 */

/** True on every platform we run on; safetensors bytes are little-endian. */
const HOST_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

let f16Table: Float32Array | null = null;

/** Exact float32 value of one binary16 bit pattern, including subnormals, infinities and NaN. */
export function f16BitsToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24; // zero and subnormals: no implicit leading 1
  if (exp === 0x1f) return mant === 0 ? sign * Infinity : NaN;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** A 64K-entry table (256 KiB) makes converting a multi-GB checkpoint a lookup per element. */
function table(): Float32Array {
  if (!f16Table) {
    f16Table = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) f16Table[h] = f16BitsToF32(h);
  }
  return f16Table;
}

/** Reads `count` little-endian 16-bit words starting at `bytes[0]`, whatever its alignment. */
function words16(bytes: Uint8Array, count: number): Uint16Array {
  if (HOST_LITTLE_ENDIAN && bytes.byteOffset % 2 === 0) return new Uint16Array(bytes.buffer, bytes.byteOffset, count);
  const out = new Uint16Array(count);
  for (let i = 0; i < count; i++) out[i] = bytes[2 * i] | (bytes[2 * i + 1] << 8);
  return out;
}

/** Converts little-endian F16 bytes into `out[offset...]`. */
export function f16BytesToF32(bytes: Uint8Array, out: Float32Array, offset = 0): void {
  const n = bytes.byteLength >> 1;
  const w = words16(bytes, n);
  const t = table();
  for (let i = 0; i < n; i++) out[offset + i] = t[w[i]];
}

/** Converts little-endian BF16 bytes into `out[offset...]`: bf16 is the top half of a float32, so this is exact. */
export function bf16BytesToF32(bytes: Uint8Array, out: Float32Array, offset = 0): void {
  const n = bytes.byteLength >> 1;
  const w = words16(bytes, n);
  const bits = new Uint32Array(out.buffer, out.byteOffset + offset * 4, n);
  for (let i = 0; i < n; i++) bits[i] = w[i] << 16;
}

/** Converts little-endian F32 bytes into `out[offset...]`. */
export function f32BytesToF32(bytes: Uint8Array, out: Float32Array, offset = 0): void {
  const n = bytes.byteLength >> 2;
  if (HOST_LITTLE_ENDIAN) {
    // Copying bytes sidesteps the 4-byte alignment a Float32Array view would need.
    new Uint8Array(out.buffer, out.byteOffset + offset * 4, n * 4).set(bytes.subarray(0, n * 4));
    return;
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 0; i < n; i++) out[offset + i] = view.getFloat32(4 * i, true);
}

const scratch = new DataView(new ArrayBuffer(4));

function f32Bits(x: number): number {
  scratch.setFloat32(0, x);
  return scratch.getUint32(0);
}

/** Nearest binary16 bit pattern (round half to even), overflowing to infinity like hardware casts. */
export function f32ToF16Bits(x: number): number {
  const bits = f32Bits(x);
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  const mant = bits & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0); // inf, or a quiet NaN
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // Subnormal (or underflow to zero): shift the full significand, then round half to even.
    if (e < -10) return sign;
    const full = mant | 0x800000;
    const shift = 14 - e;
    let half = full >>> shift;
    const rem = full & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && half & 1)) half++;
    return sign | half; // a carry into the exponent bits yields the smallest normal, which is right
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && h & 1)) h++; // a carry may round up to infinity, which is right
  return sign | h;
}

/** Nearest bfloat16 bit pattern (round half to even); NaN stays a quiet NaN. */
export function f32ToBf16Bits(x: number): number {
  const bits = f32Bits(x);
  if ((bits & 0x7f800000) === 0x7f800000 && bits & 0x7fffff) return ((bits >>> 16) | 0x40) & 0xffff;
  return ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff;
}
