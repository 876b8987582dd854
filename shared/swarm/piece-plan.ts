/**
 * Which piece to fetch from whom next, BitTorrent-style: rarest pieces first (so a piece few
 * peers hold is copied before they leave), each from the holder with the fewest requests in
 * flight (so downloads spread over peers), and from the server's web seed only for pieces no
 * usable peer holds. Peers that sent a bad piece are never asked again. A pure function: the
 * swarm client calls it whenever a request completes, a peer announces pieces, or one leaves.
 */

/** A piece of a package file: `${file}#${index}` (see pieceKey). */
export type PieceKey = string;

export const WEB_SEED = 'web-seed';

export function pieceKey(file: string, index: number): PieceKey {
  return `${file}#${index}`;
}

export interface PieceRequest {
  piece: PieceKey;
  /** a peer id, or WEB_SEED */
  source: string;
}

export interface PlanInput {
  /** pieces this node still needs, in package order */
  needed: PieceKey[];
  /** what each peer announced it holds */
  have: ReadonlyMap<string, ReadonlySet<PieceKey>>;
  /** pieces already requested (from anyone) */
  inFlight: ReadonlySet<PieceKey>;
  /** requests in flight per source */
  load: ReadonlyMap<string, number>;
  /** peers dropped for sending a bad piece */
  dropped: ReadonlySet<string>;
  /** at most this many requests in flight per peer */
  maxPerPeer: number;
  /** at most this many requests in flight to the web seed */
  maxWebSeed: number;
}

export function planRequests(input: PlanInput): PieceRequest[] {
  const load = new Map(input.load);
  const holders = new Map<PieceKey, string[]>();
  for (const [peer, pieces] of input.have) {
    if (input.dropped.has(peer)) continue;
    for (const piece of pieces) holders.set(piece, [...(holders.get(piece) ?? []), peer]);
  }
  const wanted = input.needed.filter((p) => !input.inFlight.has(p));
  // Rarest first; among equally rare pieces, package order (stable sort).
  const order = wanted.map((piece, i) => ({ piece, i, rarity: holders.get(piece)?.length ?? 0 })).sort((a, b) => a.rarity - b.rarity || a.i - b.i);
  const requests: PieceRequest[] = [];
  const fromPeers = order.filter((o) => o.rarity > 0);
  const fromSeed = order.filter((o) => o.rarity === 0);
  for (const { piece } of fromPeers) {
    const candidates = holders.get(piece)!.filter((peer) => (load.get(peer) ?? 0) < input.maxPerPeer);
    if (candidates.length === 0) continue;
    const peer = candidates.reduce((a, b) => ((load.get(b) ?? 0) < (load.get(a) ?? 0) || ((load.get(b) ?? 0) === (load.get(a) ?? 0) && b < a) ? b : a));
    load.set(peer, (load.get(peer) ?? 0) + 1);
    requests.push({ piece, source: peer });
  }
  for (const { piece } of fromSeed) {
    if ((load.get(WEB_SEED) ?? 0) >= input.maxWebSeed) break;
    load.set(WEB_SEED, (load.get(WEB_SEED) ?? 0) + 1);
    requests.push({ piece, source: WEB_SEED });
  }
  return requests;
}
