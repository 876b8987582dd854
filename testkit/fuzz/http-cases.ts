/**
 * The HTTP family of fuzz cases: an arbitrary (fast-check) of requests against the server's
 * real endpoints and static roots, a fraction left valid (they must get the endpoint's normal
 * answer), the rest with fuzzed methods, targets (http-targets.ts), headers (http-headers.ts),
 * bodies (http-bodies.ts), framing (http-framing.ts) and request lines. A case is data: it
 * renders to the exact bytes sent (renderHttpCase) and to one printable line (describeHttpCase),
 * so a failure can be read and replayed. Used by the fuzz runner (run-fuzz.ts).
 */
import fc from 'fast-check';
import { bodyArbitrary, describeBody, renderBody, validBody } from './http-bodies.ts';
import type { BodyContext, BodySpec } from './http-bodies.ts';
import { applyHeaderMutations, describeHeaderMutation, headerMutation } from './http-headers.ts';
import type { HeaderMutation } from './http-headers.ts';
import { describeFraming, frameBody, framingArbitrary } from './http-framing.ts';
import type { Framing } from './http-framing.ts';
import { applyTargetMutation, endpoints, targetMutation } from './http-targets.ts';
import type { TargetContext, TargetMutation } from './http-targets.ts';
import type { RawRequest } from './http-client.ts';

export type HttpFuzzContext = TargetContext & BodyContext;

export interface HttpCase {
  family: 'http';
  /** the endpoint the case was built from, e.g. 'POST /v1/chat/completions' */
  endpoint: string;
  method: string;
  /** the endpoint's valid target, before `mutation` */
  baseTarget: string;
  mutation: TargetMutation;
  version: string;
  headers: HeaderMutation[];
  body: BodySpec;
  framing: Framing;
  /** line ends: '\r\n', or a bare '\n' that lenient parsers accept */
  lineEnd: '\r\n' | '\n';
  /** the head's characters sent as single bytes (raw overlong UTF-8, raw bytes ≥ 0x80) rather than UTF-8 */
  latin1: boolean;
  /** the statuses the endpoint answers a valid request with; only on cases left valid */
  expect?: number[];
}

const METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD'];
const JUNK_METHODS = ['FOO', 'get', 'G ET', 'POST\u0000', 'PROPFIND', 'CONNECT', 'TRACE', 'QUERY', 'M-SEARCH', 'X'.repeat(100), ''];
const JUNK_VERSIONS = ['HTTP/1.0', 'HTTP/2.0', 'HTTP/9.9', 'HTTX/1.1', 'HTTP/1.1 extra', 'http/1.1', ''];

export function httpCaseArbitrary(ctx: HttpFuzzContext): fc.Arbitrary<HttpCase> {
  const eps = endpoints(ctx);
  const valid = (ep: (typeof eps)[number]) =>
    fc.record({
      baseTarget: ep.target,
      body: fc.constant<BodySpec>(ep.body === 'none' ? { kind: 'none' } : { kind: 'json', template: validBody(ep.body, ctx), valid: true }),
    }).map(({ baseTarget, body }): HttpCase => ({
      family: 'http',
      endpoint: ep.name,
      method: ep.method,
      baseTarget,
      mutation: { kind: 'none' },
      version: 'HTTP/1.1',
      headers: [],
      body,
      framing: { kind: 'length' },
      lineEnd: '\r\n',
      latin1: false,
      expect: ep.expect,
    }));
  const fuzzed = (ep: (typeof eps)[number]) =>
    fc.record({
      method: fc.oneof({ weight: 12, arbitrary: fc.constant(ep.method) }, { weight: 3, arbitrary: fc.constantFrom(...METHODS) }, { weight: 1, arbitrary: fc.constantFrom(...JUNK_METHODS) }),
      baseTarget: ep.fuzzTarget,
      mutation: targetMutation(ctx),
      version: fc.oneof({ weight: 20, arbitrary: fc.constant('HTTP/1.1') }, { weight: 1, arbitrary: fc.constantFrom(...JUNK_VERSIONS) }),
      // Static files get more: Range is where their parser lives.
      headers: fc.array(headerMutation, { maxLength: ep.file ? 3 : 2 }),
      body: bodyArbitrary(ep.body, ctx),
      framing: framingArbitrary,
      lineEnd: fc.constantFrom<HttpCase['lineEnd']>('\r\n', '\r\n', '\r\n', '\r\n', '\r\n', '\r\n', '\r\n', '\r\n', '\r\n', '\n'),
      latin1: fc.constantFrom(false, false, false, false, false, false, false, true),
    }).map((c): HttpCase => ({ family: 'http', endpoint: ep.name, ...c }));
  return fc.oneof(...eps.map((ep) => fc.oneof({ weight: 15, arbitrary: valid(ep) }, { weight: 85, arbitrary: fuzzed(ep) })));
}

export function targetOf(c: HttpCase): string {
  return applyTargetMutation(c.baseTarget, c.mutation);
}

export function renderHttpCase(c: HttpCase): RawRequest {
  const body = renderBody(c.body);
  const framed = frameBody(body, c.framing, c.method);
  const base: [string, string][] = [['host', '127.0.0.1'], ...(c.body.kind === 'json' || c.body.kind === 'filler' ? [['content-type', 'application/json'] as [string, string]] : [])];
  const lines = applyHeaderMutations([...base, ...framed.headers], c.headers);
  const requestLine = c.version ? `${c.method} ${targetOf(c)} ${c.version}` : `${c.method} ${targetOf(c)}`;
  const head = `${[requestLine, ...lines].join(c.lineEnd)}${c.lineEnd}${c.lineEnd}`;
  return { head: Buffer.from(head, c.latin1 ? 'latin1' : 'utf8'), body: framed.bytes, method: c.method, incomplete: framed.incomplete };
}

const cut = (s: string, n = 160) => (s.length > n ? `${s.slice(0, n)}…(${s.length} chars)` : s);

export function describeHttpCase(c: HttpCase): string {
  const parts = [`${JSON.stringify(c.method)} ${JSON.stringify(cut(targetOf(c)))} ${c.version || '(no version)'}`];
  if (c.expect) parts.push(`valid ${c.endpoint}, expects ${c.expect.join('|')}`);
  else parts.push(`from ${c.endpoint}`);
  if (c.mutation.kind !== 'none') parts.push(`target ${c.mutation.kind}`);
  if (c.headers.length > 0) parts.push(`headers [${c.headers.map(describeHeaderMutation).join('; ')}]`);
  parts.push(describeBody(c.body), describeFraming(c.framing));
  if (c.lineEnd !== '\r\n') parts.push('bare LF line ends');
  if (c.latin1) parts.push('head as latin1');
  return parts.join(', ');
}
