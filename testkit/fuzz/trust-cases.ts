/**
 * The trust family of fuzz cases (TRUST_PROTOCOL, shared/grid/trust-wire.ts): commitments
 * signed with the case's own key, real ones (step records, hand-off proofs and an upstream
 * seal that all check out, so the validator challenges and takes a reveal) and forged ones with
 * extreme fields (2^32−1 steps, layers out of range, another package, another peer's id, ids of
 * 1,024 bytes, a garbage seal); the reveal after a challenge, honest, tampered, truncated or
 * garbage; random bytes after each message kind, empty messages, lengths of 50 MiB, silence.
 * A case is data; keys and bytes are made when it runs (trust-run.ts).
 */
import fc from 'fast-check';
import { brokenFraming, describeWire, leavesFrameOpen } from './wire-messages.ts';
import type { Wire } from './wire-messages.ts';

export interface TrustContext {
  nLayers: number;
}

/** A message: its kind byte (1 COMMIT … 5 ERROR, or none of them) and what follows. */
export interface TrustPayload {
  kindByte: number;
  body: Uint8Array;
}

export type IdChoice = 'self' | 'other' | 'garbage';

export interface CommitmentSpec {
  /** real: step records, proofs and seal that check out; forged: a random root over `stepCount` steps */
  body: 'real' | 'forged';
  /** real bodies: how many steps (rows of one token each); forged: the claimed step count */
  stepCount: number;
  /** real bodies: what the inputs hold ('huge' values near f32's max, NaN) */
  inputs: 'normal' | 'nan' | 'huge';
  packageId: 'right' | 'wrong' | 'max-length' | 'too-long' | 'empty' | 'unicode';
  requestId: 'uuid' | 'max-length' | 'too-long' | 'unicode' | 'empty';
  peerId: IdChoice;
  signer: IdChoice;
  upstream: IdChoice;
  layers: { start: number; end: number };
  seal: 'valid' | 'garbage' | 'empty';
  createdAt: 'now' | 'zero' | 'max';
  framing: 'ok' | 'bad-magic' | 'bad-version' | 'trailing-bytes' | 'truncated';
  /** what is sent after a CHALLENGE */
  reveal: 'honest' | 'tampered' | 'garbage' | 'truncated' | 'empty' | 'commit-again' | 'huge-count' | 'close-write';
}

export interface TrustCase {
  family: 'trust';
  shape: 'commitment' | 'messages' | 'silence';
  commitment?: CommitmentSpec;
  messages: Wire<TrustPayload>[];
  /** after the messages, close the writable end */
  closeWrite: boolean;
}

/** MAX_TRUST_MESSAGE_BYTES in shared/grid/trust-wire.ts. */
export const TRUST_LIMIT = 40 << 20;
const U32_MAX = 2 ** 32 - 1;

function layersArbitrary(ctx: TrustContext): fc.Arbitrary<{ start: number; end: number }> {
  const n = ctx.nLayers;
  // Start at 1 or later for most: a first stage's inputs must be sealed by a client the coordinator routed, and no route exists.
  const inRange = fc.integer({ min: 1, max: n - 1 }).chain((start) => fc.integer({ min: start + 1, max: n }).map((end) => ({ start, end })));
  const edges = fc.constantFrom({ start: 0, end: n }, { start: 0, end: 1 }, { start: n - 1, end: n + 1 }, { start: 2, end: 2 }, { start: 3, end: 1 }, { start: 0, end: U32_MAX }, { start: U32_MAX, end: U32_MAX }, { start: n, end: n + 1 });
  return fc.oneof({ weight: 5, arbitrary: inRange }, { weight: 2, arbitrary: edges });
}

