/**
 * Length-prefixed frames as the grid's libp2p protocols carry them (lpStream: an unsigned
 * LEB128 varint, then the bytes), written by hand so the fuzz cases can also write what
 * lpStream never would: truncated, overlong and 10-byte varints, lengths that lie. The frame
 * reader turns what the server sends back into messages. Used by p2p-stream.ts and the
 * coordinator and trust case runners.
 */

export function encodeVarint(n: number): Uint8Array {
  const out: number[] = [];
  let v = n;
  do {
    let byte = v % 128;
    v = Math.floor(v / 128);
    if (v > 0) byte |= 0x80;
    out.push(byte);
  } while (v > 0);
  return Uint8Array.from(out);
}

export function lengthPrefixed(payload: Uint8Array): Uint8Array {
  const prefix = encodeVarint(payload.byteLength);
  const bytes = new Uint8Array(prefix.byteLength + payload.byteLength);
  bytes.set(prefix);
  bytes.set(payload, prefix.byteLength);
  return bytes;
}

/** Varints no honest writer sends: cut after a continuation byte, padded with zero groups, or longer than 64 bits. */
export const BROKEN_VARINTS: Record<string, number[]> = {
  truncated: [0x80],
  'truncated-2': [0xff, 0xff],
  'overlong-zero': [0x80, 0x80, 0x80, 0x00],
  'overlong-five': [0x85, 0x80, 0x80, 0x80, 0x00],
  'ten-bytes': [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
  'eleven-bytes': [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
  'max-u32': [0xff, 0xff, 0xff, 0xff, 0x0f],
};

/** A reader of the frames a server writes; stops (and says why) at the first it cannot read. */
export function createFrameReader() {
  let buffer = new Uint8Array(0);
  const frames: Uint8Array[] = [];
  let broken: string | undefined;
  return {
    frames,
    get broken() {
      return broken;
    },
    push(chunk: Uint8Array) {
      if (broken) return;
      const joined = new Uint8Array(buffer.byteLength + chunk.byteLength);
      joined.set(buffer);
      joined.set(chunk, buffer.byteLength);
      buffer = joined;
      for (;;) {
        let length = 0;
        let shift = 1;
        let at = 0;
        for (;;) {
          if (at >= buffer.byteLength) return;
          const byte = buffer[at++];
          length += (byte & 0x7f) * shift;
          shift *= 128;
          if ((byte & 0x80) === 0) break;
          if (at >= 9) {
            broken = 'a varint longer than 9 bytes';
            return;
          }
        }
        // The grid's largest message is a 40 MiB reveal; the server never writes more.
        if (length > 64 << 20) {
          broken = `a frame of ${length} bytes`;
          return;
        }
        if (buffer.byteLength < at + length) return;
        frames.push(buffer.slice(at, at + length));
        buffer = buffer.slice(at + length);
      }
    },
  };
}
