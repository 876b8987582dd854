/**
 * Request bodies for the HTTP fuzz cases (http-cases.ts): a valid body for each endpoint that
 * takes one (chat, completions, vouchers), the same with fields replaced by values of the wrong
 * type or absurd size, bodies that are not JSON, and a few of several megabytes (where the
 * server's memory goes). Bodies are specs, rendered to bytes when the case is sent.
 */
import fc from 'fast-check';
import { deep, describeJson, describeString, Expand, fields, long, raw, renderJson, repeat } from './json-template.ts';
import type { JsonTemplate } from './json-template.ts';

export type BodyKind = 'chat' | 'completion' | 'voucher';

export type BodySpec =
  | { kind: 'none' }
  /** `valid`: the endpoint's schema accepts it */
  | { kind: 'json'; template: JsonTemplate; valid: boolean }
  | { kind: 'text'; text: string }
  | { kind: 'bytes'; bytes: Uint8Array }
  /** `size` bytes: `prefix`, then 'x' to the size (never valid JSON) */
  | { kind: 'filler'; size: number; prefix: string };

export interface BodyContext {
  packageId: string;
  modelName: string;
}

/** The server's limit is 4 MiB (signaling-server/http/server.ts); bodies on both sides of it. */
const MIB = 1 << 20;
const BIG_SIZES = [4 * MIB - 1, 4 * MIB, 4 * MIB + 1, 5_000_000];

const message = { role: 'user', content: 'Once upon a time' };

export function validBody(kind: BodyKind, ctx: BodyContext): { [key: string]: JsonTemplate } {
  switch (kind) {
    case 'chat':
      return { model: ctx.packageId, messages: [message], max_tokens: 8, temperature: 0 };
    case 'completion':
      return { model: ctx.packageId, prompt: 'Once upon a time', max_tokens: 8, temperature: 0 };
    case 'voucher':
      return {
        voucher: { client: `0x${'ab'.repeat(20)}`, cumulativeAmount: '1000', signature: `0x${'11'.repeat(65)}` },
        requestIds: ['4b0f4a6e-7f1e-4c3e-9d2a-5f0e8c1b2a3d'],
      };
  }
}

/** Field paths each body's mutations aim at (dots into objects, digits into arrays); unknown ones are junk fields. */
const PATHS: Record<BodyKind, string[]> = {
  chat: ['model', 'messages', 'messages.0', 'messages.0.role', 'messages.0.content', 'max_tokens', 'max_completion_tokens', 'temperature', 'top_p', 'seed', 'stream', 'stream_options', 'stream_options.include_usage', 'n', 'stop', 'signal', '__proto__', 'constructor', 'junk'],
  completion: ['model', 'prompt', 'prompt.0', 'max_tokens', 'temperature', 'top_p', 'seed', 'stream', 'n', 'stop', 'signal', '__proto__', 'junk'],
  voucher: ['voucher', 'voucher.client', 'voucher.cumulativeAmount', 'voucher.signature', 'requestIds', 'requestIds.0', '__proto__', 'junk'],
};

/** Values of the wrong type, at the edges of their type, or absurd in size. */
export const weirdValue: fc.Arbitrary<JsonTemplate> = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom<JsonTemplate>(null, true, false, 0, -1, 1.5, 2 ** 53 + 1, 1e308, -1e308, 5e-324, '', '0', '8', 'null', 'true', [], {}) },
  { weight: 2, arbitrary: fc.constantFrom(raw('1e999'), raw('-0'), raw('-1e999'), raw('123456789012345678901234567890'), raw('0.1e-400')) },
  { weight: 3, arbitrary: fc.string({ maxLength: 40 }) },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 20 }) },
  { weight: 1, arbitrary: fc.constantFrom(long(100_000), long(1_000_000, 'é'), long(100_000, '\u0000')) },
  { weight: 1, arbitrary: fc.constantFrom(deep(100), deep(10_000), deep(100_000)) },
  { weight: 1, arbitrary: fc.constantFrom(repeat(message, 10_000), repeat('x', 50_000), repeat(null, 100_000), fields(20_000)) },
  { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 3 }) as fc.Arbitrary<JsonTemplate> },
  { weight: 2, arbitrary: fc.array(fc.string({ maxLength: 10 }), { maxLength: 12 }) },
  { weight: 1, arbitrary: fc.constantFrom<JsonTemplate>({ role: 'user' }, { role: 'tool', content: 1 }, { content: 'x' }, [{ role: 'system', content: '' }], { polluted: true }) },
);

/** `obj` with the field at `path` set (or removed); own properties only, so '__proto__' is a field like any other. */
function withPath(obj: JsonTemplate, path: string[], value: JsonTemplate | undefined): JsonTemplate {
  if (path.length === 0) return value === undefined ? null : value;
  const [key, ...rest] = path;
  const base: JsonTemplate = obj !== null && typeof obj === 'object' && !(obj instanceof Expand) ? obj : {};
  if (Array.isArray(base) && /^\d+$/.test(key)) {
    const copy = [...base];
    const i = Number(key);
    if (value === undefined && rest.length === 0) copy.splice(i, 1);
    else copy[i] = withPath(copy[i] ?? null, rest, value);
    return copy;
  }
  const copy: { [key: string]: JsonTemplate } = {};
  for (const [k, v] of Object.entries(base)) Object.defineProperty(copy, k, { value: v, enumerable: true, writable: true, configurable: true });
  if (value === undefined && rest.length === 0) delete copy[key];
  else Object.defineProperty(copy, key, { value: withPath(Object.hasOwn(copy, key) ? copy[key] : null, rest, value), enumerable: true, writable: true, configurable: true });
  return copy;
}

