/**
 * Closes the links a peer keeps for nothing. A donor tab dials every other tab once to measure
 * the link (probe.ts) and fetches pieces from any of them, and every WebRTC dial leaves a relayed
 * connection behind (it carried the SDP handshake); once the tab serves, only its route
 * neighbours' links carry work. An idle link is not free: ICE consent checks, SCTP heartbeats and
 * the WebRTC threads that run them, in both tabs, for as long as the tab stays open; and a grid
 * of n tabs would keep n² of them. On an idle 4-tab grid a tab held 9 connections where 3 carry
 * work, and its renderer took 1.2-2.5% of a core against 1.0-1.1% with only those 3 (bench grid,
 * longIdleByProcess). A link is closed once it has carried no stream for `idleMs`:
 * a relayed one always (its handshake is over; the relay would end it anyway), a direct one when
 * the peer is not `needed`. Closing is safe: whoever needs the peer again dials it again.
 */
import type { Libp2p } from 'libp2p';
import { isDirectWebRTC } from './node.ts';

export interface IdleLinksOptions {
  /** how long a link may carry no stream before it is closed */
  idleMs: number;
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
  return {
    sweep() {
      const at = now();
      const seen = new Set<string>();
      let closed = 0;
      for (const connection of deps.node.getConnections()) {
        const relayed = connection.limits != null;
        const spare = relayed || (isDirectWebRTC(connection) && !deps.needed(connection.remotePeer.toString()));
        if (!spare || connection.status !== 'open' || connection.streams.length > 0) continue;
        seen.add(connection.id);
        const since = idleSince.get(connection.id) ?? at;
        idleSince.set(connection.id, since);
        if (at - since < options.idleMs) continue;
        idleSince.delete(connection.id);
        closed++;
        connection.close().catch((err: unknown) => connection.abort(err as Error));
      }
      for (const id of idleSince.keys()) if (!seen.has(id)) idleSince.delete(id);
      return closed;
    },
  };
}
