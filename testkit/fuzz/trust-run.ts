/**
 * Runs one trust fuzz case against the server's validator and judges it: after each message
 * (the commitment, then the reveal if a CHALLENGE came) the server must answer (CHALLENGE,
 * RECEIPT or ERROR) or close or reset the stream within the deadline; a stream that says
 * nothing must be closed within it too. Keys sign here, at run time: the case names whose.
 * Used by run-fuzz.ts.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { merkleRoot } from '../../shared/trust/merkle.ts';
import { sealTranscript } from '../../shared/trust/handoff.ts';
import { encodeStepRecord } from '../../shared/trust/step-record.ts';
import { TRUST_PROTOCOL } from '../../shared/grid/protocol-ids.ts';
import { MSG_CHALLENGE, MSG_COMMIT, MSG_RECEIPT, MSG_REVEAL, MSG_TRUST_ERROR } from '../../shared/grid/trust-wire.ts';
import { ANSWER_DEADLINE_MS } from './deadline.ts';
import { writeCommitment, writeSignedCommitment } from './commitment-bytes.ts';
import type { CaseOutcome, Finding } from './findings.ts';
import { honestReveal, honestWork } from './honest-work.ts';
import type { HonestWork } from './honest-work.ts';
import type { FuzzPeer } from './p2p-peers.ts';
import { streamEnd } from './p2p-stream.ts';
import type { WatchedStream } from './p2p-stream.ts';
import { renderTrustPayload } from './trust-cases.ts';
import type { CommitmentSpec, IdChoice, TrustCase } from './trust-cases.ts';
import { renderWire } from './wire-messages.ts';

export interface TrustRunDeps {
  peer: FuzzPeer;
  /** another identity of the harness: a commitment's upstream (it seals) or a wrong signer */
  other: FuzzPeer;
  relayAddr: string;
  packageId: string;
  /** the model's hidden width: a real body's inputs have this many values a row */
  dim: number;
}

const NOT_A_PEER = 'not-a-peer-id';

/** What the server said: the first message of kind and name, or how the stream ended. */
function label(s: WatchedStream, index: number): string | undefined {
  const frame = s.frames[index];
  if (frame) {
    if (frame[0] === MSG_CHALLENGE) return 'challenge';
    if (frame[0] === MSG_RECEIPT) return 'receipt';
    if (frame[0] === MSG_TRUST_ERROR) {
      try {
        return `error:${(JSON.parse(new TextDecoder().decode(frame.subarray(1))) as { name?: string }).name}`;
      } catch {
        return 'error:unreadable';
      }
    }
    return `kind ${frame[0]}`;
  }
  return streamEnd(s);
}

async function answer(s: WatchedStream, index: number): Promise<string | undefined> {
  await s.until(() => label(s, index) !== undefined, ANSWER_DEADLINE_MS);
  return label(s, index);
}

async function buildCommitment(spec: CommitmentSpec, deps: TrustRunDeps): Promise<{ message: Uint8Array; work?: HonestWork }> {
  const id = (choice: IdChoice) => (choice === 'self' ? deps.peer.peerId : choice === 'other' ? deps.other.peerId : NOT_A_PEER);
  const key = (choice: IdChoice) => (choice === 'self' ? deps.peer.privateKey : choice === 'other' ? deps.other.privateKey : undefined);
  const requestId = { uuid: randomUUID(), 'max-length': 'r'.repeat(1_024), 'too-long': 'r'.repeat(1_025), unicode: 'é'.repeat(300), empty: '' }[spec.requestId];
  const packageId = { right: deps.packageId, wrong: 'f'.repeat(64), 'max-length': 'p'.repeat(1_024), 'too-long': 'p'.repeat(1_025), empty: '', unicode: '\u{1F4E6}'.repeat(100) }[spec.packageId];
  const work = spec.body === 'real' ? await honestWork(spec.stepCount, deps.dim, requestId || 'x', spec.inputs) : undefined;
  const root = work ? await merkleRoot(work.records.map(encodeStepRecord)) : new Uint8Array(randomBytes(32));
  const upstreamRoot = work?.transcript.root ?? new Uint8Array(randomBytes(32));
  let upstreamSeal: Uint8Array;
  if (spec.seal === 'valid') {
    try {
      upstreamSeal = await sealTranscript({ requestId, steps: spec.stepCount, root: upstreamRoot }, key(spec.upstream) ?? deps.peer.privateKey);
    } catch {
      // A transcript the sealer refuses (an empty request id): nobody could have sealed it.
      upstreamSeal = new Uint8Array(randomBytes(64));
    }
  } else upstreamSeal = spec.seal === 'garbage' ? new Uint8Array(randomBytes(64)) : new Uint8Array(0);
  const body = writeCommitment({
    packageId,
    requestId,
    peerId: id(spec.peerId),
    upstream: id(spec.upstream),
    layers: spec.layers,
    stepCount: spec.stepCount,
    root,
    upstreamRoot,
    upstreamSeal,
    createdAt: { now: Date.now(), zero: 0, max: Number.MAX_SAFE_INTEGER }[spec.createdAt],
    magic: spec.framing === 'bad-magic' ? 0xdeadbeef : undefined,
    version: spec.framing === 'bad-version' ? 9 : undefined,
  });
  const signer = key(spec.signer);
  const signature = signer ? new Uint8Array(await signer.sign(body)) : new Uint8Array(randomBytes(64));
  let signed = writeSignedCommitment(body, signature);
  if (spec.framing === 'trailing-bytes') signed = Uint8Array.from([...signed, ...randomBytes(7)]);
  if (spec.framing === 'truncated') signed = signed.subarray(0, signed.byteLength >> 1);
  return { message: Uint8Array.from([MSG_COMMIT, ...signed]), work };
}