export function commitmentArbitrary(ctx: TrustContext): fc.Arbitrary<CommitmentSpec> {
  const pick = <T>(common: T, ...rare: T[]) => fc.oneof({ weight: 6, arbitrary: fc.constant(common) }, { weight: 1, arbitrary: fc.constantFrom(...rare) });
  const real = fc.record({
    body: fc.constant('real' as const),
    stepCount: fc.integer({ min: 1, max: 6 }),
    inputs: pick<CommitmentSpec['inputs']>('normal', 'nan', 'huge'),
    packageId: pick<CommitmentSpec['packageId']>('right', 'wrong'),
    requestId: pick<CommitmentSpec['requestId']>('uuid', 'max-length', 'unicode'),
    peerId: pick<IdChoice>('self', 'other'),
    signer: pick<IdChoice>('self', 'other', 'garbage'),
    upstream: pick<IdChoice>('other', 'self'),
    layers: layersArbitrary(ctx),
    seal: pick<CommitmentSpec['seal']>('valid', 'garbage', 'empty'),
    createdAt: pick<CommitmentSpec['createdAt']>('now', 'zero', 'max'),
    framing: pick<CommitmentSpec['framing']>('ok', 'trailing-bytes'),
    reveal: fc.constantFrom<CommitmentSpec['reveal']>('honest', 'honest', 'tampered', 'garbage', 'truncated', 'empty', 'commit-again', 'huge-count', 'close-write'),
  });
  const forged = fc.record({
    body: fc.constant('forged' as const),
    stepCount: fc.oneof({ weight: 4, arbitrary: fc.integer({ min: 0, max: 64 }) }, { weight: 1, arbitrary: fc.constantFrom(2 ** 16, 2 ** 31, U32_MAX) }),
    inputs: fc.constant('normal' as const),
    packageId: fc.constantFrom<CommitmentSpec['packageId']>('right', 'right', 'wrong', 'max-length', 'too-long', 'empty', 'unicode'),
    requestId: fc.constantFrom<CommitmentSpec['requestId']>('uuid', 'uuid', 'max-length', 'too-long', 'unicode', 'empty'),
    peerId: fc.constantFrom<IdChoice>('self', 'self', 'other', 'garbage'),
    signer: fc.constantFrom<IdChoice>('self', 'self', 'other', 'garbage'),
    upstream: fc.constantFrom<IdChoice>('other', 'other', 'self', 'garbage'),
    layers: layersArbitrary(ctx),
    seal: fc.constantFrom<CommitmentSpec['seal']>('valid', 'valid', 'garbage', 'empty'),
    createdAt: fc.constantFrom<CommitmentSpec['createdAt']>('now', 'zero', 'max'),
    framing: fc.constantFrom<CommitmentSpec['framing']>('ok', 'ok', 'ok', 'bad-magic', 'bad-version', 'trailing-bytes', 'truncated'),
    reveal: fc.constantFrom<CommitmentSpec['reveal']>('garbage', 'truncated', 'empty', 'commit-again', 'huge-count', 'close-write'),
  });
  return fc.oneof(real, forged);
}

const KIND_BYTES = [0, 1, 2, 3, 4, 5, 6, 255];

export function trustCaseArbitrary(ctx: TrustContext): fc.Arbitrary<TrustCase> {
  const payload = fc.record({ kindByte: fc.constantFrom(...KIND_BYTES), body: fc.uint8Array({ maxLength: 300 }) });
  const wire: fc.Arbitrary<Wire<TrustPayload>> = fc.oneof({ weight: 4, arbitrary: payload.map((p) => ({ kind: 'frame' as const, payload: p })) }, { weight: 3, arbitrary: brokenFraming<TrustPayload>(TRUST_LIMIT) });
  return fc.oneof(
    { weight: 36, arbitrary: commitmentArbitrary(ctx).map((commitment): TrustCase => ({ family: 'trust', shape: 'commitment', commitment, messages: [], closeWrite: false })) },
    {
      weight: 18,
      arbitrary: fc
        .array(wire, { minLength: 1, maxLength: 2 })
        // As for the coordinator: most cases that leave a frame open close their end rather than wait out the server's timeout.
        .chain((messages) => (leavesFrameOpen(messages) ? fc.constantFrom(true, true, true, true, true, true, true, false) : fc.boolean()).map((closeWrite): TrustCase => ({ family: 'trust', shape: 'messages', messages, closeWrite }))),
    },
    { weight: 1, arbitrary: fc.constant<TrustCase>({ family: 'trust', shape: 'silence', messages: [], closeWrite: false }) },
  );
}

export const renderTrustPayload = (p: TrustPayload) => Uint8Array.from([p.kindByte, ...p.body]);

export function describeTrustCase(c: TrustCase): string {
  if (c.shape === 'silence') return 'a trust stream that never speaks';
  if (c.shape === 'messages') {
    const payload = (p: TrustPayload) => `kind ${p.kindByte} + ${p.body.byteLength} bytes ${Buffer.from(p.body.subarray(0, 12)).toString('hex')}${p.body.byteLength > 12 ? '…' : ''}`;
    return [...c.messages.map((m) => describeWire(m, payload)), c.closeWrite ? 'close write' : 'wait'].join(' → ');
  }
  const m = c.commitment!;
  return `${m.body} commitment: ${m.stepCount} steps, layers ${m.layers.start}..${m.layers.end}, package ${m.packageId}, request ${m.requestId}, peer ${m.peerId}, signed by ${m.signer}, upstream ${m.upstream}, seal ${m.seal}, time ${m.createdAt}, ${m.framing}${m.body === 'real' ? `, inputs ${m.inputs}` : ''} → on challenge: ${m.reveal}`;
}
