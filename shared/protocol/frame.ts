/**
 * Hidden-state frames: how activations travel from stage to stage, in process today and
 * over WebRTC streams later. Binary, little-endian, never JSON:
 *
 *   0  magic "IMHS"           4  version u8 (1)   5  dtype u8 (1 = f32)   6  rank u8   7  reserved u8
 *   8  step u32               12 position u32 (absolute position of the first row)
 *   16 request id length u16  18 request id (utf-8)  then dims (u32 × rank)
 *   then zero padding to a multiple of 4, then the tensor bytes (product(dims) × 4)
 *
 * The payload starts 4-byte aligned so a receiver can view it as a Float32Array without copying.
 */
import { InfermeshError } from '../errors.ts';

export class FrameError extends InfermeshError {
  override name = 'FrameError';
}

export const FRAME_MAGIC = 0x53484d49; // "IMHS" read as little-endian u32
export const FRAME_VERSION = 1;
export const DTYPE_F32 = 1;
/** Request ids are short opaque strings; a cap keeps a header from being used to allocate memory. */
export const MAX_REQUEST_ID_BYTES = 128;
export const MAX_RANK = 4;

export interface HiddenFrame {
  requestId: string;
  step: number;
  position: number;
  dims: number[];
  data: Float32Array;
}

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder('utf-8', { fatal: true });

export function encodeFrame(frame: HiddenFrame): Uint8Array {
  const id = utf8.encode(frame.requestId);
  if (id.byteLength === 0 || id.byteLength > MAX_REQUEST_ID_BYTES) throw new FrameError(`request id must be 1..${MAX_REQUEST_ID_BYTES} bytes`);
  if (frame.dims.length === 0 || frame.dims.length > MAX_RANK) throw new FrameError(`rank ${frame.dims.length} outside 1..${MAX_RANK}`);
  const count = frame.dims.reduce((a, b) => a * b, 1);
  if (count !== frame.data.length) throw new FrameError(`dims [${frame.dims}] hold ${count} values but data has ${frame.data.length}`);
  const header = 18 + id.byteLength + 4 * frame.dims.length;
  const payloadAt = Math.ceil(header / 4) * 4;
  const bytes = new Uint8Array(payloadAt + frame.data.byteLength);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, FRAME_MAGIC, true);
  view.setUint8(4, FRAME_VERSION);
  view.setUint8(5, DTYPE_F32);
  view.setUint8(6, frame.dims.length);
  view.setUint32(8, frame.step, true);
  view.setUint32(12, frame.position, true);
  view.setUint16(16, id.byteLength, true);
  bytes.set(id, 18);
  frame.dims.forEach((d, i) => view.setUint32(18 + id.byteLength + 4 * i, d, true));
  bytes.set(new Uint8Array(frame.data.buffer, frame.data.byteOffset, frame.data.byteLength), payloadAt);
  return bytes;
}

/** Parses and checks a frame; the returned data views the input bytes when they are aligned. */
export function decodeFrame(bytes: Uint8Array, maxBytes = Infinity): HiddenFrame {
  if (bytes.byteLength > maxBytes) throw new FrameError(`frame of ${bytes.byteLength} bytes exceeds the limit of ${maxBytes}`);
  if (bytes.byteLength < 18) throw new FrameError(`frame of ${bytes.byteLength} bytes is shorter than a header`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint32(0, true) !== FRAME_MAGIC) throw new FrameError('not a hidden-state frame (bad magic)');
  if (view.getUint8(4) !== FRAME_VERSION) throw new FrameError(`unsupported frame version ${view.getUint8(4)}`);
  if (view.getUint8(5) !== DTYPE_F32) throw new FrameError(`unsupported frame dtype ${view.getUint8(5)} (only f32)`);
  const rank = view.getUint8(6);
  if (rank === 0 || rank > MAX_RANK) throw new FrameError(`rank ${rank} outside 1..${MAX_RANK}`);
  const idLength = view.getUint16(16, true);
  if (idLength === 0 || idLength > MAX_REQUEST_ID_BYTES) throw new FrameError(`request id length ${idLength} outside 1..${MAX_REQUEST_ID_BYTES}`);
  const header = 18 + idLength + 4 * rank;
  const payloadAt = Math.ceil(header / 4) * 4;
  if (bytes.byteLength < payloadAt) throw new FrameError('frame ends inside its header');
  let requestId: string;
  try {
    requestId = fromUtf8.decode(bytes.subarray(18, 18 + idLength));
  } catch (err) {
    throw new FrameError('request id is not valid UTF-8', { cause: err });
  }
  const dims = Array.from({ length: rank }, (_, i) => view.getUint32(18 + idLength + 4 * i, true));
  const count = dims.reduce((a, b) => a * b, 1);
  if (bytes.byteLength - payloadAt !== count * 4) {
    throw new FrameError(`payload of ${bytes.byteLength - payloadAt} bytes does not match dims [${dims}] (${count * 4} bytes)`);
  }
  const at = bytes.byteOffset + payloadAt;
  const data = at % 4 === 0 ? new Float32Array(bytes.buffer, at, count) : new Float32Array(bytes.slice(payloadAt).buffer);
  return { requestId, step: view.getUint32(8, true), position: view.getUint32(12, true), dims, data };
}
