/**
 * The coordinator family of fuzz cases (COORDINATOR_PROTOCOL, shared/grid/protocol.ts): valid
 * messages, the same with fields of the wrong type or absurd size (a `serving` with null layers,
 * a `payTo` object, RTTs to 20,000 made-up peers, 17,000 pieces, tens of thousands of junk
 * fields, a hello naming another peer's address), text that is not JSON, and broken framing.
 * A case is data with placeholders (@self@, @other@, @relay@) filled in when it runs, because
 * which identity runs it is decided then. Also: two streams from one peer, and a silent stream.
 * Run by coordinator-run.ts.
 */
import fc from 'fast-check';
import { weirdValue } from './http-bodies.ts';
import { describeJson, describeString, fields, long, renderJson, repeat, seq } from './json-template.ts';
import type { JsonTemplate } from './json-template.ts';
import { brokenFraming, describeWire, leavesFrameOpen } from './wire-messages.ts';
import type { Wire } from './wire-messages.ts';

export interface CoordinatorContext {
  packageId: string;
  /** every piece key of the package ('block-0.data#0', …) */
  pieceKeys: string[];
  nLayers: number;
}

export type CoordinatorPayload = { kind: 'json'; template: JsonTemplate } | { kind: 'text'; text: string } | { kind: 'bytes'; bytes: Uint8Array };

export interface CoordinatorCase {
  family: 'coordinator';
  /** messages: [hello] → fuzz → probe; two-streams: the newer of two streams replaces the older; silence: a stream that never speaks */
  shape: 'messages' | 'two-streams' | 'silence';
  /** a valid hello first, its welcome awaited, so the fuzz reaches a registered peer */
  hello: 'none' | 'donor' | 'client';
  messages: Wire<CoordinatorPayload>[];
  /** after the fuzz, close the writable end instead of sending the probe */
  closeWrite: boolean;
}

/** Placeholders filled in at run time. */
export const SELF = '@self@';
export const OTHER = '@other@';
export const RELAY = '@relay@';

export const device = { executionProvider: 'wasm', msPerLayer: 5, memoryBytes: 1_000_000_000, signature: 'fuzz-device', label: 'fuzz' };

export function helloMessage(role: 'donor' | 'client'): { [key: string]: JsonTemplate } {
  return role === 'donor' ? { type: 'hello', role, addrs: [`${RELAY}/p2p-circuit/webrtc/p2p/${SELF}`], device: { ...device, signature: `fuzz-device-${SELF}` } } : { type: 'hello', role, addrs: [] };
}

function validMessages(ctx: CoordinatorContext): { [key: string]: JsonTemplate }[] {
  return [
    helloMessage('donor'),
    helloMessage('client'),
    { type: 'have', packageId: ctx.packageId, pieces: ctx.pieceKeys.slice(0, 3) },
    { type: 'serving', packageId: ctx.packageId, layers: { start: 0, end: 1 } },
    { type: 'rtt', peers: { [OTHER]: { rttMs: 3.5, throughputMBps: 40 } } },
    { type: 'stats', stats: { requestsServed: 1, tokensServed: 10, tokensPerSecond: 5, msPerLayer: 2 } },
  ];
}

/** The shapes issue 22 names, and their kin. */
function absurdMessages(ctx: CoordinatorContext): JsonTemplate[] {
  const hello = helloMessage('donor');
  return [
    { type: 'serving', packageId: ctx.packageId, layers: null },
    { type: 'serving', packageId: ctx.packageId, layers: { start: -1, end: 2 ** 32 } },
    { ...hello, payTo: { address: '0x0' } },
    { ...hello, payTo: `0x${'ab'.repeat(20)}` },
    { type: 'rtt', peers: { [OTHER]: { rttMs: '5' } } },
    { type: 'rtt', peers: { [OTHER]: { rttMs: -1 } } },
    { type: 'rtt', peers: fields(20_000, { rttMs: 1 }, '12D3KooWfake') },
    { type: 'rtt', peers: null },
    { type: 'stats', stats: { requestsServed: '1', tokensServed: 'many', tokensPerSecond: null } },
    { type: 'stats', stats: fields(30_000) },
    fields(30_000, 'junk', 'junk', { type: 'stats', stats: { requestsServed: 1, tokensServed: 1, tokensPerSecond: 1 } }),
    { type: 'have', packageId: ctx.packageId, pieces: seq(17_000, 'block-0.data#') },
    { type: 'have', packageId: ctx.packageId, pieces: repeat(long(1_000), 100) },
    { type: 'have', packageId: ctx.packageId, pieces: 'block-0.data#0' },
    { type: 'hello', role: 'donor', addrs: [`/ip4/10.0.0.1/tcp/1/ws/p2p/${OTHER}`], device },
    { type: 'hello', role: 'client', addrs: [`${RELAY}/p2p-circuit/webrtc/p2p/${OTHER}`] },
    { type: 'hello', role: 'client', addrs: repeat(`${RELAY}/p2p-circuit/webrtc/p2p/${SELF}`, 10_000) },
    { type: 'hello', role: 'donor', addrs: [], device: { ...device, msPerLayer: 1e-300 } },
    { type: 'hello', role: 'donor', addrs: [], device: { ...device, memoryBytes: 1e308 } },
    { type: 'hello', role: 'donor', addrs: [], device: { ...device, signature: long(100_000), label: { a: 1 }, executionProvider: 'quantum' } },
    { type: 'hello', role: 'admin', addrs: [] },
    { type: 'hello', role: 'client', addrs: 'not a list' },
    { type: 'welcome', peerId: SELF, model: {} },
    { type: 'verdict', verdict: { peerId: OTHER } },
    { type: '__proto__' },
    { type: 42 },
    { type: null },
    [],
    'hello',
    123,
    null,
  ];
}