async function revealFor(spec: CommitmentSpec, challengeFrame: Uint8Array, commit: Uint8Array, work?: HonestWork): Promise<Uint8Array | 'close-write'> {
  let steps: number[] = [];
  try {
    steps = (JSON.parse(new TextDecoder().decode(challengeFrame.subarray(1))) as { steps: number[] }).steps ?? [];
  } catch {
    // An unreadable challenge: answer with what the case says anyway.
  }
  const garbage = () => Uint8Array.from([MSG_REVEAL, ...randomBytes(200)]);
  switch (spec.reveal) {
    case 'honest':
    case 'tampered':
      return work ? honestReveal(work, steps, spec.reveal === 'tampered') : garbage();
    case 'garbage':
      return garbage();
    case 'truncated': {
      const whole = work ? await honestReveal(work, steps) : garbage();
      return whole.subarray(0, Math.max(1, whole.byteLength >> 1));
    }
    case 'empty':
      return Uint8Array.of(MSG_REVEAL);
    case 'commit-again':
      return commit;
    case 'huge-count':
      return Uint8Array.of(MSG_REVEAL, 0xff, 0xff, 0xff, 0xff);
    case 'close-write':
      return 'close-write';
  }
}

export async function runTrustCase(c: TrustCase, deps: TrustRunDeps): Promise<CaseOutcome> {
  const findings: Finding[] = [];
  const stuck = (what: string) => findings.push({ kind: 'stuck-stream', detail: `${what}: no answer, close or reset within ${ANSWER_DEADLINE_MS} ms` });
  const s = await deps.peer.open(deps.relayAddr, TRUST_PROTOCOL);
  try {
    if (c.shape === 'silence') {
      const closed = await s.until(() => s.closed || s.remoteClosed, ANSWER_DEADLINE_MS);
      if (!closed) stuck('a trust stream that never spoke');
      return { outcome: closed ? 'closed' : 'open', findings };
    }
    if (c.shape === 'messages') {
      for (const m of c.messages) if (!(await s.send(renderWire(m, renderTrustPayload)))) break;
      if (c.closeWrite) await s.closeWrite();
      const first = await answer(s, 0);
      if (first === undefined) stuck('after the messages');
      return { outcome: first ?? 'no answer', findings };
    }
    const spec = c.commitment!;
    const { message, work } = await buildCommitment(spec, deps);
    await s.sendFrame(message);
    const first = await answer(s, 0);
    if (first === undefined) {
      stuck('after the commitment');
      return { outcome: 'no answer', findings };
    }
    if (first !== 'challenge') return { outcome: first, findings };
    const reveal = await revealFor(spec, s.frames[0], message, work);
    if (reveal === 'close-write') await s.closeWrite();
    else await s.sendFrame(reveal);
    const second = await answer(s, 1);
    if (second === undefined) stuck(`after the reveal (${spec.reveal})`);
    return { outcome: `challenge→${second ?? 'no answer'}`, findings };
  } finally {
    s.abort();
  }
}
