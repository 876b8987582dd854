/**
 * Writes safetensors bytes in memory, for tests that hand-build checkpoints (and for
 * deliberately broken files). Isomorphic: returns a Uint8Array, the caller decides where it goes.
 * Layout follows the reference writer: header JSON padded with spaces to 8 bytes, tensors in
 * insertion order, packed back to back.
 */
import { f32ToBf16Bits, f32ToF16Bits } from '../shared/model/huggingface/float16.ts';

export type WritableDtype = 'F32' | 'F16' | 'BF16';

export type WritableTensor =
  /** Float values, converted to `dtype` (default F32). */
  | { dtype?: WritableDtype; shape: number[]; data: ArrayLike<number> }
  /** Raw little-endian bytes under any dtype name, for files the reader should reject. */
  | { dtype: string; shape: number[]; bytes: Uint8Array };

export function encodeTensorBytes(dtype: WritableDtype, data: ArrayLike<number>): Uint8Array {
  const n = data.length;
  if (dtype === 'F32') {
    const bytes = new Uint8Array(n * 4);
    const view = new DataView(bytes.buffer);
    for (let i = 0; i < n; i++) view.setFloat32(4 * i, data[i], true);
    return bytes;
  }
  const bytes = new Uint8Array(n * 2);
  const view = new DataView(bytes.buffer);
  const toBits = dtype === 'F16' ? f32ToF16Bits : f32ToBf16Bits;
  for (let i = 0; i < n; i++) view.setUint16(2 * i, toBits(data[i]), true);
  return bytes;
}

export type SafetensorsHeader = Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;

/**
 * Encodes named tensors as one safetensors file. Throws if data length does not match shape.
 * `editHeader` lets a test rewrite the header before it is written (to make it lie).
 */
export function encodeSafetensors(
  tensors: Record<string, WritableTensor>,
  metadata?: Record<string, string>,
  editHeader?: (header: SafetensorsHeader, dataSize: number) => void,
): Uint8Array {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  const blobs: Uint8Array[] = [];
  let offset = 0;
  for (const [name, t] of Object.entries(tensors)) {
    let bytes: Uint8Array;
    const dtype = t.dtype ?? 'F32';
    if ('bytes' in t) {
      bytes = t.bytes;
    } else {
      const numel = t.shape.reduce((a, b) => a * b, 1);
      if (t.data.length !== numel) {
        throw new Error(`encodeSafetensors: tensor ${name} has ${t.data.length} values for shape [${t.shape.join(', ')}]`);
      }
      bytes = encodeTensorBytes(dtype as WritableDtype, t.data);
    }
    header[name] = { dtype, shape: t.shape, data_offsets: [offset, offset + bytes.byteLength] };
    blobs.push(bytes);
    offset += bytes.byteLength;
  }
  const data = new Uint8Array(offset);
  let at = 0;
  for (const b of blobs) {
    data.set(b, at);
    at += b.byteLength;
  }
  editHeader?.(header as SafetensorsHeader, data.byteLength);
  return encodeSafetensorsRaw(header, data);
}

/** Frames any header object and data section as a safetensors file, whether or not they agree. */
export function encodeSafetensorsRaw(header: unknown, data: Uint8Array): Uint8Array {
  let json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.byteLength / 8) * 8;
  if (padded !== json.byteLength) {
    const p = new Uint8Array(padded).fill(0x20);
    p.set(json);
    json = p;
  }
  const out = new Uint8Array(8 + json.byteLength + data.byteLength);
  const view = new DataView(out.buffer);
  view.setUint32(0, json.byteLength, true);
  view.setUint32(4, 0, true);
  out.set(json, 8);
  out.set(data, 8 + json.byteLength);
  return out;
}
