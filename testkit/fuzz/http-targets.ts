/**
 * Request targets for the HTTP fuzz cases (http-cases.ts): the server's real endpoints and
 * static roots, valid, then mutated with broken percent-encoding, overlong UTF-8, `..` in
 * every encoding aimed at the canary beside the package folder and at /etc/passwd,
 * protocol-relative and absolute forms, huge queries and raw unicode.
 */
import fc from 'fast-check';
import type { BodyKind } from './http-bodies.ts';

export interface TargetContext {
  packageId: string;
  modelName: string;
  /** the package's files (manifest paths) */
  packageFiles: string[];
  /** files onnxruntime-web serves under /ort/ */
  ortFiles: string[];
  /** paths of the built web app: '/', '/donor/', '/chat/', assets */
  webPaths: string[];
  /** peer ids that look real (the harness's own p2p identities) */
  peerIds: string[];
  /** the canary's path from the sandbox root (the package folder's parent): 'outside/canary.txt' */
  canaryFromRoot: string;
  /** the canary's absolute path */
  canaryAbsolute: string;
}

export interface Endpoint {
  /** e.g. 'GET /v1/models/<id>', for per-endpoint tallies */
  name: string;
  method: 'GET' | 'POST';
  /** what a valid request gets: checked on the cases left valid */
  expect: number[];
  body: BodyKind | 'none';
  /** valid targets of this endpoint */
  target: fc.Arbitrary<string>;
  /** targets with fuzzed parameters (path segments, query values), before any target mutation */
  fuzzTarget: fc.Arbitrary<string>;
  /** a static file: Range headers apply */
  file?: boolean;
}

const ADDRESS = `0x${'ab'.repeat(20)}`;

/** Segments for path parameters: the real value most often, then what the server must refuse. */
function fuzzSegment(valid: string[]): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom(...valid.map(encodeURIComponent)) },
    { weight: 2, arbitrary: fc.string({ maxLength: 30 }).map(encodeURIComponent) },
    { weight: 2, arbitrary: fc.constantFrom(...PERCENT_GARBAGE) },
    { weight: 1, arbitrary: fc.constantFrom('', '.', '..', '%2e%2e', 'x'.repeat(10_000), `${valid[0]}/extra`, `${valid[0]}%2F..%2F..`) },
  );
}

const segment = (valid: string[]) => fc.constantFrom(...valid.map(encodeURIComponent));

export function endpoints(ctx: TargetContext): Endpoint[] {
  const fuzzed = table(ctx, fuzzSegment);
  return table(ctx, segment).map((ep, i) => ({ ...ep, fuzzTarget: fuzzed[i].target }));
}

