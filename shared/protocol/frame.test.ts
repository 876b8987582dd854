import { describe, expect, it } from 'vitest';
import { thrown } from '../../testkit/rejection.ts';
import { decodeFrame, encodeFrame, FrameError, MAX_REQUEST_ID_BYTES } from './frame.ts';
import type { HiddenFrame } from './frame.ts';

/** Values whose bit patterns a lossy conversion would change: -0, subnormals, NaN payloads, extremes. */
function trickyData(count: number): Float32Array {
  const data = new Float32Array(count);
  for (let i = 0; i < count; i++) data[i] = Math.sin(i * 12.9898) * 43758.5453;
  const bits = new Uint32Array(data.buffer);
  if (count > 5) {
    data[0] = -0;
    bits[1] = 0x00000001; // smallest subnormal
    bits[2] = 0x7fc12345; // NaN with a payload
    data[3] = 3.4028234663852886e38;
    data[4] = -Infinity;
  }
  return data;
}

function sampleFrame(overrides: Partial<HiddenFrame> = {}): HiddenFrame {
  return { requestId: 'req-1', step: 7, position: 42, dims: [1, 3, 8], data: trickyData(24), ...overrides };
}

function expectFrameError(fn: () => unknown, message: RegExp): void {
  const err = thrown(fn);
  expect(err).toBeInstanceOf(FrameError);
  expect(err.name).toBe('FrameError');
  expect(err.message).toMatch(message);
}

/** Header field offsets (see frame.ts). */
const VERSION_AT = 4;
const DTYPE_AT = 5;
const RANK_AT = 6;
const ID_LENGTH_AT = 16;
const ID_AT = 18;

function bitsOf(data: Float32Array): Uint32Array {
  return new Uint32Array(data.buffer, data.byteOffset, data.length);
}

