/**
 * Inputs for the decoder fuzz: valid encodings with a few edits (the cases that reach deep into
 * a decoder: a length one past the bytes, a count of 2^32−1, a NaN where a size goes), random
 * bytes, and JSON documents with a field set to a value of the wrong type or size. Used by the
 * decoder tables (wire-decoders.ts, trust-decoders.ts, package-decoders.ts, http-decoders.ts).
 */
import fc from 'fast-check';
import { Expand, renderJson } from '../json-template.ts';
import type { JsonTemplate } from '../json-template.ts';
import { weirdValue } from '../http-bodies.ts';

export type ByteEdit =
  | { kind: 'set'; at: number; value: number }
  | { kind: 'truncate'; at: number }
  | { kind: 'append'; bytes: Uint8Array }
  | { kind: 'insert'; at: number; bytes: Uint8Array }
  | { kind: 'delete'; at: number; count: number }
  | { kind: 'u32'; at: number; value: number }
  | { kind: 'f32'; at: number; value: number };

/** Where lengths, counts and sizes break decoders: zero, one, the sign bit, the top. */
const U32_EDGES = [0, 1, 2, 0xff, 0xffff, 2 ** 24, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff];
const F32_EDGES = [Number.NaN, Infinity, -Infinity, -0, 3.4e38, -3.4e38, 1e-45, 2 ** 31, -1];

const at = fc.nat({ max: 4096 });
export const byteEdit: fc.Arbitrary<ByteEdit> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('set' as const), at, value: fc.integer({ min: 0, max: 255 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('truncate' as const), at }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('append' as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 64 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('insert' as const), at, bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('delete' as const), at, count: fc.integer({ min: 1, max: 16 }) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('u32' as const), at, value: fc.constantFrom(...U32_EDGES) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('f32' as const), at, value: fc.constantFrom(...F32_EDGES) }) },
);

/** `bytes` with `edit` applied; positions wrap around the length, so every edit lands. */
export function applyByteEdit(bytes: Uint8Array, edit: ByteEdit): Uint8Array {
  const n = bytes.byteLength;
  const pos = (p: number) => (n === 0 ? 0 : p % n);
  switch (edit.kind) {
    case 'set': {
      if (n === 0) return bytes;
      const out = bytes.slice();
      out[pos(edit.at)] = edit.value;
      return out;
    }
    case 'truncate':
      return bytes.slice(0, pos(edit.at));
    case 'append':
      return concat(bytes, edit.bytes);
    case 'insert':
      return concat(bytes.subarray(0, pos(edit.at)), edit.bytes, bytes.subarray(pos(edit.at)));
    case 'delete':
      return concat(bytes.subarray(0, pos(edit.at)), bytes.subarray(pos(edit.at) + edit.count));
    case 'u32':
    case 'f32': {
      if (n < 4) return bytes;
      const out = bytes.slice();
      const view = new DataView(out.buffer);
      const p = pos(edit.at) % (n - 3);
      if (edit.kind === 'u32') view.setUint32(p, edit.value, true);
      else view.setFloat32(p, edit.value, true);
      return out;
    }
  }
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.byteLength, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.byteLength;
  }
  return out;
}

/** Valid encodings (a fifth), the same with 1–6 edits (most), random bytes, and a kind byte before random bytes. */
export function mutatedBytes(valid: fc.Arbitrary<Uint8Array>, kindBytes: number[] = []): fc.Arbitrary<Uint8Array> {
  const random = fc.uint8Array({ maxLength: 512 });
  return fc.oneof(
    { weight: 4, arbitrary: valid },
    { weight: 12, arbitrary: fc.tuple(valid, fc.array(byteEdit, { minLength: 1, maxLength: 6 })).map(([bytes, edits]) => edits.reduce(applyByteEdit, bytes)) },
    { weight: 2, arbitrary: random },
    {
      weight: kindBytes.length > 0 ? 2 : 0,
      arbitrary: fc.tuple(fc.constantFrom(...(kindBytes.length > 0 ? kindBytes : [0])), random).map(([kind, rest]) => concat(Uint8Array.of(kind), rest)),
    },
  );
}

/** Every path into a JSON value (object keys and array indices), the root included. */
function paths(value: unknown, prefix: (string | number)[] = [], out: (string | number)[][] = []): (string | number)[][] {
  out.push(prefix);
  if (Array.isArray(value)) value.slice(0, 8).forEach((v, i) => paths(v, [...prefix, i], out));
  else if (value !== null && typeof value === 'object' && !(value instanceof Expand)) for (const [k, v] of Object.entries(value)) paths(v, [...prefix, k], out);
  return out;
}

