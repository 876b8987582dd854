/**
 * What a p2p fuzz case writes on a stream, framed well or not: one length-prefixed message,
 * raw bytes, a prefix that declares more than follows, a broken varint, an empty frame. The
 * payload of a well-framed message is the family's own (coordinator JSON, trust bytes). Used by
 * coordinator-cases.ts, trust-cases.ts and their runners.
 */
import fc from 'fast-check';
import { BROKEN_VARINTS, createFrameReader, encodeVarint, lengthPrefixed } from './lp-frames.ts';

export type Wire<P> =
  | { kind: 'frame'; payload: P }
  | { kind: 'raw'; bytes: Uint8Array }
  /** a prefix declaring `declared` bytes, then `sent` bytes of filler (fewer: the frame never ends) */
  | { kind: 'declared'; declared: number; sent: number }
  | { kind: 'varint'; name: string }
  | { kind: 'empty' };

/**
 * Whether a reader of `wires` is left inside a frame, waiting for bytes that never come: a
 * case like that costs the server's idle timeout, so the cases ask for few of them. Frames
 * count as whole (their payload's length is only known when the case runs): an estimate.
 */
export function leavesFrameOpen(wires: readonly Wire<unknown>[]): boolean {
  const reader = createFrameReader();
  for (const w of wires) reader.push(renderWire(w, () => new Uint8Array(64)));
  if (reader.broken) return false;
  const before = reader.frames.length;
  reader.push(Uint8Array.of(0));
  return reader.frames.length === before;
}

/** Framing abuse, for a protocol whose messages may be at most `limit` bytes. */
export function brokenFraming<P>(limit: number): fc.Arbitrary<Wire<P>> {
  return fc.oneof(
    fc.uint8Array({ minLength: 1, maxLength: 256 }).map((bytes) => ({ kind: 'raw' as const, bytes })),
    fc.record({ kind: fc.constant('declared' as const), declared: fc.constantFrom(limit + 1, 2 ** 31, 50 << 20, 1_000, 100), sent: fc.constantFrom(0, 10, 1_024) }),
    fc.constantFrom(...Object.keys(BROKEN_VARINTS)).map((name) => ({ kind: 'varint' as const, name })),
    fc.constant<Wire<P>>({ kind: 'empty' }),
  );
}

export function renderWire<P>(wire: Wire<P>, payload: (p: P) => Uint8Array): Uint8Array {
  switch (wire.kind) {
    case 'frame':
      return lengthPrefixed(payload(wire.payload));
    case 'raw':
      return wire.bytes;
    case 'declared': {
      const prefix = encodeVarint(wire.declared);
      const bytes = new Uint8Array(prefix.byteLength + wire.sent).fill(0x7b);
      bytes.set(prefix);
      return bytes;
    }
    case 'varint':
      return Uint8Array.from(BROKEN_VARINTS[wire.name]);
    case 'empty':
      return Uint8Array.of(0);
  }
}

export function describeWire<P>(wire: Wire<P>, payload: (p: P) => string): string {
  switch (wire.kind) {
    case 'frame':
      return payload(wire.payload);
    case 'raw':
      return `raw(${wire.bytes.byteLength}) ${Buffer.from(wire.bytes.subarray(0, 16)).toString('hex')}${wire.bytes.byteLength > 16 ? '…' : ''}`;
    case 'declared':
      return `prefix declaring ${wire.declared} bytes, then ${wire.sent}`;
    case 'varint':
      return `varint ${wire.name} (${BROKEN_VARINTS[wire.name].map((b) => b.toString(16)).join(' ')})`;
    case 'empty':
      return 'empty frame';
  }
}
