/**
 * The header every binary format of infermesh starts with, written and checked in one place.
 * Two kinds of format, two headers:
 *
 *   document  a hidden-state frame, a hand-off, a transcript, a step record, a fingerprint, a
 *             commitment: bytes that get hashed, signed, nested in other messages and read back
 *             far from where they were written, so each names itself:
 *               0 magic, four ASCII letters ("IM" and two of the format's own)   4 version u8
 *             and what follows is the format's own (little-endian, like everything here)
 *   message   a STAGE (or RESULT), TRUST or PIECES stream message (shared/grid/protocol-ids.ts): the stream's
 *             protocol already names the format, so one tag byte says which message follows
 *
 * A reader checks the header before anything else, then reads the rest through a cursor that
 * never reads past the end: a truncated message or a lying length field is refused with the
 * format's own error class (FrameError, StepRecordFormatError, ...), never a DataView's RangeError.
 */
import { UsageError } from '../errors.ts';
import type { InfermeshError, InfermeshErrorOptions } from '../errors.ts';

/** The error class a format refuses bad bytes with; its `name` is what a peer is told. */
export type FormatErrorClass = new (message: string, options?: InfermeshErrorOptions) => InfermeshError;

export interface BinaryFormatSpec {
  /** four ASCII letters, in the order they appear in the bytes: "IMHS" */
  readonly magic: string;
  readonly version: number;
  /** what a person calls one, in error messages: "step record" */
  readonly noun: string;
  readonly error: FormatErrorClass;
}

/** A document format (binaryFormat): its spec and the magic as the u32 that is compared. */
export interface BinaryFormat extends BinaryFormatSpec {
  readonly magicWord: number;
}

/** Magic and version: where a document's own fields start. */
export const HEADER_BYTES = 5;

const fromUtf8 = new TextDecoder('utf-8', { fatal: true });

/** Declares a document format; the magic and version are checked here, once. */
export function binaryFormat(spec: BinaryFormatSpec): BinaryFormat {
  const letters = new TextEncoder().encode(spec.magic);
  if (letters.byteLength !== 4 || spec.magic.length !== 4) throw new UsageError(`a magic is four ASCII letters, not "${spec.magic}"`);
  if (!Number.isInteger(spec.version) || spec.version < 0 || spec.version > 0xff) throw new UsageError(`a format version is a u8, not ${spec.version}`);
  return Object.freeze({ ...spec, magicWord: new DataView(letters.buffer).getUint32(0, true) });
}

/** A buffer of `size` zero bytes that starts with the document's header, and a view to write the rest. */
export function startDocument(format: BinaryFormat, size: number): { bytes: Uint8Array; view: DataView } {
  const bytes = new Uint8Array(size);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, format.magicWord, true);
  view.setUint8(4, format.version);
  return { bytes, view };
}

/**
 * Checks a document's header on `bytes`, which must hold at least the format's fixed part
 * (`fixedBytes`); the reader it returns stands on the first byte after the header.
 */
export function readDocument(format: BinaryFormat, bytes: Uint8Array, fixedBytes = HEADER_BYTES): BinaryReader {
  const { noun, error } = format;
  if (bytes.byteLength < Math.max(fixedBytes, HEADER_BYTES)) throw new error(`${noun} of ${bytes.byteLength} bytes is shorter than its header`);
  const reader = new BinaryReader(bytes, noun, error);
  if (reader.view.getUint32(0, true) !== format.magicWord) throw new error(`not a ${noun} (bad magic)`);
  if (bytes[4] !== format.version) throw new error(`unsupported ${noun} version ${bytes[4]}`);
  reader.at = HEADER_BYTES;
  return reader;
}

/** A stream message of `size` bytes whose first byte is `tag`, and a view to write the rest. */
export function startMessage(tag: number, size: number): { bytes: Uint8Array; view: DataView } {
  const bytes = new Uint8Array(size);
  bytes[0] = tag;
  return { bytes, view: new DataView(bytes.buffer) };
}

/** `body` behind its tag byte: a stream message whose body is one piece (JSON, a piece, a commitment). */
export function tagged(tag: number, body: Uint8Array = new Uint8Array(0)): Uint8Array {
  const { bytes } = startMessage(tag, 1 + body.byteLength);
  bytes.set(body, 1);
  return bytes;
}

/**
 * A cursor over bytes that refuses to read past their end. `what` names the field for the
 * error: "REVEAL ends inside record 3's length (needs 4 bytes at offset 81, has 2)".
 */
export class BinaryReader {
  readonly bytes: Uint8Array;
  readonly view: DataView;
  /** the offset of the next byte to read */
  at: number;
  private readonly noun: string;
  private readonly error: FormatErrorClass;

  constructor(bytes: Uint8Array, noun: string, error: FormatErrorClass, at = 0) {
    this.bytes = bytes;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.noun = noun;
    this.error = error;
    this.at = at;
  }

  /** Bytes not read yet. */
  get left(): number {
    return this.bytes.byteLength - this.at;
  }

  /** Throws unless `n` more bytes are there. */
  need(n: number, what: string): void {
    if (n > this.left) throw new this.error(`${this.noun} ends inside ${what} (needs ${n} bytes at offset ${this.at}, has ${this.left})`);
  }

  /** Moves past the next `n` bytes and returns where they start. */
  private advance(n: number, what: string): number {
    this.need(n, what);
    const at = this.at;
    this.at += n;
    return at;
  }

  // Little-endian fields, as every format here writes them.
  u8(what: string): number { return this.view.getUint8(this.advance(1, what)); }
  u16(what: string): number { return this.view.getUint16(this.advance(2, what), true); }
  u32(what: string): number { return this.view.getUint32(this.advance(4, what), true); }
  f32(what: string): number { return this.view.getFloat32(this.advance(4, what), true); }
  u64(what: string): bigint { return this.view.getBigUint64(this.advance(8, what), true); }

  /** Steps over `n` bytes (reserved, or padding). */
  skip(n: number, what: string): void {
    this.advance(n, what);
  }

  /** The next `n` bytes as a view of the input (it changes if they do). */
  subarray(n: number, what: string): Uint8Array {
    const at = this.advance(n, what);
    return this.bytes.subarray(at, at + n);
  }

  /**
   * The next `n` bytes as a copy of their own: safe to keep, and 4-byte aligned for a
   * Float32Array (never Buffer#slice, which is a view).
   */
  copy(n: number, what: string): Uint8Array {
    return new Uint8Array(this.subarray(n, what));
  }

  /** The next `n` bytes as strict UTF-8: invalid text is refused, not replaced. */
  utf8(n: number, what: string): string {
    const bytes = this.subarray(n, what);
    try {
      return fromUtf8.decode(bytes);
    } catch (err) {
      throw new this.error(`${what} is not valid UTF-8`, { cause: err });
    }
  }

  /** True when every byte has been read. */
  done(): boolean {
    return this.at === this.bytes.byteLength;
  }
}
