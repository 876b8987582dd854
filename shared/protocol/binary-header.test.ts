import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { thrown } from '../../testkit/rejection.ts';
import { InfermeshError } from '../errors.ts';
import { BinaryReader, binaryFormat, HEADER_BYTES, readDocument, startDocument, startMessage, tagged } from './binary-header.ts';

class TestFormatError extends InfermeshError {
  override name = 'TestFormatError';
}

const magics = fc.array(fc.integer({ min: 0x20, max: 0x7e }), { minLength: 4, maxLength: 4 }).map((codes) => String.fromCharCode(...codes));
const formats = fc.record({ magic: magics, version: fc.integer({ min: 0, max: 255 }) }).map((f) => binaryFormat({ ...f, noun: 'test record', error: TestFormatError }));
const bodies = fc.uint8Array({ maxLength: 64 });

/** `bytes` copied to `offset` bytes into a larger buffer: readers must not assume their input starts a buffer, or is aligned. */
function placed(bytes: Uint8Array, offset: number): Uint8Array {
  const buffer = new Uint8Array(offset + bytes.byteLength + 3);
  buffer.set(bytes, offset);
  return buffer.subarray(offset, offset + bytes.byteLength);
}

describe('document headers', () => {
  it('write the magic as its letters and the version, and read back to the first byte after them', () => {
    fc.assert(
      fc.property(formats, bodies, fc.integer({ min: 0, max: 7 }), (format, body, offset) => {
        const { bytes } = startDocument(format, HEADER_BYTES + body.byteLength);
        bytes.set(body, HEADER_BYTES);
        expect(new TextDecoder().decode(bytes.subarray(0, 4))).toBe(format.magic);
        expect(bytes[4]).toBe(format.version);
        const reader = readDocument(format, placed(bytes, offset));
        expect(reader.at).toBe(HEADER_BYTES);
        expect(Array.from(reader.subarray(reader.left, 'the body'))).toEqual(Array.from(body));
        expect(reader.done()).toBe(true);
      }),
    );
  });

  it('refuse any other magic or version with the format\'s own error', () => {
    fc.assert(
      fc.property(formats, bodies, fc.integer({ min: 0, max: HEADER_BYTES - 1 }), fc.integer({ min: 1, max: 255 }), (format, body, at, flip) => {
        const { bytes } = startDocument(format, HEADER_BYTES + body.byteLength);
        bytes.set(body, HEADER_BYTES);
        bytes[at] ^= flip;
        const err = thrown(() => readDocument(format, bytes));
        expect(err).toBeInstanceOf(TestFormatError);
        expect(err.name).toBe('TestFormatError');
        expect(err.message).toBe(at < 4 ? 'not a test record (bad magic)' : `unsupported test record version ${bytes[4]}`);
      }),
    );
  });

  it('refuse bytes shorter than the fixed part before looking at them', () => {
    fc.assert(
      fc.property(formats, fc.integer({ min: 0, max: 40 }), fc.integer({ min: 0, max: 40 }), (format, length, fixed) => {
        fc.pre(length < Math.max(fixed, HEADER_BYTES));
        const err = thrown(() => readDocument(format, new Uint8Array(length), fixed));
        expect(err).toBeInstanceOf(TestFormatError);
        expect(err.message).toBe(`test record of ${length} bytes is shorter than its header`);
      }),
    );
  });

  it('are declared with four ASCII letters and a u8 version', () => {
    for (const magic of ['IMH', 'IMHSX', 'IMH☃']) {
      expect(thrown(() => binaryFormat({ magic, version: 1, noun: 'x', error: TestFormatError })).name).toBe('UsageError');
    }
    for (const version of [-1, 256, 1.5]) {
      expect(thrown(() => binaryFormat({ magic: 'IMXX', version, noun: 'x', error: TestFormatError })).name).toBe('UsageError');
    }
  });
});

type Read = { op: 'u8' | 'u16' | 'u32' | 'f32' | 'u64' } | { op: 'subarray' | 'copy' | 'skip'; n: number };

