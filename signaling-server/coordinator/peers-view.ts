/**
 * GET /api/peers: what the grid is made of. On this machine (a grid no one else can reach) it
 * is the whole registry, for the operator, the tests and the benches. On a grid reachable
 * beyond this machine, anyone can call it, so it says what the grid can do and no more: roles,
 * layers, pieces held, serving figures and each device's provider and speed; never a device's
 * signature or adapter description (fingerprints of a visitor's machine), its offered memory,
 * or whom it measured and how fast (the grid's topology). Peer ids stay: every route names them.
 */
import type { PeerRecord } from './registry.ts';

export interface PeersView {
  coverage: number[];
  peers: Record<string, unknown>[];
}

export function peersView(coverage: number[], peers: Iterable<PeerRecord>, { full }: { full: boolean }): PeersView {
  return {
    coverage,
    peers: [...peers].map((p) => ({
      peerId: p.peerId,
      role: p.role,
      device: p.device && (full ? p.device : { executionProvider: p.device.executionProvider, msPerLayer: p.device.msPerLayer }),
      assignment: p.assignment,
      serving: p.serving,
      pieces: p.have.size,
      stats: p.stats,
      ...(full && { rtt: Object.fromEntries(p.rtt) }),
    })),
  };
}
