/**
 * Closes the links a peer keeps for nothing. A donor tab dials every other tab once to measure
 * the link (probe.ts) and fetches pieces from any of them, and every WebRTC dial leaves a relayed
 * connection behind (it carried the SDP handshake); once the tab serves, only its route
 * neighbours' links carry work. An idle link is not free: ICE consent checks, SCTP heartbeats and
 * the WebRTC threads that run them, in both tabs, for as long as the tab stays open; and a grid
 * of n tabs would keep n² of them. On an idle 4-tab grid a tab held 9 connections where 3 carry
 * work, and its renderer took 1.2-2.5% of a core against 1.0-1.1% with only those 3 (bench grid,
 * longIdleByProcess). A direct link to a peer that is not `needed` is closed once it has carried
 * no stream for `idleMs`. A link that is never worth keeping goes sooner, after `spareIdleMs`: a
 * relayed one (its handshake is over; the relay would end it anyway), and a second direct link to
 * the same peer (two peers that dialed each other at once; both ends keep the same one of the
 * two, node.ts preferredDirect). Those used to linger for `idleMs` after every request that dialed
 * a new hop, and their closing was part of what an idle grid cost. Closing is safe: whoever
 * needs the peer again dials it again.
 */
import type { Libp2p } from 'libp2p';
import type { Connection } from '@libp2p/interface';
import { isDirectWebRTC, preferredDirect } from './node.ts';

export interface IdleLinksOptions {
  /** how long a direct link to a peer not needed may carry no stream before it is closed */
  idleMs: number;
  /** how long a relayed link or a second direct link to one peer may carry no stream (default: idleMs) */
  spareIdleMs?: number;
}

export interface IdleLinksDeps {
  node: Libp2p;
  /** whether a direct link to this peer is worth keeping open while idle (a route neighbour, a client) */
  needed: (peerId: string) => boolean;
  now?: () => number;
}

export interface IdleLinks {
  /** Looks at the node's links: notes the idle ones, closes those idle for `idleMs`. Returns how many it closed. */
  sweep(): number;
}

export function createIdleLinks(options: IdleLinksOptions, deps: IdleLinksDeps): IdleLinks {
  const now = deps.now ?? (() => performance.now());
  /** connection id -> when it was first seen idle */
  const idleSince = new Map<string, number>();
  const spareIdleMs = options.spareIdleMs ?? options.idleMs;
  /** How long `connection` may stay idle before it is closed; undefined: kept however long. */
  const idleLimit = (connection: Connection, all: Connection[]): number | undefined => {
    if (connection.limits != null) return spareIdleMs;
    if (!isDirectWebRTC(connection)) return undefined;
    const peer = connection.remotePeer.toString();
    const direct = all.filter((c) => c.remotePeer.toString() === peer && isDirectWebRTC(c));
    if (direct.length > 1 && preferredDirect(deps.node, direct) !== connection) return spareIdleMs;
    return deps.needed(peer) ? undefined : options.idleMs;
  };
  return {
    sweep() {
      const at = now();
      const seen = new Set<string>();
      let closed = 0;
      const connections = deps.node.getConnections();
      for (const connection of connections) {
        const limit = idleLimit(connection, connections);
        if (limit === undefined || connection.status !== 'open' || connection.streams.length > 0) continue;
        seen.add(connection.id);
        const since = idleSince.get(connection.id) ?? at;
        idleSince.set(connection.id, since);
        if (at - since < limit) continue;
        idleSince.delete(connection.id);
        closed++;
        connection.close().catch((err: unknown) => connection.abort(err as Error));
      }
      for (const id of idleSince.keys()) if (!seen.has(id)) idleSince.delete(id);
      return closed;
    },
  };
}