function mutatedJson(kind: BodyKind, ctx: BodyContext): fc.Arbitrary<BodySpec> {
  const mutation = fc.record({ path: fc.constantFrom(...PATHS[kind]), value: fc.option(weirdValue, { freq: 6, nil: undefined }) });
  return fc.array(mutation, { minLength: 1, maxLength: 3 }).map((mutations) => ({
    kind: 'json' as const,
    template: mutations.reduce<JsonTemplate>((body, m) => withPath(body, m.path.split('.'), m.value), validBody(kind, ctx)),
    valid: false,
  }));
}

/** Text that is not the JSON an endpoint wants: broken, truncated, or JSON of the wrong shape. */
function notJson(kind: BodyKind | 'none', ctx: BodyContext): fc.Arbitrary<BodySpec> {
  const valid = kind === 'none' ? '{"a":1}' : renderJson(validBody(kind, ctx));
  const text = fc.oneof(
    fc.constantFrom('', '{', '}', '[', 'null', '"text"', '123', '{"a":1,}', "{'a':1}", '{"a":NaN}', '\ufeff{}', '{"model":1,"model":"x"}', '{"__proto__":{"polluted":true}}', '{"messages":[{"role":"user","content":"\\ud800"}]}', 'true false'),
    fc.nat({ max: valid.length }).map((n) => valid.slice(0, n)),
    fc.string({ maxLength: 20 }).map((junk) => `${valid}${junk}`),
    fc.string({ unit: 'grapheme', maxLength: 200 }),
  );
  return fc.oneof(
    { weight: 4, arbitrary: text.map((t) => ({ kind: 'text' as const, text: t })) },
    { weight: 1, arbitrary: fc.uint8Array({ minLength: 1, maxLength: 512 }).map((bytes) => ({ kind: 'bytes' as const, bytes })) },
  );
}

/** The rare multi-megabyte bodies, around the server's 4 MiB limit. */
function big(kind: BodyKind | 'none', ctx: BodyContext): fc.Arbitrary<BodySpec> {
  const filler = fc.record({ size: fc.constantFrom(...BIG_SIZES), prefix: fc.constantFrom('{"messages":[{"role":"user","content":"', '{"prompt":"', '[', '') }).map((f) => ({ kind: 'filler' as const, ...f }));
  if (kind === 'none') return filler;
  // Valid JSON just under the limit: a 4,000,000-character message the server must tokenize or refuse.
  const field = kind === 'chat' ? 'messages' : kind === 'completion' ? 'prompt' : 'requestIds';
  const huge: JsonTemplate = kind === 'chat' ? [{ role: 'user', content: long(4_000_000) }] : kind === 'completion' ? long(4_000_000) : repeat('x', 1_000_000);
  return fc.oneof(filler, fc.constant({ kind: 'json' as const, template: { ...validBody(kind, ctx), [field]: huge }, valid: false }));
}

/** A body for an endpoint of `kind` ('none': one that takes no body, where a body is itself the fuzz). */
export function bodyArbitrary(kind: BodyKind | 'none', ctx: BodyContext): fc.Arbitrary<BodySpec> {
  if (kind === 'none') {
    return fc.oneof(
      { weight: 200, arbitrary: fc.constant<BodySpec>({ kind: 'none' }) },
      { weight: 20, arbitrary: notJson('none', ctx) },
      { weight: 10, arbitrary: weirdValue.map((template) => ({ kind: 'json' as const, template, valid: false })) },
      { weight: 1, arbitrary: big('none', ctx) },
    );
  }
  return fc.oneof(
    { weight: 40, arbitrary: fc.constant<BodySpec>({ kind: 'json', template: validBody(kind, ctx), valid: true }) },
    { weight: 80, arbitrary: mutatedJson(kind, ctx) },
    { weight: 30, arbitrary: notJson(kind, ctx) },
    { weight: 10, arbitrary: fc.constant<BodySpec>({ kind: 'none' }) },
    { weight: 3, arbitrary: big(kind, ctx) },
  );
}

export function renderBody(body: BodySpec): Buffer {
  switch (body.kind) {
    case 'none':
      return Buffer.alloc(0);
    case 'json':
      return Buffer.from(renderJson(body.template), 'utf8');
    case 'text':
      return Buffer.from(body.text, 'utf8');
    case 'bytes':
      return Buffer.from(body.bytes);
    case 'filler': {
      const bytes = Buffer.alloc(body.size, 'x');
      bytes.write(body.prefix.slice(0, body.size), 0, 'utf8');
      return bytes;
    }
  }
}

export function describeBody(body: BodySpec): string {
  switch (body.kind) {
    case 'none':
      return 'no body';
    case 'json':
      return `json ${describeJson(body.template)}`;
    case 'text':
      return `text ${describeString(body.text)}`;
    case 'bytes':
      return `bytes(${body.bytes.length}) ${Buffer.from(body.bytes.subarray(0, 24)).toString('hex')}${body.bytes.length > 24 ? '…' : ''}`;
    case 'filler':
      return `filler(${body.size} bytes) after ${describeString(body.prefix)}`;
  }
}