/** A valid message with one to three fields replaced by weird values (or removed). */
function mutated(ctx: CoordinatorContext): fc.Arbitrary<JsonTemplate> {
  return fc.constantFrom(...validMessages(ctx)).chain((message) => {
    const keys = [...Object.keys(message), 'junk'];
    return fc.array(fc.record({ key: fc.constantFrom(...keys), value: fc.option(weirdValue, { freq: 6, nil: undefined }) }), { minLength: 1, maxLength: 3 }).map((changes) => {
      const copy: { [key: string]: JsonTemplate } = { ...message };
      for (const { key, value } of changes) {
        if (value === undefined) delete copy[key];
        else copy[key] = value;
      }
      return copy as JsonTemplate;
    });
  });
}

function payload(ctx: CoordinatorContext): fc.Arbitrary<CoordinatorPayload> {
  const json = (t: fc.Arbitrary<JsonTemplate>) => t.map((template) => ({ kind: 'json' as const, template }));
  return fc.oneof(
    { weight: 4, arbitrary: json(fc.constantFrom(...validMessages(ctx))) },
    { weight: 6, arbitrary: json(mutated(ctx)) },
    { weight: 4, arbitrary: json(fc.constantFrom(...absurdMessages(ctx))) },
    { weight: 2, arbitrary: fc.constantFrom('{bad', '', '\ufeff{"type":"hello"}', '{"type":"hello",}', 'null', '"hello"', '{"type":"hello","role":"client","addrs":[]}garbage').map((text) => ({ kind: 'text' as const, text })) },
    { weight: 1, arbitrary: fc.uint8Array({ minLength: 1, maxLength: 64 }).map((bytes) => ({ kind: 'bytes' as const, bytes })) },
  );
}

export function coordinatorCaseArbitrary(ctx: CoordinatorContext, limit: number): fc.Arbitrary<CoordinatorCase> {
  const wire: fc.Arbitrary<Wire<CoordinatorPayload>> = fc.oneof(
    { weight: 8, arbitrary: payload(ctx).map((p) => ({ kind: 'frame' as const, payload: p })) },
    { weight: 2, arbitrary: brokenFraming<CoordinatorPayload>(limit) },
  );
  const messages = fc
    .record({
      family: fc.constant('coordinator' as const),
      shape: fc.constant('messages' as const),
      hello: fc.constantFrom<CoordinatorCase['hello']>('none', 'donor', 'donor', 'client'),
      messages: fc.array(wire, { minLength: 1, maxLength: 3 }),
    })
    // A frame left open waits out the server's idle timeout: most such cases close their end instead, a few wait.
    .chain((c) => (leavesFrameOpen(c.messages) ? fc.constantFrom(true, true, true, true, true, true, true, false) : fc.constantFrom(false, false, false, true)).map((closeWrite) => ({ ...c, closeWrite })));
  return fc.oneof(
    { weight: 90, arbitrary: messages },
    { weight: 6, arbitrary: fc.constant<CoordinatorCase>({ family: 'coordinator', shape: 'two-streams', hello: 'donor', messages: [], closeWrite: false }) },
    { weight: 1, arbitrary: fc.constant<CoordinatorCase>({ family: 'coordinator', shape: 'silence', hello: 'none', messages: [], closeWrite: false }) },
  );
}

/** Fills in the placeholders: the running identity, another registered one, the relay's address. */
export function renderCoordinatorPayload(p: CoordinatorPayload, fill: { self: string; other: string; relay: string }): Uint8Array {
  if (p.kind === 'bytes') return p.bytes;
  const text = p.kind === 'json' ? renderJson(p.template) : p.text;
  return new TextEncoder().encode(text.replaceAll(SELF, fill.self).replaceAll(OTHER, fill.other).replaceAll(RELAY, fill.relay));
}

export function describeCoordinatorPayload(p: CoordinatorPayload): string {
  if (p.kind === 'json') return describeJson(p.template);
  if (p.kind === 'text') return `text ${describeString(p.text)}`;
  return `bytes ${Buffer.from(p.bytes).toString('hex')}`;
}

export function describeCoordinatorCase(c: CoordinatorCase): string {
  if (c.shape !== 'messages') return c.shape === 'two-streams' ? 'two coordinator streams from one donor: hello on each' : 'a coordinator stream that never speaks';
  const steps = [c.hello === 'none' ? 'no hello' : `valid ${c.hello} hello`, ...c.messages.map((m) => describeWire(m, describeCoordinatorPayload)), c.closeWrite ? 'close write' : 'probe'];
  return steps.join(' → ');
}
