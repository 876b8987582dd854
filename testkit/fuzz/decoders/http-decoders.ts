/**
 * The HTTP server's decoders under fuzz: request bodies (read under the size limit and the
 * shared byte budget, then JSON), the chat and text completion bodies, the request target,
 * path parameters, Range headers, /api/route's query and the Authorization header. Bodies and
 * targets come from the server fuzz's own generators (http-bodies.ts, http-targets.ts,
 * http-headers.ts), so the long run here covers what the server fuzz sends, decoder by decoder.
 */
import { PassThrough } from 'node:stream';
import type { IncomingMessage } from 'node:http';
import fc from 'fast-check';
import { parseChatMessages, renderPlainChat } from '../../../shared/openai/chat-template.ts';
import { parsePrompt } from '../../../shared/openai/completions.ts';
import { parseSamplingParams, requireObject } from '../../../shared/openai/params.ts';
import { bearerToken } from '../../../signaling-server/api-keys/gateway-keys.ts';
import { createBodyBudget, readJsonBody } from '../../../signaling-server/http/request-body.ts';
import { parseRequestTarget, pathParameter } from '../../../signaling-server/http/request-target.ts';
import { parseRouteQuery } from '../../../signaling-server/http/route-query.ts';
import { parseByteRange } from '../../../signaling-server/http/static-files.ts';
import { bodyArbitrary, describeBody, renderBody } from '../http-bodies.ts';
import type { BodyKind, BodySpec } from '../http-bodies.ts';
import { RANGE_VALUES } from '../http-headers.ts';
import { applyTargetMutation, targetMutation } from '../http-targets.ts';
import type { TargetContext } from '../http-targets.ts';
import type { DecoderSpec } from './decoder.ts';

const PACKAGE = 'a'.repeat(64);
const PEER = '12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo';
const BODY_LIMIT = 4 << 20;
const targets: TargetContext = {
  packageId: PACKAGE,
  modelName: 'stories260K',
  packageFiles: ['manifest.json', 'block-0.onnx'],
  ortFiles: ['ort-wasm-simd-threaded.wasm'],
  webPaths: ['/', '/donor/', '/chat/'],
  peerIds: [PEER],
  canaryFromRoot: 'outside/canary.txt',
  canaryAbsolute: '/tmp/fuzz/outside/canary.txt',
};
const VALID_TARGETS = ['/v1/models', '/v1/chat/completions', `/api/route?package=${PACKAGE}&client=${PEER}`, `/v1/ledger/peers/${PEER}`, `/api/vouchers/0x${'ab'.repeat(20)}`, `/packages/${PACKAGE}/block-0.onnx`, '/donor/?threads=2'];
const target = fc.oneof(
  { weight: 6, arbitrary: fc.tuple(fc.constantFrom(...VALID_TARGETS), targetMutation(targets)).map(([t, m]) => applyTargetMutation(t, m)) },
  { weight: 1, arbitrary: fc.string({ maxLength: 80 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }) },
);

const describeText = (t: string) => (t.length > 160 ? `${JSON.stringify(t.slice(0, 160))}…(${t.length} chars)` : JSON.stringify(t));

/** The body as a client sends it: in chunks, with an honest, lying or no Content-Length. */
interface BodyCase {
  body: BodySpec;
  chunk: number;
  length: 'honest' | 'none' | 'short' | 'huge';
}

function streamOf(c: BodyCase, bytes: Buffer): IncomingMessage {
  const stream = new PassThrough();
  const declared = { honest: bytes.byteLength, none: undefined, short: Math.max(0, bytes.byteLength - 1), huge: 2 ** 40 }[c.length];
  Object.assign(stream, { headers: declared === undefined ? {} : { 'content-length': String(declared) } });
  // At most 256 writes: a 5 MB body in 1-byte chunks would time the harness, not the reader.
  const chunk = Math.max(c.chunk, Math.ceil(bytes.byteLength / 256));
  for (let at = 0; at < bytes.byteLength; at += chunk) stream.write(bytes.subarray(at, at + chunk));
  stream.end();
  return stream as unknown as IncomingMessage;
}

/** The JSON value a body parses to (what the endpoints' decoders get), or the text when it is not JSON. */
function bodyValue(body: BodySpec): { json: unknown } | { text: string } {
  const text = renderBody(body).toString('utf8');
  try {
    return { json: text === '' ? undefined : JSON.parse(text) };
  } catch {
    return { text };
  }
}

/** An OpenAI endpoint's body as its handler reads it: an object, its prompt (`prompt`), then the sampling parameters. */
const completionBody = (prompt: (p: Record<string, unknown>) => string) => (body: BodySpec) => {
  const value = bodyValue(body);
  if ('text' in value) return 'not JSON (the body reader answers 400 invalid_json)';
  const p = requireObject(value.json);
  return { prompt: prompt(p), sampling: parseSamplingParams(p, { randomSeed }) };
};

const bodyOf = (kind: BodyKind) => bodyArbitrary(kind, { packageId: PACKAGE, modelName: 'stories260K' });
const randomSeed = () => 7;

