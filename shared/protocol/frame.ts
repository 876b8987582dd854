/**
 * Hidden-state frames: how activations travel from stage to stage: in process,
 * to workers and over WebRTC streams. Binary, little-endian, never JSON:
 *
 *   0  magic "IMHS"           4  version u8 (1)   5  dtype u8 (1 = f32)   6  rank u8   7  reserved u8
 *   8  step u32               12 position u32 (absolute position of the first row)
 *   16 request id length u16  18 request id (utf-8)  then dims (u32 × rank)
 *   then zero padding to a multiple of 4, then the tensor bytes (product(dims) × 4)
 *
 * The payload starts 4-byte aligned so a receiver can view it as a Float32Array without copying.
 *
 * A frame is encoded once, by whoever computed it, and parsed once per hop, by whoever received
 * it: decodeFrame's HiddenFrame (its data a view of the received bytes) is what the rest of the
 * hop reads, so nobody parses the same bytes twice. The header is binary-header.ts's.
 */
import { InfermeshError } from '../errors.ts';
import { binaryFormat, readDocument, startDocument } from './binary-header.ts';

export class FrameError extends InfermeshError {
  override name = 'FrameError';
}

const FRAME = binaryFormat({ magic: 'IMHS', version: 1, noun: 'frame', error: FrameError });
export const DTYPE_F32 = 1;
/** Request ids are short opaque strings; a cap keeps a header from being used to allocate memory. */
export const MAX_REQUEST_ID_BYTES = 128;
export const MAX_RANK = 4;
/** Magic to request id length: what every frame's header holds before its id and dims. */
const FIXED_HEADER_BYTES = 18;

export interface HiddenFrame {
  requestId: string;
  step: number;
  position: number;
  dims: number[];
  data: Float32Array;
}

/** The rows a frame carries: its second-to-last dim ([1, rows, width]); a rank-1 frame is one row. */
export const frameRows = (frame: Pick<HiddenFrame, 'dims'>): number => (frame.dims.length >= 2 ? frame.dims[frame.dims.length - 2] : 1);

const utf8 = new TextEncoder();

/** Where the payload starts: after the header, padded to 4 bytes. */
const payloadOffset = (idBytes: number, rank: number) => Math.ceil((FIXED_HEADER_BYTES + idBytes + 4 * rank) / 4) * 4;

export function encodeFrame(frame: HiddenFrame): Uint8Array {
  const id = utf8.encode(frame.requestId);
  if (id.byteLength === 0 || id.byteLength > MAX_REQUEST_ID_BYTES) throw new FrameError(`request id must be 1..${MAX_REQUEST_ID_BYTES} bytes`);
  if (frame.dims.length === 0 || frame.dims.length > MAX_RANK) throw new FrameError(`rank ${frame.dims.length} outside 1..${MAX_RANK}`);
  const count = frame.dims.reduce((a, b) => a * b, 1);
  if (count !== frame.data.length) throw new FrameError(`dims [${frame.dims}] hold ${count} values but data has ${frame.data.length}`);
  const payloadAt = payloadOffset(id.byteLength, frame.dims.length);
  const { bytes, view } = startDocument(FRAME, payloadAt + frame.data.byteLength);
  view.setUint8(5, DTYPE_F32);
  view.setUint8(6, frame.dims.length);
  view.setUint32(8, frame.step, true);
  view.setUint32(12, frame.position, true);
  view.setUint16(16, id.byteLength, true);
  bytes.set(id, FIXED_HEADER_BYTES);
  frame.dims.forEach((d, i) => view.setUint32(FIXED_HEADER_BYTES + id.byteLength + 4 * i, d, true));
  bytes.set(new Uint8Array(frame.data.buffer, frame.data.byteOffset, frame.data.byteLength), payloadAt);
  return bytes;
}

/**
 * Parses and checks a frame; the returned data views the input bytes when they are aligned.
 * Called once per hop by whoever received the bytes (see the top of this file).
 */
export function decodeFrame(bytes: Uint8Array, maxBytes = Infinity): HiddenFrame {
  if (bytes.byteLength > maxBytes) throw new FrameError(`frame of ${bytes.byteLength} bytes exceeds the limit of ${maxBytes}`);
  const header = readDocument(FRAME, bytes, FIXED_HEADER_BYTES);
  const dtype = header.u8('the dtype');
  if (dtype !== DTYPE_F32) throw new FrameError(`unsupported frame dtype ${dtype} (only f32)`);
  const rank = header.u8('the rank');
  if (rank === 0 || rank > MAX_RANK) throw new FrameError(`rank ${rank} outside 1..${MAX_RANK}`);
  header.skip(1, 'a reserved byte');
  const step = header.u32('the step');
  const position = header.u32('the position');
  const idLength = header.u16('the request id length');
  if (idLength === 0 || idLength > MAX_REQUEST_ID_BYTES) throw new FrameError(`request id length ${idLength} outside 1..${MAX_REQUEST_ID_BYTES}`);
  const payloadAt = payloadOffset(idLength, rank);
  if (bytes.byteLength < payloadAt) throw new FrameError('frame ends inside its header');
  const requestId = header.utf8(idLength, 'request id');
  const dims = Array.from({ length: rank }, () => header.u32('the dims'));
  const count = dims.reduce((a, b) => a * b, 1);
  if (bytes.byteLength - payloadAt !== count * 4) {
    throw new FrameError(`payload of ${bytes.byteLength - payloadAt} bytes does not match dims [${dims}] (${count * 4} bytes)`);
  }
  const at = bytes.byteOffset + payloadAt;
  const data = at % 4 === 0 ? new Float32Array(bytes.buffer, at, count) : new Float32Array(bytes.slice(payloadAt).buffer);
  return { requestId, step, position, dims, data };
}
