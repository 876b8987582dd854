/**
 * Reads one HTTP/1.1 response out of the bytes a raw socket received: status, headers and
 * body, framed by Content-Length, chunked encoding or the connection's end, with interim 1xx
 * responses (100 Continue) skipped. The fuzz client (http-client.ts) needs its own reader:
 * fetch and node:http refuse to send the malformed requests being fuzzed.
 */

export interface HttpResponse {
  status: number;
  reason: string;
  /** lower-case names; repeated headers joined with ', ' */
  headers: Record<string, string>;
  body: Buffer;
  /**
   * A bare refusal: a 4xx with `Connection: close`, no body and no Content-Type, as Node itself
   * answers what never reaches a handler (llhttp's `400 Bad Request` for an unparseable request,
   * 431 for oversized headers, 400 for a missing Host). Issue 22 lets a server refuse so and
   * close; the tallies count them apart.
   */
  bareReject: boolean;
}

export type ParseResult = { kind: 'complete'; response: HttpResponse } | { kind: 'incomplete' } | { kind: 'malformed'; reason: string };

const HEAD_END = Buffer.from('\r\n\r\n');

/**
 * `ended`: the connection is closed, so a body without Content-Length or chunking ends here.
 * `method`: a HEAD response has no body whatever its headers say.
 */
export function parseHttpResponse(bytes: Buffer, method: string, ended: boolean): ParseResult {
  let at = 0;
  for (;;) {
    const headEnd = bytes.indexOf(HEAD_END, at);
    if (headEnd < 0) return ended && bytes.length > at ? { kind: 'malformed', reason: 'the connection closed inside the response head' } : { kind: 'incomplete' };
    const lines = bytes.subarray(at, headEnd).toString('latin1').split('\r\n');
    const m = /^HTTP\/1\.[01] (\d{3})(?: (.*))?$/.exec(lines[0]);
    if (!m) return { kind: 'malformed', reason: `not a status line: ${JSON.stringify(lines[0].slice(0, 80))}` };
    const status = Number(m[1]);
    const headers: Record<string, string> = {};
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(':');
      if (colon <= 0) return { kind: 'malformed', reason: `not a header line: ${JSON.stringify(line.slice(0, 80))}` };
      const name = line.slice(0, colon).trim().toLowerCase();
      const value = line.slice(colon + 1).trim();
      headers[name] = name in headers ? `${headers[name]}, ${value}` : value;
    }
    const bodyStart = headEnd + HEAD_END.length;
    if (status >= 100 && status < 200 && status !== 101) {
      at = bodyStart;
      continue;
    }
    const body = readBody(bytes.subarray(bodyStart), headers, status, method, ended);
    if (body.kind !== 'complete') return body;
    const bareReject = status >= 400 && status < 500 && /close/i.test(headers.connection ?? '') && body.body.length === 0 && headers['content-type'] === undefined;
    return { kind: 'complete', response: { status, reason: m[2] ?? '', headers, body: body.body, bareReject } };
  }
}

/**
 * How many bytes the whole response takes once its head is in, when its body has a
 * Content-Length: the client then waits for that many bytes instead of re-reading a
 * many-megabyte body on every packet. Undefined when the head is not in yet or the body is
 * framed otherwise (chunked, until close).
 */
export function declaredTotal(bytes: Buffer, method: string): number | undefined {
  let at = 0;
  for (;;) {
    const headEnd = bytes.indexOf(HEAD_END, at);
    if (headEnd < 0) return undefined;
    const head = bytes.subarray(at, headEnd).toString('latin1');
    const status = Number(head.slice(9, 12));
    const bodyStart = headEnd + HEAD_END.length;
    if (status >= 100 && status < 200 && status !== 101) {
      at = bodyStart;
      continue;
    }
    if (method === 'HEAD' || status === 204 || status === 304 || /\r\ntransfer-encoding:/i.test(head)) return undefined;
    const m = /\r\ncontent-length:\s*(\d+)\s*(\r\n|$)/i.exec(head);
    return m ? bodyStart + Number(m[1]) : undefined;
  }
}

function readBody(rest: Buffer, headers: Record<string, string>, status: number, method: string, ended: boolean): { kind: 'complete'; body: Buffer } | Exclude<ParseResult, { kind: 'complete' }> {
  if (method === 'HEAD' || status === 204 || status === 304) return { kind: 'complete', body: Buffer.alloc(0) };
  if (/chunked/i.test(headers['transfer-encoding'] ?? '')) return readChunked(rest, ended);
  const declared = headers['content-length'];
  if (declared !== undefined) {
    const n = Number(declared);
    if (!Number.isSafeInteger(n) || n < 0) return { kind: 'malformed', reason: `Content-Length ${JSON.stringify(declared)}` };
    if (rest.length >= n) return { kind: 'complete', body: rest.subarray(0, n) };
    return ended ? { kind: 'malformed', reason: `the connection closed after ${rest.length} of ${n} body bytes` } : { kind: 'incomplete' };
  }
  return ended ? { kind: 'complete', body: rest } : { kind: 'incomplete' };
}

function readChunked(rest: Buffer, ended: boolean): { kind: 'complete'; body: Buffer } | Exclude<ParseResult, { kind: 'complete' }> {
  const parts: Buffer[] = [];
  let at = 0;
  const short = (): Exclude<ParseResult, { kind: 'complete' }> => (ended ? { kind: 'malformed', reason: 'the connection closed inside a chunked body' } : { kind: 'incomplete' });
  for (;;) {
    const lineEnd = rest.indexOf('\r\n', at);
    if (lineEnd < 0) return short();
    const size = parseInt(rest.subarray(at, lineEnd).toString('latin1').split(';')[0], 16);
    if (!Number.isFinite(size) || size < 0) return { kind: 'malformed', reason: 'a bad chunk size' };
    at = lineEnd + 2;
    if (size === 0) {
      // Trailers, if any, end with an empty line.
      const end = rest.indexOf(HEAD_END, at - 2);
      return end < 0 ? short() : { kind: 'complete', body: Buffer.concat(parts) };
    }
    if (rest.length < at + size + 2) return short();
    parts.push(rest.subarray(at, at + size));
    at += size + 2;
  }
}