export function httpDecoders(): DecoderSpec<never>[] {
  const specs: DecoderSpec<any, any>[] = [
    {
      name: 'request body',
      from: 'every POST to /v1 and /api: bytes in chunks, under the 4 MiB limit and the bytes every request holds at once',
      input: fc.record({ body: fc.oneof(bodyOf('chat'), bodyOf('completion'), bodyOf('voucher')), chunk: fc.constantFrom(1, 7, 1024, 65_536), length: fc.constantFrom('honest' as const, 'none' as const, 'short' as const, 'huge' as const) }),
      async decode(c: BodyCase) {
        const bytes = renderBody(c.body);
        const budget = createBodyBudget(8 << 20);
        let held = 0;
        const tracked = { take: (n: number) => (budget.take(n) ? ((held += n), true) : false), give: (n: number) => ((held -= n), budget.give(n)) };
        try {
          const read = await readJsonBody(streamOf(c, bytes), BODY_LIMIT, tracked);
          return { read, held, size: bytes.byteLength };
        } catch (err) {
          // A refused body gives back every byte it took, or the budget shrinks for everyone after.
          if (held !== 0) throw new Error(`a refused body left ${held} bytes taken from the budget`, { cause: err });
          throw err;
        }
      },
      accepted: (r: { read: { held: number }; held: number; size: number }) => (r.read.held === r.held && r.held === r.size ? undefined : `holds ${r.held} bytes, says ${r.read.held}, sent ${r.size}`),
      describe: (c: BodyCase) => `${describeBody(c.body)} in chunks of ${c.chunk}, Content-Length ${c.length}`,
    },
    {
      name: 'chat completion body',
      from: 'POST /v1/chat/completions: messages and sampling parameters',
      input: bodyOf('chat'),
      decode: completionBody((p) => renderPlainChat(parseChatMessages(p.messages, 'messages', 512))),
      describe: describeBody,
    },
    {
      name: 'text completion body',
      from: 'POST /v1/completions: prompt and sampling parameters',
      input: bodyOf('completion'),
      decode: completionBody((p) => parsePrompt(p.prompt)),
      describe: describeBody,
    },
    {
      name: 'request target',
      from: 'every request line: the path and query, before any route sees them',
      input: target,
      decode: (t: string) => parseRequestTarget(t).href,
      describe: describeText,
    },
    {
      name: 'path parameter',
      from: 'GET /v1/ledger/peers/<peer id> and /api/vouchers/<address>: the percent-encoded tail of the path',
      input: fc.tuple(fc.constantFrom('/v1/ledger/peers/', '/api/vouchers/'), fc.oneof(fc.constantFrom(PEER, `0x${'ab'.repeat(20)}`, '%ZZ', '%', '%E0%80', '%ff%fe', '%F4%90%80%80'), fc.string({ maxLength: 30 }))).map(([prefix, tail]) => `${prefix}${tail}`),
      decode: (t: string) => pathParameter(parseRequestTarget(t), t.startsWith('/v1') ? '/v1/ledger/peers/' : '/api/vouchers/', 'id'),
      describe: describeText,
    },
    {
      name: 'Range header',
      from: 'GET of a package file or page with a Range header (the swarm\'s web seed)',
      input: fc.record({ header: fc.oneof(fc.constantFrom(...RANGE_VALUES), fc.string({ maxLength: 40 }), fc.tuple(fc.nat(), fc.nat()).map(([a, b]) => `bytes=${a}-${b}`)), size: fc.constantFrom(0, 1, 100, 1 << 20) }),
      decode: ({ header, size }: { header: string; size: number }) => parseByteRange(header, size),
      // No range (a header it does not read) is the whole file, 200; unsatisfiable is a 416.
      refusedAs: (r: ReturnType<typeof parseByteRange>) => (r === undefined ? 'ignored (whole file)' : r === 'unsatisfiable' ? 'unsatisfiable (416)' : undefined),
      accepted: (r: ReturnType<typeof parseByteRange>, { size }: { size: number }) => {
        const range = r as { start: number; end: number };
        return Number.isSafeInteger(range.start) && Number.isSafeInteger(range.end) && range.start >= 0 && range.start <= range.end && range.end < size ? undefined : `range ${range.start}-${range.end} of a ${size}-byte file`;
      },
      describe: ({ header, size }: { header: string; size: number }) => `${describeText(header)} of ${size} bytes`,
    },
    {
      name: 'route query',
      from: 'GET /api/route?package=&client=&avoid=: which route a client asks for',
      input: fc.oneof(
        target.map((t) => (t.includes('?') ? t.slice(t.indexOf('?') + 1) : t)),
        fc
          .array(fc.tuple(fc.constantFrom('package', 'client', 'avoid', 'x'), fc.oneof(fc.constantFrom('', PACKAGE, PEER, `${PEER},${PEER}`, ',', 'x'.repeat(200), Array(70).fill(PEER).join(',')), fc.string({ maxLength: 20 }))), { maxLength: 4 })
          .map((pairs) => new URLSearchParams(pairs).toString()),
      ),
      decode: (q: string) => parseRouteQuery(new URLSearchParams(q), PACKAGE),
      describe: describeText,
    },
    {
      name: 'Authorization header',
      from: 'every /v1 request: the API key',
      input: fc.oneof(fc.constantFrom('Bearer sk-infermesh-abc', 'Bearer ', 'bearer  x  ', 'Basic %%%', 'Bearer a b', `Bearer ${'x'.repeat(5_000)}`, '\u00ff\u00fe'), fc.string({ maxLength: 40 }), fc.string({ maxLength: 20 }).map((s) => `Bearer ${s}`)),
      decode: (authorization: string) => bearerToken({ authorization }),
      accepted: (token: string | undefined) => (token === undefined || /^\S+$/.test(token) ? undefined : `token ${JSON.stringify(token)} holds spaces`),
      describe: describeText,
    },
  ];
  return specs as DecoderSpec<never>[];
}