/** `value` with the field at `path` set to `to` (undefined: removed); own properties only, so '__proto__' is a field. */
function setPath(value: unknown, path: (string | number)[], to: unknown): unknown {
  if (path.length === 0) return to === undefined ? null : to;
  const [key, ...rest] = path;
  if (Array.isArray(value) && typeof key === 'number') {
    const copy = [...value];
    if (to === undefined && rest.length === 0) copy.splice(key, 1);
    else copy[key] = setPath(copy[key], rest, to);
    return copy;
  }
  const copy: Record<string, unknown> = {};
  if (value !== null && typeof value === 'object' && !(value instanceof Expand)) for (const [k, v] of Object.entries(value)) define(copy, k, v);
  if (to === undefined && rest.length === 0) delete copy[String(key)];
  else define(copy, String(key), setPath(copy[String(key)], rest, to));
  return copy;
}

const define = (o: Record<string, unknown>, k: string, v: unknown) => Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });

export type JsonEdit = { path: number; to: JsonTemplate | undefined } | { path: number; key: string; to: JsonTemplate };

const jsonEdit: fc.Arbitrary<JsonEdit> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ path: fc.nat(), to: fc.option(weirdValue, { freq: 5, nil: undefined }) }) },
  { weight: 1, arbitrary: fc.record({ path: fc.nat(), key: fc.constantFrom('__proto__', 'constructor', 'toString', 'junk', ''), to: weirdValue }) },
);

/**
 * A JSON value's text after `edits`. Weird values stay templates (json-template.ts) until the
 * text is rendered: a 100,000-deep array is text no JSON.stringify could write.
 */
export function editedJsonText(value: unknown, edits: JsonEdit[]): string {
  let v = value;
  for (const e of edits) {
    const all = paths(v);
    const target = all[e.path % all.length];
    v = 'key' in e ? setPath(v, [...target, e.key], e.to) : setPath(v, target, e.to);
  }
  return renderJson(v as JsonTemplate);
}

/** JSON text: the valid document, it with 1–3 fields changed, cut short, with junk after, or not JSON at all. */
/** A JSON body's decoder on the text: text that is not JSON is answered 400 invalid_json by the server before it, so here it is a value, not a refusal. */
export const NOT_JSON = 'not JSON (the server answers 400 invalid_json before this decoder)';
export async function decodeJsonText<R>(text: string, decode: (body: unknown) => R | Promise<R>): Promise<R | typeof NOT_JSON> {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return NOT_JSON;
  }
  return decode(body);
}

export function mutatedJsonText(valid: fc.Arbitrary<unknown>): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 3, arbitrary: valid.map((v) => JSON.stringify(v)) },
    { weight: 10, arbitrary: fc.tuple(valid, fc.array(jsonEdit, { minLength: 1, maxLength: 3 })).map(([v, edits]) => editedJsonText(v, edits)) },
    { weight: 1, arbitrary: fc.tuple(valid, fc.nat()).map(([v, n]) => { const t = JSON.stringify(v); return t.slice(0, n % (t.length + 1)); }) },
    { weight: 1, arbitrary: fc.tuple(valid, fc.string({ maxLength: 8 })).map(([v, junk]) => `${JSON.stringify(v)}${junk}`) },
    { weight: 1, arbitrary: fc.constantFrom('', 'null', '[]', '{}', '"x"', '1e999', '{"__proto__":{"polluted":true}}', '\ufeff{}', '{"a":1,}', `${'['.repeat(100_000)}${']'.repeat(100_000)}`) },
    { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 64 }) },
    { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)) },
  );
}

const utf8 = new TextEncoder();

/** JSON text as bytes after `kindByte` (none: just the text), sometimes with invalid UTF-8 spliced in. */
export function mutatedJsonBytes(valid: fc.Arbitrary<unknown>, kindByte?: number): fc.Arbitrary<Uint8Array> {
  const prefix = kindByte === undefined ? new Uint8Array(0) : Uint8Array.of(kindByte);
  return fc.oneof(
    { weight: 8, arbitrary: mutatedJsonText(valid).map((t) => concat(prefix, utf8.encode(t))) },
    { weight: 1, arbitrary: fc.tuple(mutatedJsonText(valid), fc.nat(), fc.constantFrom(Uint8Array.of(0xff), Uint8Array.of(0xc0, 0xaf), Uint8Array.of(0xed, 0xa0, 0x80), Uint8Array.of(0))).map(([t, n, bad]) => {
      const text = utf8.encode(t);
      const p = n % (text.byteLength + 1);
      return concat(prefix, text.subarray(0, p), bad, text.subarray(p));
    }) },
  );
}
