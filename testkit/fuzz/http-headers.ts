/**
 * Header mutations for the HTTP fuzz cases (http-cases.ts): Range values a web seed's parser
 * must survive, junk Content-Type, Authorization, Expect, Connection and Upgrade values, random
 * names and values, a missing Host, thousands of headers, and lines that are not headers at all.
 */
import fc from 'fast-check';

export type HeaderMutation =
  | { kind: 'add'; name: string; value: string }
  | { kind: 'range'; value: string; ifRange: string | null }
  | { kind: 'drop-host' }
  | { kind: 'many'; count: number }
  /** a line written as is among the headers */
  | { kind: 'line'; line: string };

/** Byte ranges at and past every edge: beyond 2^53, suffixes, several ranges, other units, junk. */
export const RANGE_VALUES = [
  'bytes=0-99', 'bytes=-500', 'bytes=99999999999999999999999-', 'bytes=0-99999999999999999999', 'bytes=-99999999999999999999', 'bytes=9007199254740993-',
  'bytes=0-0,5-10', 'bytes=0-0,-1', 'bytes=-0', 'bytes=5-1', 'bytes=abc', 'items=0-5', 'bytes=', 'bytes=-', 'bytes=  1-2', 'bytes=1-2 ', 'bytes=1e3-', 'bytes=0x10-',
  'bytes=-1-2', 'bytes=0--1', 'bytes=١-٢', `bytes=${'0-1,'.repeat(2_000)}0-1`, 'bytes=0-1\u0000', 'Bytes=0-1',
];

const VALUES_BY_NAME: Record<string, string[]> = {
  'content-type': ['application/json', 'text/plain', 'application/json; charset=utf-16', 'multipart/form-data; boundary=', '', ';;;', 'application/x-www-form-urlencoded', 'application/json'.repeat(100)],
  authorization: ['Bearer ', `Bearer ${'x'.repeat(5_000)}`, 'Basic %%%', 'Bearer sk-infermesh', 'Digest', '\u00ff\u00fe'],
  expect: ['100-continue', '200-ok', 'junk'],
  connection: ['close', 'keep-alive', 'Upgrade', 'upgrade, close', 'junk'],
  upgrade: ['websocket', 'h2c', 'junk'],
  'content-encoding': ['gzip', 'br', 'deflate', 'junk'],
  'accept-encoding': ['gzip', '*', 'junk'],
  origin: ['null', 'http://evil.example', ''],
  'access-control-request-headers': ['range', 'x'.repeat(3_000), '\u00ff'],
  'if-range': ['"etag"', 'Mon, 01 Jan 2001 00:00:00 GMT', ''],
  host: ['', 'evil.example', '127.0.0.1:1', '[::1', 'x'.repeat(1_000)],
};

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,30}$/;

const headerValue = (name: string) =>
  fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom(...(Object.hasOwn(VALUES_BY_NAME, name) ? VALUES_BY_NAME[name] : ['x'])) },
    { weight: 2, arbitrary: fc.string({ maxLength: 40 }) },
    { weight: 1, arbitrary: fc.string({ unit: 'grapheme', maxLength: 20 }) },
    { weight: 1, arbitrary: fc.constantFrom('a'.repeat(8_000), 'a'.repeat(20_000)) },
  );

export const headerMutation: fc.Arbitrary<HeaderMutation> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc
      .oneof({ weight: 3, arbitrary: fc.constantFrom(...Object.keys(VALUES_BY_NAME), 'x-junk', 'cookie', 'te', 'transfer-encoding', 'user-agent') }, { weight: 2, arbitrary: fc.stringMatching(TOKEN) }, { weight: 1, arbitrary: fc.string({ minLength: 1, maxLength: 12 }) })
      .chain((name) => headerValue(name).map((value) => ({ kind: 'add' as const, name, value }))),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('range' as const),
      value: fc.oneof(fc.constantFrom(...RANGE_VALUES), fc.tuple(fc.oneof(fc.nat(), fc.constant('')), fc.oneof(fc.nat(), fc.constant(''))).map(([a, b]) => `bytes=${a}-${b}`)),
      ifRange: fc.option(fc.constantFrom('"x"', 'junk'), { freq: 5 }),
    }),
  },
  { weight: 1, arbitrary: fc.constant<HeaderMutation>({ kind: 'drop-host' }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('many' as const), count: fc.oneof(fc.integer({ min: 50, max: 500 }), fc.integer({ min: 1_500, max: 3_000 })) }) },
  {
    weight: 1,
    arbitrary: fc.constantFrom('Host : x', ' folded continuation', 'NoColonHere', ': empty-name', 'X-A: b\rX-B: c', 'x-nul: a\u0000b', 'x-tab:\tvalue', 'x-ctl: \u0007', 'Content-Length : 5').map((line) => ({ kind: 'line' as const, line })),
  },
);

/** The header lines of a request after its mutations; `base` is [name, value] pairs with Host first. */
export function applyHeaderMutations(base: [string, string][], mutations: HeaderMutation[]): string[] {
  let headers = [...base];
  const lines: string[] = [];
  for (const m of mutations) {
    switch (m.kind) {
      case 'add':
        headers.push([m.name, m.value]);
        break;
      case 'range':
        headers.push(['range', m.value]);
        if (m.ifRange !== null) headers.push(['if-range', m.ifRange]);
        break;
      case 'drop-host':
        headers = headers.filter(([name]) => name.toLowerCase() !== 'host');
        break;
      case 'many':
        for (let i = 0; i < m.count; i++) headers.push([`x-many-${i}`, String(i)]);
        break;
      case 'line':
        lines.push(m.line);
        break;
    }
  }
  return [...headers.map(([name, value]) => `${name}: ${value}`), ...lines];
}

export function describeHeaderMutation(m: HeaderMutation): string {
  const cut = (s: string) => (s.length > 60 ? `${JSON.stringify(s.slice(0, 60))}…(${s.length} chars)` : JSON.stringify(s));
  switch (m.kind) {
    case 'add':
      return `${cut(m.name)}: ${cut(m.value)}`;
    case 'range':
      return `range: ${cut(m.value)}${m.ifRange !== null ? `, if-range: ${m.ifRange}` : ''}`;
    case 'drop-host':
      return 'no Host';
    case 'many':
      return `${m.count} extra headers`;
    case 'line':
      return `line ${cut(m.line)}`;
  }
}
