/**
 * How a libp2p connection carries a route's frames, read from the selected ICE candidate pair:
 * - 'direct': WebRTC peer to peer (host, srflx or prflx candidates on both ends: through NATs at most);
 * - 'turn': WebRTC through a TURN server (a relay candidate on either end);
 * - 'relayed': not WebRTC at all (the libp2p circuit relay through the grid server).
 * The pair is asked once per connection (getStats is async and a step is not made to wait for
 * it): until it is known, a WebRTC connection counts as direct, and the hop records of later
 * steps correct it.
 */
import type { Connection } from '@libp2p/interface';
import { isDirectWebRTC } from './node.ts';

export type LinkKind = 'direct' | 'turn' | 'relayed';

/** An ICE candidate's type as getStats names it: host, srflx, prflx or relay. */
export interface CandidatePair {
  local: string;
  remote: string;
}

interface StatsSource {
  getStats(): Promise<{ forEach(cb: (stat: Record<string, unknown>) => void): void; get?(id: string): unknown }>;
}

const known = new WeakMap<Connection, LinkKind>();
const asking = new WeakSet<Connection>();

/** The connection's kind now (see the top of this file); starts asking its candidate pair when not yet known. */
export function linkKind(connection: Connection): LinkKind {
  if (!isDirectWebRTC(connection)) return 'relayed';
  const kind = known.get(connection);
  if (kind) return kind;
  if (!asking.has(connection)) {
    asking.add(connection);
    candidatePair(connection).then(
      (pair) => {
        if (pair) known.set(connection, pair.local === 'relay' || pair.remote === 'relay' ? 'turn' : 'direct');
        else asking.delete(connection); // not selected yet: asked again by the next step
      },
      () => asking.delete(connection),
    );
  }
  return 'direct';
}

/** The candidate types of a WebRTC connection's selected pair; undefined when it has none (yet), or is not WebRTC. */
export async function candidatePair(connection: Connection): Promise<CandidatePair | undefined> {
  // @libp2p/webrtc keeps its RTCPeerConnection on the connection's maConn (as far-end-close.ts reads it).
  const pc = (connection as unknown as { maConn?: { peerConnection?: StatsSource } }).maConn?.peerConnection;
  if (!pc?.getStats) return undefined;
  const stats = new Map<string, Record<string, unknown>>();
  (await pc.getStats()).forEach((s) => stats.set(s.id as string, s));
  const transport = [...stats.values()].find((s) => s.type === 'transport' && s.selectedCandidatePairId);
  const pair = transport ? stats.get(transport.selectedCandidatePairId as string) : [...stats.values()].find((s) => s.type === 'candidate-pair' && (s.selected === true || (s.nominated === true && s.state === 'succeeded')));
  const local = pair && stats.get(pair.localCandidateId as string)?.candidateType;
  const remote = pair && stats.get(pair.remoteCandidateId as string)?.candidateType;
  return typeof local === 'string' && typeof remote === 'string' ? { local, remote } : undefined;
}

/** The worse of two kinds of the same link seen on different steps: relayed over TURN over direct. */
export function worseLink(a: LinkKind, b: LinkKind): LinkKind {
  const rank: Record<LinkKind, number> = { direct: 0, turn: 1, relayed: 2 };
  return rank[a] >= rank[b] ? a : b;
}