/** The endpoints, with path and query parameters drawn by `segment` (valid values, or fuzzed ones). */
function table(ctx: TargetContext, segment: (valid: string[]) => fc.Arbitrary<string>): Omit<Endpoint, 'fuzzTarget'>[] {
  const pkg = `/packages/${ctx.packageId}/`;
  const query = (params: [string, fc.Arbitrary<string>][]) =>
    fc.tuple(...params.map(([k, v]) => fc.option(v.map((value) => `${k}=${value}`), { freq: 4 }))).map((parts) => {
      const q = parts.filter((p): p is string => p !== null).join('&');
      return q ? `?${q}` : '';
    });
  const blockData = ctx.packageFiles.find((f) => f.endsWith('.data')) ?? 'block-0.data';
  return [
    { name: 'GET /api/info', method: 'GET', expect: [200], body: 'none', target: fc.constant('/api/info') },
    {
      name: 'GET /api/route',
      method: 'GET',
      expect: [503],
      body: 'none',
      target: query([['package', segment([ctx.packageId])], ['client', segment(ctx.peerIds)]]).map((q) => `/api/route${q}`),
    },
    { name: 'GET /api/peers', method: 'GET', expect: [200], body: 'none', target: fc.constant('/api/peers') },
    { name: 'POST /api/vouchers', method: 'POST', expect: [400], body: 'voucher', target: fc.constant('/api/vouchers') },
    { name: 'GET /api/vouchers/<address>', method: 'GET', expect: [200], body: 'none', target: segment([ADDRESS, ADDRESS.toUpperCase().replace('0X', '0x')]).map((a) => `/api/vouchers/${a}`) },
    { name: 'POST /v1/chat/completions', method: 'POST', expect: [503], body: 'chat', target: fc.constant('/v1/chat/completions') },
    { name: 'POST /v1/completions', method: 'POST', expect: [503], body: 'completion', target: fc.constant('/v1/completions') },
    { name: 'GET /v1/models', method: 'GET', expect: [200], body: 'none', target: fc.constant('/v1/models') },
    { name: 'GET /v1/models/<id>', method: 'GET', expect: [200], body: 'none', target: segment([ctx.packageId]).map((id) => `/v1/models/${id}`) },
    { name: 'GET /v1/ledger', method: 'GET', expect: [200], body: 'none', target: fc.constant('/v1/ledger') },
    // 404 until the peer is judged: the trust cases get the harness's identities convicted.
    { name: 'GET /v1/ledger/peers/<peerId>', method: 'GET', expect: [200, 404], body: 'none', target: segment(ctx.peerIds).map((id) => `/v1/ledger/peers/${id}`) },
    { name: 'GET web app', method: 'GET', expect: [200], body: 'none', target: fc.constantFrom(...ctx.webPaths) },
    { name: 'GET /ort/<file>', method: 'GET', expect: [200], body: 'none', target: fc.constantFrom(...ctx.ortFiles).map((f) => `/ort/${f}`), file: true },
    { name: 'GET /packages/<id>/manifest.json', method: 'GET', expect: [200], body: 'none', target: fc.constant(`${pkg}manifest.json`), file: true },
    { name: 'GET /packages/<id>/<file>', method: 'GET', expect: [200, 206], body: 'none', target: fc.constantFrom(blockData, ...ctx.packageFiles).map((f) => `${pkg}${f}`), file: true },
  ];
}

/** Percent-encoding the server must refuse or decode safely: bad escapes, overlong and surrogate UTF-8, NUL, newlines. */
export const PERCENT_GARBAGE = ['%ZZ', '%', '%f', '%ff', '%FF%FE', '%C0', '%C0%AE', '%c0%80', '%E0%80%AE', '%ED%A0%80', '%F4%90%80%80', '%00', '%0a', '%0d%0a', '%25', '%%', '%u0041', '%e2%80%ae'];

/** `..` and `/` as a decoder might read them: plain, percent-encoded (once, twice), overlong UTF-8, backslashes, fullwidth. */
export const TRAVERSALS = ['../', '..%2f', '..%2F', '%2e%2e/', '%2e%2e%2f', '%2E%2E%2F', '.%2e/', '%2e./', '..%5c', '..\\', '%c0%ae%c0%ae/', '%c0%ae%c0%ae%c0%af', '%e0%80%ae%e0%80%ae/', '%252e%252e%252f', '..%252f', '....//', '..;/', '%u002e%u002e/', '..%00/', '..%c0%af', '..%ef%bc%8f'];

/** Whole targets known to have broken URL parsers, this server's included. */
function nastyTargets(ctx: TargetContext): string[] {
  const pkg = `/packages/${ctx.packageId}/`;
  return [
    '//[', '//%2f%c0%ae%c0%ae/etc/passwd', '//', '///', '//x', '//x/v1/models', '/%', '*', '', 'v1/models', '?', '#', '/#', '/v1/models#x', '/api/peers?#',
    'http://127.0.0.1/v1/models', 'http://[::1', 'http://x:99999/', 'http://evil.example/../../etc/passwd', 'https://127.0.0.1/api/info', 'file:///etc/passwd',
    '/..', '/./', '/%2e%2e/', '/\\..\\..\\etc\\passwd', '/%00', '/v1/models%00', '/v1/', '/api/', '/v1', '/api', '/v1//models', '/api/vouchers/', '/v1/models/', '/v1/ledger/peers/',
    `${pkg}..%2foutside%2fcanary.txt`, `${pkg}%2e%2e/outside/canary.txt`, `${pkg}../outside/canary.txt`, `/packages/${ctx.packageId}`, '/packages/', '/packages/%2e%2e/outside/canary.txt',
    `/ort/..%2f..%2f..%2f..%2f..%2f..%2fetc%2fpasswd`, `/${'%2e%2e%2f'.repeat(12)}etc/passwd`, `/${'..%2f'.repeat(12)}${ctx.canaryAbsolute.slice(1)}`,
  ];
}