describe('hidden-state frames', () => {
  it('round-trips request id, step, position, dims and bit-exact data', () => {
    const frame = sampleFrame();
    const decoded = decodeFrame(encodeFrame(frame));
    expect(decoded.requestId).toBe('req-1');
    expect(decoded.step).toBe(7);
    expect(decoded.position).toBe(42);
    expect(decoded.dims).toEqual([1, 3, 8]);
    expect(Array.from(bitsOf(decoded.data))).toEqual(Array.from(bitsOf(frame.data)));
  });

  it('round-trips a non-ASCII request id and u32 step and position at their maximum', () => {
    const decoded = decodeFrame(encodeFrame(sampleFrame({ requestId: 'zürich-☃-🦙', step: 0xffffffff, position: 0xffffffff })));
    expect(decoded.requestId).toBe('zürich-☃-🦙');
    expect(decoded.step).toBe(0xffffffff);
    expect(decoded.position).toBe(0xffffffff);
  });

  it('decodes to data that views the input bytes without copying when they are aligned', () => {
    const bytes = encodeFrame(sampleFrame());
    const decoded = decodeFrame(bytes);
    expect(decoded.data.buffer).toBe(bytes.buffer);
    expect(decoded.data.byteOffset % 4).toBe(0);
    expect(decoded.data.byteOffset + decoded.data.byteLength).toBe(bytes.byteOffset + bytes.byteLength);
    // A write through the input is visible in the decoded data: it is a view, not a copy.
    bytes[bytes.byteLength - 1] ^= 0x80;
    expect(decoded.data[decoded.data.length - 1]).toBe(-sampleFrame().data[23]);
  });

  it('copies the data into an aligned array when the input bytes start unaligned', () => {
    const frame = sampleFrame();
    const encoded = encodeFrame(frame);
    const shifted = new Uint8Array(encoded.byteLength + 1);
    shifted.set(encoded, 1);
    const unaligned = shifted.subarray(1);
    const decoded = decodeFrame(unaligned);
    expect(decoded.data.byteOffset % 4).toBe(0);
    expect(decoded.data.buffer).not.toBe(shifted.buffer);
    expect(Array.from(bitsOf(decoded.data))).toEqual(Array.from(bitsOf(frame.data)));
    expect(decoded.requestId).toBe('req-1');
  });

  it('starts the payload 4-byte aligned for request ids of every length mod 4', () => {
    for (const length of [1, 2, 3, 4, 5, 6, 7, 127, MAX_REQUEST_ID_BYTES]) {
      const requestId = 'x'.repeat(length);
      for (const dims of [[5], [1, 5], [1, 1, 5]]) {
        const frame = sampleFrame({ requestId, dims, data: trickyData(5) });
        const bytes = encodeFrame(frame);
        const decoded = decodeFrame(bytes);
        expect(decoded.requestId).toBe(requestId);
        expect(decoded.data.byteOffset % 4).toBe(0);
        expect(decoded.data.buffer).toBe(bytes.buffer);
        expect(bytes.byteLength % 4).toBe(0);
        expect(Array.from(bitsOf(decoded.data))).toEqual(Array.from(bitsOf(frame.data)));
      }
    }
  });

  it('zero-fills the padding between the header and the payload', () => {
    // header = 18 + 1 (id) + 12 (dims) = 31 -> payload at 32, one padding byte at 31
    const bytes = encodeFrame(sampleFrame({ requestId: 'a' }));
    expect(bytes[31]).toBe(0);
    expect(bytes.byteLength).toBe(32 + 24 * 4);
  });

  it('refuses a frame with bad magic', () => {
    const bytes = encodeFrame(sampleFrame());
    bytes[0] = 'X'.charCodeAt(0);
    expectFrameError(() => decodeFrame(bytes), /bad magic/);
  });

  it('refuses a frame of another version', () => {
    const bytes = encodeFrame(sampleFrame());
    bytes[VERSION_AT] = 2;
    expectFrameError(() => decodeFrame(bytes), /unsupported frame version 2/);
  });

  it('refuses a frame whose dtype is not f32', () => {
    const bytes = encodeFrame(sampleFrame());
    bytes[DTYPE_AT] = 2;
    expectFrameError(() => decodeFrame(bytes), /unsupported frame dtype 2 \(only f32\)/);
  });

  it('refuses rank 0 and rank 5 frames', () => {
    for (const rank of [0, 5]) {
      const bytes = encodeFrame(sampleFrame());
      bytes[RANK_AT] = rank;
      expectFrameError(() => decodeFrame(bytes), new RegExp(`rank ${rank} outside 1\\.\\.4`));
    }
  });

  it('refuses request id lengths of 0 and over 128 bytes', () => {
    for (const length of [0, MAX_REQUEST_ID_BYTES + 1, 0xffff]) {
      const bytes = encodeFrame(sampleFrame());
      new DataView(bytes.buffer).setUint16(ID_LENGTH_AT, length, true);
      expectFrameError(() => decodeFrame(bytes), new RegExp(`request id length ${length} outside 1\\.\\.128`));
    }
  });

  it('refuses a frame shorter than the fixed header', () => {
    const bytes = encodeFrame(sampleFrame());
    for (const length of [0, 4, 17]) {
      expectFrameError(() => decodeFrame(bytes.subarray(0, length)), new RegExp(`frame of ${length} bytes is shorter than its header`));
    }
  });

  it('refuses a frame that ends inside its request id or dims', () => {
    // id 'req-1' (5 bytes) + 3 dims: header 35 bytes, payload at 36
    const bytes = encodeFrame(sampleFrame());
    for (const length of [18, 20, 23, 30, 35]) {
      expectFrameError(() => decodeFrame(bytes.slice(0, length)), /frame ends inside its header/);
    }
  });

  it('refuses a payload shorter than its dims say', () => {
    const bytes = encodeFrame(sampleFrame());
    expectFrameError(() => decodeFrame(bytes.subarray(0, bytes.byteLength - 4)), /payload of 92 bytes does not match dims \[1,3,8\] \(96 bytes\)/);
    expectFrameError(() => decodeFrame(bytes.subarray(0, bytes.byteLength - 1)), /payload of 95 bytes does not match dims/);
  });

  it('refuses a payload longer than its dims say', () => {
    const bytes = encodeFrame(sampleFrame());
    const longer = new Uint8Array(bytes.byteLength + 4);
    longer.set(bytes);
    expectFrameError(() => decodeFrame(longer), /payload of 100 bytes does not match dims \[1,3,8\] \(96 bytes\)/);
  });

  it('refuses dims whose product is far larger than the frame', () => {
    const bytes = encodeFrame(sampleFrame({ dims: [1, 3, 8] }));
    const view = new DataView(bytes.buffer);
    // dims start after the 5-byte id
    view.setUint32(ID_AT + 5, 0xffffffff, true);
    view.setUint32(ID_AT + 9, 0xffffffff, true);
    expectFrameError(() => decodeFrame(bytes), /does not match dims \[4294967295,4294967295,8\]/);
  });

  it('refuses a request id that is not valid UTF-8', () => {
    const bytes = encodeFrame(sampleFrame({ requestId: 'ab' }));
    bytes[ID_AT] = 0xff;
    bytes[ID_AT + 1] = 0xfe;
    const err = thrown(() => decodeFrame(bytes));
    expect(err.name).toBe('FrameError');
    expect(err.message).toBe('request id is not valid UTF-8');
    expect(err.cause).toBeInstanceOf(TypeError);
  });

  it('refuses a request id with a truncated multi-byte character', () => {
    const bytes = encodeFrame(sampleFrame({ requestId: 'a€' })); // € is e2 82 ac
    new DataView(bytes.buffer).setUint16(ID_LENGTH_AT, 3, true); // cut the € after two bytes
    expectFrameError(() => decodeFrame(bytes), /request id is not valid UTF-8/);
  });

  it('refuses a frame over the maxBytes limit before reading it', () => {
    const bytes = encodeFrame(sampleFrame());
    expect(decodeFrame(bytes, bytes.byteLength).requestId).toBe('req-1');
    expectFrameError(() => decodeFrame(bytes, bytes.byteLength - 1), new RegExp(`frame of ${bytes.byteLength} bytes exceeds the limit of ${bytes.byteLength - 1}`));
    // The limit is checked first: even garbage over the limit is refused for its size.
    expectFrameError(() => decodeFrame(new Uint8Array(64), 32), /exceeds the limit of 32/);
  });

  it('refuses to encode data that does not match its dims', () => {
    expectFrameError(() => encodeFrame(sampleFrame({ dims: [1, 3, 7] })), /dims \[1,3,7\] hold 21 values but data has 24/);
    expectFrameError(() => encodeFrame(sampleFrame({ dims: [1, 4, 8] })), /dims \[1,4,8\] hold 32 values but data has 24/);
  });

  it('refuses to encode a request id or rank outside the limits', () => {
    expectFrameError(() => encodeFrame(sampleFrame({ requestId: '' })), /request id must be 1\.\.128 bytes/);
    expectFrameError(() => encodeFrame(sampleFrame({ requestId: 'é'.repeat(65) })), /request id must be 1\.\.128 bytes/);
    expectFrameError(() => encodeFrame(sampleFrame({ dims: [], data: new Float32Array(1) })), /rank 0 outside 1\.\.4/);
    expectFrameError(() => encodeFrame(sampleFrame({ dims: [1, 1, 1, 3, 8] })), /rank 5 outside 1\.\.4/);
  });
});
