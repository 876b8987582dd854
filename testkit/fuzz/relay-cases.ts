/**
 * The relay family of fuzz cases: raw bytes to the relay's WebSocket port, which anyone can
 * reach. Random bytes; request lines that are not HTTP; WebSocket handshakes that are wrong
 * (version, key, method); and a good handshake followed by frames that break RFC 6455 (reserved
 * bits, unmasked client frames, lying lengths, bad close codes, oversized control frames) or
 * junk in well-formed frames, which libp2p then reads as a connection. What must hold is that
 * the process lives (each case runs under the rig's crash check). Used by fuzz-cases.ts.
 */
import fc from 'fast-check';

export interface RelayCase {
  family: 'relay';
  kind: 'random' | 'not-http' | 'bad-handshake' | 'bad-frames';
  /** what is sent after the handshake (bad-frames), or everything (the rest) */
  bytes: Uint8Array;
  /** the handshake's variation (bad-handshake) */
  handshake?: 'version' | 'key' | 'method' | 'none';
}

const KEY = 'dGhlIHNhbXBsZSBub25jZQ==';

/** The upgrade request a WebSocket client sends, with one thing wrong when asked. */
export function handshake(wrong: RelayCase['handshake'] = 'none'): string {
  const method = wrong === 'method' ? 'POST' : 'GET';
  const version = wrong === 'version' ? '7' : '13';
  const key = wrong === 'key' ? 'short' : KEY;
  return `${method} / HTTP/1.1\r\nHost: relay\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: ${version}\r\n\r\n`;
}

/** One frame: first byte (FIN, RSV1-3, opcode), mask bit and a length that may lie about what follows. */
const frame = fc
  .record({
    first: fc.oneof(fc.integer({ min: 0, max: 255 }), fc.constantFrom(0x82, 0x81, 0x88, 0x89, 0x8a, 0xc2, 0xa2, 0x92, 0x02, 0x80, 0x8b)),
    masked: fc.boolean(),
    declared: fc.oneof(fc.integer({ min: 0, max: 125 }), fc.constantFrom(126, 127)),
    payload: fc.uint8Array({ maxLength: 300 }),
  })
  .map(({ first, masked, declared, payload }) => {
    const head = [first, (masked ? 0x80 : 0) | declared];
    if (declared === 126) head.push(0xff, 0xff);
    if (declared === 127) head.push(0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff);
    return Uint8Array.from([...head, ...(masked ? [1, 2, 3, 4] : []), ...payload]);
  });

const concat = (parts: Uint8Array[]) => Uint8Array.from(parts.flatMap((p) => [...p]));

export function relayCaseArbitrary(): fc.Arbitrary<RelayCase> {
  return fc.oneof(
    fc.uint8Array({ minLength: 1, maxLength: 2048 }).map((bytes) => ({ family: 'relay' as const, kind: 'random' as const, bytes })),
    fc.string({ maxLength: 200 }).map((line) => ({ family: 'relay' as const, kind: 'not-http' as const, bytes: new TextEncoder().encode(`${line}\r\n\r\n`) })),
    fc.constantFrom('version', 'key', 'method').map((h) => ({ family: 'relay' as const, kind: 'bad-handshake' as const, handshake: h as RelayCase['handshake'], bytes: new Uint8Array() })),
    { weight: 4, arbitrary: fc.array(frame, { minLength: 1, maxLength: 4 }).map((frames) => ({ family: 'relay' as const, kind: 'bad-frames' as const, bytes: concat(frames) })) },
  );
}

export function describeRelayCase(c: RelayCase): string {
  const hex = Buffer.from(c.bytes.subarray(0, 16)).toString('hex');
  const more = c.bytes.byteLength > 16 ? `… (${c.bytes.byteLength} bytes)` : '';
  return c.kind === 'bad-handshake' ? `handshake with a bad ${c.handshake}` : `${c.kind}: ${hex}${more}`;
}