const reads: fc.Arbitrary<Read[]> = fc.array(
  fc.oneof(
    fc.constantFrom<Read>({ op: 'u8' }, { op: 'u16' }, { op: 'u32' }, { op: 'f32' }, { op: 'u64' }),
    fc.record({ op: fc.constantFrom('subarray' as const, 'copy' as const, 'skip' as const), n: fc.integer({ min: 0, max: 24 }) }),
  ),
  { maxLength: 16 },
);

const WIDTH = { u8: 1, u16: 2, u32: 4, f32: 4, u64: 8 } as const;

describe('the reader', () => {
  it('reads little-endian fields where a DataView would, and refuses to read past the end by the format\'s error', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 48 }), fc.integer({ min: 0, max: 7 }), reads, (raw, offset, ops) => {
        const bytes = placed(raw, offset);
        const model = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
        const reader = new BinaryReader(bytes, 'test record', TestFormatError);
        let at = 0;
        for (const read of ops) {
          const n = 'n' in read ? read.n : WIDTH[read.op];
          if (at + n > raw.byteLength) {
            const err = thrown(() => (read.op === 'subarray' || read.op === 'copy' || read.op === 'skip' ? reader[read.op](read.n, 'a field') : reader[read.op]('a field')));
            expect(err).toBeInstanceOf(TestFormatError);
            expect(err.message).toBe(`test record ends inside a field (needs ${n} bytes at offset ${at}, has ${raw.byteLength - at})`);
            expect(reader.at).toBe(at);
            continue;
          }
          switch (read.op) {
            case 'u8':
              expect(reader.u8('a field')).toBe(model.getUint8(at));
              break;
            case 'u16':
              expect(reader.u16('a field')).toBe(model.getUint16(at, true));
              break;
            case 'u32':
              expect(reader.u32('a field')).toBe(model.getUint32(at, true));
              break;
            case 'f32':
              expect(Object.is(reader.f32('a field'), model.getFloat32(at, true)) || Number.isNaN(model.getFloat32(at, true))).toBe(true);
              break;
            case 'u64':
              expect(reader.u64('a field')).toBe(model.getBigUint64(at, true));
              break;
            case 'skip':
              reader.skip(n, 'a field');
              break;
            default: {
              const got = reader[read.op](n, 'a field');
              expect(Array.from(got)).toEqual(Array.from(raw.subarray(at, at + n)));
              // A copy is its own buffer, 4-byte aligned; a view shares the input's.
              if (read.op === 'copy') expect(got.buffer).not.toBe(bytes.buffer);
              else expect(got.buffer).toBe(bytes.buffer);
            }
          }
          at += n;
          expect(reader.at).toBe(at);
          expect(reader.left).toBe(raw.byteLength - at);
        }
        expect(reader.done()).toBe(at === raw.byteLength);
      }),
    );
  });

  it('reads strict UTF-8 and refuses invalid text by the format\'s error, with the decoder\'s as its cause', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', maxLength: 12 }), (text) => {
        const bytes = new TextEncoder().encode(text);
        expect(new BinaryReader(bytes, 'test record', TestFormatError).utf8(bytes.byteLength, 'a name')).toBe(text);
      }),
    );
    for (const invalid of [[0xff], [0xc3], [0xe2, 0x82], [0xed, 0xa0, 0x80]]) {
      const err = thrown(() => new BinaryReader(Uint8Array.from(invalid), 'test record', TestFormatError).utf8(invalid.length, 'a name'));
      expect(err).toBeInstanceOf(TestFormatError);
      expect(err.message).toBe('a name is not valid UTF-8');
      expect(err.cause).toBeInstanceOf(TypeError);
    }
  });
});

describe('stream messages', () => {
  it('put the tag first and the body after it', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 255 }), bodies, (tag, body) => {
        const message = tagged(tag, body);
        expect(Array.from(message)).toEqual([tag, ...body]);
        const { bytes, view } = startMessage(tag, 1 + body.byteLength);
        expect(bytes[0]).toBe(tag);
        expect(view.byteLength).toBe(1 + body.byteLength);
      }),
    );
    expect(Array.from(tagged(7))).toEqual([7]);
  });
});
