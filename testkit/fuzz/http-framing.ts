/**
 * How an HTTP fuzz case says where its body ends (http-cases.ts): an honest Content-Length,
 * none, one that lies (short, long, negative, huge, not a number, twice), or chunked
 * encoding with broken chunks. Returns the framing headers, the bytes on the wire, and whether
 * the request as sent is whole: a server may close without answering a request the client
 * never finished.
 */
import fc from 'fast-check';

export type ChunkFlaw = 'none' | 'bad-size' | 'huge-size' | 'negative' | 'no-last-chunk' | 'short-data' | 'long-data' | 'extension' | 'trailer' | 'no-crlf';

export type Framing =
  | { kind: 'length' }
  | { kind: 'none' }
  /** Content-Length: value, whatever the body is */
  | { kind: 'declared'; value: string }
  /** Content-Length: the body's length + delta */
  | { kind: 'delta'; delta: number }
  | { kind: 'two-lengths'; first: string; second: string }
  | { kind: 'chunked'; chunkSize: number; flaw: ChunkFlaw; te: string }
  /** Transfer-Encoding and Content-Length both: a request smuggler's favourite */
  | { kind: 'chunked+length' };

export const framingArbitrary: fc.Arbitrary<Framing> = fc.oneof(
  { weight: 30, arbitrary: fc.constant<Framing>({ kind: 'length' }) },
  { weight: 2, arbitrary: fc.constant<Framing>({ kind: 'none' }) },
  { weight: 2, arbitrary: fc.constantFrom('-1', '+5', '0x10', '1e3', ' 5', '5 5', '', 'abc', '99999999999999999999', '18446744073709551616', '9007199254740993', '0').map((value) => ({ kind: 'declared' as const, value })) },
  { weight: 2, arbitrary: fc.constantFrom(-1_000, -1, 1, 1_000, 10_000_000).map((delta) => ({ kind: 'delta' as const, delta })) },
  { weight: 1, arbitrary: fc.constantFrom(['5', '6'], ['0', '0'], ['1', '1']).map(([first, second]) => ({ kind: 'two-lengths' as const, first, second })) },
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('chunked' as const),
      chunkSize: fc.constantFrom(1, 7, 1_024, 65_536),
      flaw: fc.constantFrom<ChunkFlaw>('none', 'none', 'none', 'bad-size', 'huge-size', 'negative', 'no-last-chunk', 'short-data', 'long-data', 'extension', 'trailer', 'no-crlf'),
      te: fc.constantFrom('chunked', 'chunked', 'Chunked', 'gzip, chunked', 'chunked, chunked', 'identity', 'chunked ', 'xchunked'),
    }),
  },
  { weight: 1, arbitrary: fc.constant<Framing>({ kind: 'chunked+length' }) },
);

export interface FramedBody {
  headers: [string, string][];
  bytes: Buffer;
  /**
   * The bytes sent are not one whole message: more body declared than sent, or bytes after the
   * message that are no request (a body with no framing, a Content-Length shorter than the
   * body). A server may drop such a connection without answering.
   */
  incomplete: boolean;
}

/** A body with no bytes and a method that carries none gets no framing header, as clients send it. */
export function frameBody(body: Buffer, framing: Framing, method: string): FramedBody {
  switch (framing.kind) {
    case 'length':
      return { headers: body.length > 0 || method === 'POST' ? [['content-length', String(body.length)]] : [], bytes: body, incomplete: false };
    case 'none':
      return { headers: [], bytes: body, incomplete: body.length > 0 };
    case 'declared': {
      const declared = /^\d+$/.test(framing.value) ? Number(framing.value) : -1;
      return { headers: [['content-length', framing.value]], bytes: body, incomplete: declared !== body.length };
    }
    case 'delta': {
      const declared = Math.max(0, body.length + framing.delta);
      return { headers: [['content-length', String(declared)]], bytes: body, incomplete: declared !== body.length };
    }
    case 'two-lengths':
      return { headers: [['content-length', framing.first], ['content-length', framing.second]], bytes: body, incomplete: Number(framing.first) !== body.length || Number(framing.second) !== body.length };
    case 'chunked': {
      const { bytes, incomplete } = chunked(body, framing.chunkSize, framing.flaw);
      return { headers: [['transfer-encoding', framing.te]], bytes, incomplete };
    }
    case 'chunked+length': {
      const { bytes } = chunked(body, 1_024, 'none');
      return { headers: [['transfer-encoding', 'chunked'], ['content-length', String(body.length)]], bytes, incomplete: false };
    }
  }
}

/** One-byte chunks of a 5 MB body would be millions of parts: past this many, chunks grow. */
const MAX_CHUNKS = 4_096;

function chunked(body: Buffer, wanted: number, flaw: ChunkFlaw): { bytes: Buffer; incomplete: boolean } {
  const size = Math.max(wanted, Math.ceil(body.length / MAX_CHUNKS));
  const parts: Buffer[] = [];
  for (let at = 0; at < body.length; at += size) {
    const data = body.subarray(at, at + size);
    const first = at === 0;
    let head = data.length.toString(16);
    let payload = data;
    if (first && flaw === 'bad-size') head = 'zz';
    if (first && flaw === 'huge-size') head = 'ffffffffffffffffff';
    if (first && flaw === 'negative') head = '-1';
    if (first && flaw === 'extension') head += ';name=value;x="y"';
    if (first && flaw === 'short-data') payload = data.subarray(0, Math.max(0, data.length - 1));
    if (first && flaw === 'long-data') payload = Buffer.concat([data, Buffer.from('EXTRA')]);
    parts.push(Buffer.from(`${head}\r\n`), payload, Buffer.from(first && flaw === 'no-crlf' ? '' : '\r\n'));
  }
  if (flaw !== 'no-last-chunk') parts.push(Buffer.from(flaw === 'trailer' ? '0\r\nx-trailer: junk\r\n\r\n' : '0\r\n\r\n'));
  const incomplete = flaw === 'no-last-chunk' || (body.length > 0 && (flaw === 'huge-size' || flaw === 'short-data' || flaw === 'long-data' || flaw === 'no-crlf'));
  return { bytes: Buffer.concat(parts), incomplete };
}

export function describeFraming(framing: Framing): string {
  switch (framing.kind) {
    case 'length':
      return 'content-length';
    case 'none':
      return 'no framing';
    case 'declared':
      return `content-length: ${JSON.stringify(framing.value)}`;
    case 'delta':
      return `content-length: body ${framing.delta >= 0 ? '+' : ''}${framing.delta}`;
    case 'two-lengths':
      return `content-length twice: ${framing.first}, ${framing.second}`;
    case 'chunked':
      return `transfer-encoding: ${JSON.stringify(framing.te)}, chunks of ${framing.chunkSize}${framing.flaw === 'none' ? '' : `, flaw ${framing.flaw}`}`;
    case 'chunked+length':
      return 'transfer-encoding: chunked and content-length';
  }
}
