/**
 * Streams opened ahead: one spare per peer and protocol, so that a request's first step (and a
 * recovery's replay, which opens a new stream at every hop of its route) takes a stream that is
 * ready instead of opening one. Opening a stream costs a data channel and a protocol negotiation,
 * a round trip through both peers' busy event loops: 0.3 to 1 s each on a loaded machine, four of
 * them one after another on a three-stage route (client to first stage, stage to stage, last
 * stage back to the client), measured as most of a replay's time (bench churn).
 *
 * A spare is kept once a stream to the peer has been opened, or when asked (keepSpare: the
 * client for the first stages it may use, a stage for the next hops it may hand to). The far
 * side's handler waits for the spare's first message; a stage that stops closes the spares it
 * holds (stage-server.ts), so none reaches a stage that has moved on.
 */
import type { Libp2p } from 'libp2p';
import type { Connection, Stream } from '@libp2p/interface';
import { isDirectWebRTC, openDirectStream } from './node.ts';
import type { PeerAddress } from './protocol.ts';

interface Opened {
  stream: Stream;
  connection: Connection;
}

/** A spare being opened (`ready` unset) or open. */
interface Spare {
  ready?: Opened;
}

/** Spares kept per node, at most: the one kept longest is closed first. */
const MAX_SPARES = 64;

const kept = new WeakMap<Libp2p, Map<string, Spare>>();

function sparesOf(node: Libp2p): Map<string, Spare> {
  let spares = kept.get(node);
  if (!spares) kept.set(node, (spares = new Map()));
  return spares;
}

const keyOf = (peer: PeerAddress, protocol: string) => `${peer.peerId} ${protocol}`;
const usable = (s: Opened) => s.stream.status === 'open' && s.stream.writeStatus === 'writable' && isDirectWebRTC(s.connection);

/** Opens a spare stream to the peer for the protocol, unless one is kept or opening. */
export function keepSpare(node: Libp2p, peer: PeerAddress, protocol: string): void {
  const spares = sparesOf(node);
  const key = keyOf(peer, protocol);
  const found = spares.get(key);
  if (found && (!found.ready || usable(found.ready))) return;
  const spare: Spare = {};
  spares.set(key, spare);
  void openDirectStream(node, peer, protocol).then(
    (opened) => {
      if (spares.get(key) === spare) spare.ready = opened;
      else opened.stream.abort(new Error('spare stream not needed'));
    },
    () => {
      if (spares.get(key) === spare) spares.delete(key);
    },
  );
  if (spares.size > MAX_SPARES) {
    const [oldest, o] = spares.entries().next().value!;
    spares.delete(oldest);
    o.ready?.stream.abort(new Error('spare stream dropped'));
  }
}

/**
 * A stream to the peer for the protocol: the spare when one is ready, else a new one; either
 * way another spare is opened for the next caller.
 */
export async function openWithSpare(node: Libp2p, peer: PeerAddress, protocol: string): Promise<Opened> {
  const spares = sparesOf(node);
  const key = keyOf(peer, protocol);
  const spare = spares.get(key)?.ready;
  if (spare) {
    spares.delete(key);
    keepSpare(node, peer, protocol);
    if (usable(spare)) return spare;
    spare.stream.abort(new Error('spare stream went stale'));
  }
  const opened = await openDirectStream(node, peer, protocol);
  keepSpare(node, peer, protocol);
  return opened;
}