export type TargetMutation =
  | { kind: 'none' }
  | { kind: 'insert'; at: number; text: string }
  | { kind: 'traversal'; prefix: string; step: string; steps: number; toward: string }
  | { kind: 'nasty'; target: string }
  | { kind: 'query'; unit: string; times: number }
  | { kind: 'unicode'; text: string }
  | { kind: 'absolute'; origin: string }
  | { kind: 'fragment'; text: string };

export function targetMutation(ctx: TargetContext): fc.Arbitrary<TargetMutation> {
  const prefixes = ['/', '/ort/', `/packages/${ctx.packageId}/`, '/donor/', '/assets/', '/v1/', '/api/', '/v1/models/', '/api/vouchers/'];
  // From the package folder the canary is one level up; from anywhere else, go to / and down the absolute path.
  const towards = ['etc/passwd', ctx.canaryAbsolute.slice(1), ctx.canaryFromRoot];
  return fc.oneof(
    { weight: 30, arbitrary: fc.constant<TargetMutation>({ kind: 'none' }) },
    { weight: 8, arbitrary: fc.record({ kind: fc.constant('insert' as const), at: fc.double({ min: 0, max: 1, noNaN: true }), text: fc.constantFrom(...PERCENT_GARBAGE, ...TRAVERSALS, '//', '/./', ';', '\\', '@', ':') }) },
    {
      weight: 8,
      arbitrary: fc.record({ kind: fc.constant('traversal' as const), prefix: fc.constantFrom(...prefixes), step: fc.constantFrom(...TRAVERSALS), steps: fc.integer({ min: 1, max: 12 }), toward: fc.constantFrom(...towards) }),
    },
    { weight: 6, arbitrary: fc.constantFrom(...nastyTargets(ctx)).map((target) => ({ kind: 'nasty' as const, target })) },
    { weight: 3, arbitrary: fc.record({ kind: fc.constant('query' as const), unit: fc.constantFrom('a', 'x=1&', '%ZZ', '&', '=', 'k=%ff&', 'é'), times: fc.oneof(fc.integer({ min: 1, max: 2_000 }), fc.integer({ min: 2_000, max: 40_000 })) }) },
    { weight: 3, arbitrary: fc.record({ kind: fc.constant('unicode' as const), text: fc.oneof(fc.string({ unit: 'grapheme', minLength: 1, maxLength: 20 }), fc.string({ unit: 'binary', minLength: 1, maxLength: 10 })) }) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('absolute' as const), origin: fc.constantFrom('http://127.0.0.1', 'http://localhost:1', 'http://evil.example', '//evil.example', 'http://[::1]', 'HTTP://x', 'ws://x') }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('fragment' as const), text: fc.string({ maxLength: 20 }) }) },
  );
}

/** The raw request-target: characters U+0080..U+00FF stand for raw bytes when the head is sent as latin1. */
export function applyTargetMutation(target: string, m: TargetMutation): string {
  switch (m.kind) {
    case 'none':
      return target;
    case 'insert': {
      // Into the path, never before its leading '/': the server must see this route with garbage in it.
      const pathEnd = target.includes('?') ? target.indexOf('?') : target.length;
      const at = 1 + Math.floor(m.at * Math.max(0, pathEnd - 1));
      return `${target.slice(0, at)}${m.text}${target.slice(at)}`;
    }
    case 'traversal':
      return `${m.prefix}${m.step.repeat(m.steps)}${m.toward}`;
    case 'nasty':
      return m.target;
    case 'query':
      return `${target}${target.includes('?') ? '&' : '?'}${m.unit.repeat(m.times)}`;
    case 'unicode':
      return `${target}${m.text}`;
    case 'absolute':
      return `${m.origin}${target}`;
    case 'fragment':
      return `${target}#${m.text}`;
  }
}
