/**
 * Runs one coordinator fuzz case against the server's relay and judges it: [a valid hello, its
 * welcome awaited] → the fuzz → a probe, and the server must answer (an error, a welcome) or
 * close or reset the stream within the deadline of the fuzz. The probe is a `have` for another
 * package, refused without touching the registry, rather than a second hello, which would
 * re-register the peer and wipe what the fuzz got stored before it is audited (GET /api/peers,
 * stored-junk.ts). Broadcasts ('peers', 'assign', 'verdict') are not answers: they come
 * whatever the case sent. Used by run-fuzz.ts.
 */
import { COORDINATOR_PROTOCOL } from '../../shared/grid/protocol-ids.ts';
import { ANSWER_DEADLINE_MS, withDeadline } from './deadline.ts';
import { helloMessage, renderCoordinatorPayload } from './coordinator-cases.ts';
import type { CoordinatorCase, CoordinatorPayload } from './coordinator-cases.ts';
import type { CaseOutcome, Finding } from './findings.ts';
import type { FuzzPeer } from './p2p-peers.ts';
import { streamEnd } from './p2p-stream.ts';
import type { WatchedStream } from './p2p-stream.ts';
import { auditPeersSnapshot } from './stored-junk.ts';
import type { JunkRules } from './stored-junk.ts';
import { renderWire } from './wire-messages.ts';

export interface CoordinatorRunDeps {
  peer: FuzzPeer;
  /** another identity of the harness, for messages that name a second peer */
  other: string;
  relayAddr: string;
  httpUrl: string;
  rules: JunkRules;
}

const BROADCASTS = new Set(['peers', 'assign', 'verdict']);

function typeOf(frame: Uint8Array): { type: string; name?: string } {
  try {
    const m = JSON.parse(new TextDecoder().decode(frame)) as { type?: unknown; name?: unknown };
    return { type: String(m?.type), name: typeof m?.name === 'string' ? m.name : undefined };
  } catch {
    return { type: 'unreadable' };
  }
}

/** The first answer after frame `from`: a message that is not a broadcast, or the stream's end. */
function answerAfter(s: WatchedStream, from: number): string | undefined {
  for (const frame of s.frames.slice(from)) {
    const { type, name } = typeOf(frame);
    if (!BROADCASTS.has(type)) return name ? `${type}:${name}` : type;
  }
  return streamEnd(s);
}

async function waitAnswer(s: WatchedStream, from: number): Promise<string | undefined> {
  await s.until(() => answerAfter(s, from) !== undefined, ANSWER_DEADLINE_MS);
  return answerAfter(s, from);
}

function peersSnapshot(httpUrl: string): Promise<unknown> {
  const signal = AbortSignal.timeout(ANSWER_DEADLINE_MS);
  return withDeadline(fetch(`${httpUrl}api/peers`, { signal }).then((res) => res.json()), ANSWER_DEADLINE_MS + 1_000, 'GET /api/peers');
}

export async function runCoordinatorCase(c: CoordinatorCase, deps: CoordinatorRunDeps): Promise<CaseOutcome> {
  const { peer } = deps;
  const fill = { self: peer.peerId, other: deps.other, relay: deps.relayAddr };
  const encode = (p: CoordinatorPayload) => renderCoordinatorPayload(p, fill);
  const hello = (role: 'donor' | 'client') => encode({ kind: 'json', template: helloMessage(role) });
  const findings: Finding[] = [];
  const streams: WatchedStream[] = [];
  const open = async () => {
    const s = await peer.open(deps.relayAddr, COORDINATOR_PROTOCOL);
    streams.push(s);
    return s;
  };
  try {
    if (c.shape === 'silence') {
      const s = await open();
      const closed = await s.until(() => s.closed || s.remoteClosed, ANSWER_DEADLINE_MS);
      if (!closed) findings.push({ kind: 'stuck-stream', detail: `a coordinator stream that never said hello was still open after ${ANSWER_DEADLINE_MS} ms` });
      return { outcome: closed ? 'closed' : 'open', findings };
    }
    if (c.shape === 'two-streams') {
      const older = await open();
      await older.sendFrame(hello('donor'));
      if ((await waitAnswer(older, 0)) !== 'welcome') findings.push({ kind: 'stuck-stream', detail: `no welcome to a valid donor hello (got ${answerAfter(older, 0) ?? 'nothing'})` });
      const seen = older.frames.length;
      const newer = await open();
      await newer.sendFrame(hello('donor'));
      const welcome = await waitAnswer(newer, 0);
      if (welcome !== 'welcome') findings.push({ kind: 'stuck-stream', detail: `no welcome on the newer stream (got ${welcome ?? 'nothing'})` });
      const told = await waitAnswer(older, seen);
      if (told === undefined) findings.push({ kind: 'stuck-stream', detail: 'the replaced stream was neither told nor closed' });
      const snapshot = (await peersSnapshot(deps.httpUrl)) as { peers?: { peerId: string }[] };
      if (!snapshot.peers?.some((p) => p.peerId === peer.peerId)) findings.push({ kind: 'lost-peer', detail: 'the peer left the registry when its newer stream replaced the older' });
      return { outcome: `older:${told ?? 'nothing'}`, findings };
    }

    const s = await open();
    if (c.hello !== 'none') {
      await s.sendFrame(hello(c.hello));
      const welcome = await waitAnswer(s, 0);
      if (welcome === undefined) {
        findings.push({ kind: 'stuck-stream', detail: `no answer to a valid ${c.hello} hello` });
        return { outcome: 'no welcome', findings };
      }
    }
    const from = s.frames.length;
    for (const m of c.messages) if (!(await s.send(renderWire(m, encode)))) break;
    if (c.closeWrite) await s.closeWrite();
    else await s.sendFrame(encode({ kind: 'json', template: { type: 'have', packageId: 'not-this-package', pieces: [] } }));
    const answer = await waitAnswer(s, from);
    if (answer === undefined) {
      findings.push({ kind: 'stuck-stream', detail: `no answer, close or reset within ${ANSWER_DEADLINE_MS} ms of the fuzz (${s.bytesIn} bytes in, ${s.frames.length - from} broadcast frames)` });
      return { outcome: `no answer ${c.closeWrite ? 'after closing write' : 'to the probe'}`, findings };
    }
    // The messages before the probe are processed: what they left in the registry is visible now.
    if (!s.closed && !s.remoteClosed) {
      const junk = auditPeersSnapshot(await peersSnapshot(deps.httpUrl), deps.rules, new Set([peer.peerId]));
      for (const j of junk) findings.push({ kind: 'junk-stored', detail: `${j.rule}: ${j.detail}` });
    }
    return { outcome: answer, findings };
  } finally {
    for (const s of streams) s.abort();
  }
}
