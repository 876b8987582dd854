/**
 * JSON documents for fuzz cases, some too big to hold or print as values: 10,000-message
 * histories, arrays nested 100,000 deep, strings of 100k characters, objects of tens of
 * thousands of fields. A case holds a template; its text is rendered only when the case is
 * sent, and its description (describeJson) stays one readable line. Used by the HTTP bodies
 * (http-bodies.ts) and the coordinator messages (p2p-cases.ts).
 */

/** A part of a template that expands when rendered. */
export class Expand {
  readonly kind: 'repeat' | 'deep' | 'long' | 'raw' | 'fields' | 'seq';
  /** repeat: copies; deep: nesting depth; long: characters; fields: field count; seq: strings */
  readonly count: number;
  /** repeat, deep, fields: the item, innermost value or field value; long: the character; raw: JSON text as is */
  readonly item: JsonTemplate;
  /** fields: the keys' prefix; seq: the strings' prefix */
  readonly prefix: string;
  /** fields: fields written before the generated ones */
  readonly base: { [key: string]: JsonTemplate };
  constructor(kind: Expand['kind'], count: number, item: JsonTemplate, prefix = '', base: { [key: string]: JsonTemplate } = {}) {
    this.kind = kind;
    this.count = count;
    this.item = item;
    this.prefix = prefix;
    this.base = base;
  }
}

export type JsonTemplate = null | boolean | number | string | Expand | JsonTemplate[] | { [key: string]: JsonTemplate };

/** `times` copies of `item` in an array. */
export const repeat = (item: JsonTemplate, times: number) => new Expand('repeat', times, item);
/** `depth` arrays nested around `leaf`: [[[…leaf…]]]. */
export const deep = (depth: number, leaf: JsonTemplate = 0) => new Expand('deep', depth, leaf);
/** A string of `length` copies of `char`. */
export const long = (length: number, char = 'x') => new Expand('long', length, char);
/** JSON text written as is: numbers JSON.stringify cannot write (1e999, -0), or broken JSON inside a document. */
export const raw = (text: string) => new Expand('raw', 0, text);
/** An object of `base`'s fields, then `count` fields `${prefix}0`, `${prefix}1`, … each `value`. */
export const fields = (count: number, value: JsonTemplate = 1, prefix = 'f', base: { [key: string]: JsonTemplate } = {}) => new Expand('fields', count, value, prefix, base);
/** An array of `count` distinct strings `${prefix}0`, `${prefix}1`, … */
export const seq = (count: number, prefix: string) => new Expand('seq', count, null, prefix);

export function renderJson(t: JsonTemplate): string {
  if (t instanceof Expand) {
    switch (t.kind) {
      case 'repeat': {
        const item = renderJson(t.item);
        return `[${new Array<string>(t.count).fill(item).join(',')}]`;
      }
      case 'deep':
        return `${'['.repeat(t.count)}${renderJson(t.item)}${']'.repeat(t.count)}`;
      case 'long':
        return JSON.stringify(String(t.item).repeat(t.count));
      case 'raw':
        return String(t.item);
      case 'fields': {
        const value = renderJson(t.item);
        const base = Object.entries(t.base).map(([k, v]) => `${JSON.stringify(k)}:${renderJson(v)}`);
        return `{${[...base, ...Array.from({ length: t.count }, (_, i) => `${JSON.stringify(`${t.prefix}${i}`)}:${value}`)].join(',')}}`;
      }
      case 'seq':
        return `[${Array.from({ length: t.count }, (_, i) => JSON.stringify(`${t.prefix}${i}`)).join(',')}]`;
    }
  }
  if (Array.isArray(t)) return `[${t.map(renderJson).join(',')}]`;
  if (t !== null && typeof t === 'object') return `{${Object.entries(t).map(([k, v]) => `${JSON.stringify(k)}:${renderJson(v)}`).join(',')}}`;
  // JSON.stringify writes NaN and Infinity as null; a template that holds one means it.
  return JSON.stringify(t) ?? 'null';
}

const SHOWN_CHARS = 60;
const SHOWN_ITEMS = 4;

/** A one-line description: long strings and arrays cut, expansions named. */
export function describeJson(t: JsonTemplate): string {
  if (t instanceof Expand) {
    switch (t.kind) {
      case 'repeat':
        return `repeat(${t.count}× ${describeJson(t.item)})`;
      case 'deep':
        return `deep(${t.count}, ${describeJson(t.item)})`;
      case 'long':
        return `long(${t.count}× ${JSON.stringify(t.item)})`;
      case 'raw':
        return `raw(${describeString(String(t.item))})`;
      case 'fields':
        return `fields(${describeJson(t.base)} + ${t.count}× ${JSON.stringify(t.prefix)}…: ${describeJson(t.item)})`;
      case 'seq':
        return `seq(${t.count}× ${JSON.stringify(t.prefix)}…)`;
    }
  }
  if (typeof t === 'string') return describeString(t);
  if (Array.isArray(t)) return `[${t.slice(0, SHOWN_ITEMS).map(describeJson).join(',')}${t.length > SHOWN_ITEMS ? `,…(${t.length} items)` : ''}]`;
  if (t !== null && typeof t === 'object') return `{${Object.entries(t).map(([k, v]) => `${describeString(k)}:${describeJson(v)}`).join(',')}}`;
  return String(t);
}

export function describeString(s: string): string {
  return s.length <= SHOWN_CHARS ? JSON.stringify(s) : `${JSON.stringify(s.slice(0, SHOWN_CHARS))}…(${s.length} chars)`;
}
