/**
 * Fetches the pieces a node needs, BitTorrent-style: rarest first, spread over the peers that
 * hold them (PIECES_PROTOCOL over direct WebRTC), from the server's web seed (HTTP Range) only
 * for pieces no usable peer holds. Every piece's SHA-256 is checked before it is stored; a peer
 * that sent a bad piece is dropped for good and its piece asked of someone else. Pieces already
 * in the store are skipped, so a reloaded tab resumes. Donor tabs and SDK clients run one per
 * package they load; the coordinator's 'peers' messages feed setPeers.
 */
import type { Stream } from '@libp2p/interface';
import { InfermeshError, PackageError, UsageError } from '../errors.ts';
import type { PeerAddress } from '../grid/protocol.ts';
import type { Manifest } from '../model/manifest.ts';
import { isPieceIntact, locatePiece } from './package-pieces.ts';
import type { PieceLocation } from './package-pieces.ts';
import { planRequests, WEB_SEED } from './piece-plan.ts';
import type { PieceKey, PieceRequest } from './piece-plan.ts';
import { requestPiece } from './piece-protocol.ts';
import type { PieceStore } from './piece-store.ts';

/** The web seed could not be reached or refused a piece (HTTP error, network failure, timeout). */
export class WebSeedError extends InfermeshError {
  override name = 'WebSeedError';
}

export interface SwarmFetcherOptions {
  manifest: Manifest;
  /** the id peers and the store know the package by (the manifest id) */
  packageId: string;
  /** the pieces to hold when run() ends, in package order (piecesForLayers / piecesOfFiles) */
  needed: PieceKey[];
  /** the package's HTTP base URL, ending in '/'; without one, pieces no peer holds wait for setPeers */
  webSeedUrl?: string;
  /** requests in flight per peer (default 4) */
  maxPerPeer?: number;
  /** requests in flight to the web seed (default 4) */
  maxWebSeed?: number;
  /** a peer or web seed request that takes longer fails (default 30 s: a 1 MiB piece on a slow link) */
  requestTimeoutMs?: number;
}

export interface SwarmFetcherDeps {
  store: PieceStore;
  /**
   * An outbound PIECES_PROTOCOL stream to a peer, e.g. `(await openDirectStream(node, peer, PIECES_PROTOCOL, signal)).stream`.
   * It must give up when `signal` aborts (it carries the request timeout), or a dial that hangs holds its piece forever.
   */
  openPieceStream(peer: PeerAddress, signal?: AbortSignal): Promise<Stream>;
  fetch: typeof fetch;
}

export type SwarmPeer = PeerAddress & { have: PieceKey[] };

export interface SwarmProgress {
  /** pieces needed */
  total: number;
  /** pieces fetched, verified and stored by this run */
  verified: number;
  /** pieces already in the store when the run started (skipped) */
  resumed: number;
  fromPeers: number;
  fromWebSeed: number;
  /** pieces that failed their SHA-256 check (each drops the peer that sent it) */
  badPieces: number;
  /** peers dropped for sending a bad piece, never asked again */
  dropped: string[];
  /** bytes of the pieces verified by this run */
  bytes: number;
}

export interface SwarmReport extends SwarmProgress {
  /** verified pieces per source: a peer id or 'web-seed' */
  sources: Record<string, number>;
}

export interface SwarmFetcher {
  /** replaces what peers hold (from the coordinator's 'peers' message) and re-plans */
  setPeers(peers: SwarmPeer[]): void;
  /** fetches every needed piece not in the store; rejects on abort, a bad web seed piece or a store failure */
  run(signal?: AbortSignal): Promise<SwarmReport>;
  /** called after every verified or bad piece; returns an unsubscribe function */
  onProgress(listener: (progress: SwarmProgress) => void): () => void;
}

/** A peer answered a piece request with a refusal (it broke the protocol or would not serve). */
class PeerRefusedError extends InfermeshError {
  override name = 'PeerRefusedError';
}

/** Tries of one piece request to one peer before the peer is benched until the next setPeers. */
const PEER_ATTEMPTS = 2;
const RETRY = Symbol('retry');

export function createSwarmFetcher(options: SwarmFetcherOptions, deps: SwarmFetcherDeps): SwarmFetcher {
  const { manifest, packageId, webSeedUrl } = options;
  const maxPerPeer = options.maxPerPeer ?? 4;
  const maxWebSeed = webSeedUrl === undefined ? 0 : (options.maxWebSeed ?? 4);
  const timeoutMs = options.requestTimeoutMs ?? 30_000;
  if (webSeedUrl !== undefined && !webSeedUrl.endsWith('/')) throw new UsageError(`webSeedUrl must end in '/' (got ${webSeedUrl})`);
  // Locating every piece up front rejects a key that is not in the package before any fetch.
  const locations = new Map(options.needed.map((key) => [key, locatePiece(manifest, key)]));
  const needed = [...locations.keys()];

  const listeners = new Set<(progress: SwarmProgress) => void>();
  let peers = new Map<string, PeerAddress>();
  let have = new Map<string, Set<PieceKey>>();
  const dropped = new Set<string>();
  // Until the next setPeers: pieces a peer said it does not hold, and peers that failed (unreachable, timed out, broke the protocol).
  let declined = new Map<string, Set<PieceKey>>();
  let benched = new Set<string>();
  const pools = new Map<string, { idle: Stream[]; opening: Promise<unknown> }>();
  let replan: (() => void) | undefined;
  let running = false;

  /** What the planner may use: announced pieces of reachable peers, less what they declined. */
  function usableHave(): Map<string, Set<PieceKey>> {
    const usable = new Map<string, Set<PieceKey>>();
    for (const [peer, pieces] of have) {
      if (benched.has(peer)) continue;
      const no = declined.get(peer);
      usable.set(peer, no ? new Set([...pieces].filter((p) => !no.has(p))) : pieces);
    }
    return usable;
  }

  async function acquireStream(peer: PeerAddress, signal: AbortSignal): Promise<Stream> {
    let pool = pools.get(peer.peerId);
    if (!pool) pools.set(peer.peerId, (pool = { idle: [], opening: Promise.resolve() }));
    for (let s = pool.idle.pop(); s; s = pool.idle.pop()) if (s.status === 'open') return s;
    // One open at a time per peer, so concurrent first requests dial the peer once, not once each.
    const opened = pool.opening.catch(() => undefined).then(() => deps.openPieceStream(peer, AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)])));
    pool.opening = opened;
    return opened;
  }

  function releaseStream(peerId: string, stream: Stream): void {
    if (running && peers.has(peerId) && !dropped.has(peerId) && !benched.has(peerId)) pools.get(peerId)?.idle.push(stream);
    else closeStream(stream);
  }

  function closeStream(stream: Stream): void {
    stream.close().catch((err: Error) => stream.abort(err));
  }

  function closePool(peerId: string): void {
    for (const stream of pools.get(peerId)?.idle ?? []) closeStream(stream);
    pools.delete(peerId);
  }

  /**
   * A piece from a peer, or undefined when the peer did not give one (declined, failed, gone).
   * A request that fails in transport is tried once more on a fresh stream before the peer is
   * benched: a WebRTC dial or stream now and then fails where the next attempt works at once.
   */
  async function askPeer(peerId: string, at: PieceLocation, signal: AbortSignal): Promise<Uint8Array | undefined> {
    for (let attempt = 1; attempt <= PEER_ATTEMPTS; attempt++) {
      const answer = await askPeerOnce(peerId, at, signal, attempt === PEER_ATTEMPTS);
      if (answer !== RETRY) return answer;
    }
    return undefined;
  }

  async function askPeerOnce(peerId: string, at: PieceLocation, signal: AbortSignal, last: boolean): Promise<Uint8Array | undefined | typeof RETRY> {
    const peer = peers.get(peerId);
    if (!peer || benched.has(peerId) || dropped.has(peerId)) return undefined;
    let stream: Stream | undefined;
    try {
      stream = await acquireStream(peer, signal);
      const answer = await requestPiece(stream, packageId, at.key, { signal: AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]), maxPieceBytes: manifest.pieceSize });
      if (answer.status === 'ok') {
        releaseStream(peerId, stream);
        return answer.bytes;
      }
      if (answer.status === 'not-held') {
        releaseStream(peerId, stream);
        declined.set(peerId, (declined.get(peerId) ?? new Set()).add(at.key));
        return undefined;
      }
      throw new PeerRefusedError(`peer refused the request: ${answer.reason}`);
    } catch (err) {
      if (signal.aborted) throw signal.reason;
      if (stream) closeStream(stream);
      closePool(peerId);
      if (!last && !(err instanceof PeerRefusedError)) return RETRY;
      benched.add(peerId);
      return undefined;
    }
  }

  async function askWebSeed(at: PieceLocation, signal: AbortSignal): Promise<{ bytes: Uint8Array; url: string }> {
    const url = `${webSeedUrl}${at.file.path}`;
    if (at.length === 0) return { bytes: new Uint8Array(0), url };
    let response: Response;
    let body: ArrayBuffer;
    try {
      response = await deps.fetch(url, {
        headers: { Range: `bytes=${at.offset}-${at.offset + at.length - 1}` },
        signal: AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]),
      });
      body = await response.arrayBuffer();
    } catch (err) {
      if (signal.aborted) throw signal.reason;
      throw new WebSeedError(`cannot fetch piece ${at.key}: ${(err as Error)?.message}`, { source: url, cause: err });
    }
    // 200: a server that ignores Range sends the whole file.
    if (response.status === 206) return { bytes: new Uint8Array(body), url };
    if (response.status === 200) return { bytes: new Uint8Array(body).subarray(at.offset, at.offset + at.length), url };
    throw new WebSeedError(`cannot fetch piece ${at.key}: HTTP ${response.status} ${response.statusText}`, { source: url });
  }

  async function fetchAll(external: AbortSignal | undefined): Promise<SwarmReport> {
    external?.throwIfAborted();
    const held = await deps.store.keys(packageId);
    const remaining = new Set(needed.filter((key) => !held.has(key)));
    const report: SwarmReport = {
      total: needed.length,
      verified: 0,
      resumed: needed.length - remaining.size,
      fromPeers: 0,
      fromWebSeed: 0,
      badPieces: 0,
      dropped: [...dropped],
      bytes: 0,
      sources: {},
    };
    const emit = () => {
      const { sources: _sources, ...progress } = report;
      for (const listener of listeners) listener({ ...progress, dropped: [...progress.dropped] });
    };
    emit();
    const inFlight = new Set<PieceKey>();
    const load = new Map<string, number>();
    const controller = new AbortController();
    const signal = external ? AbortSignal.any([external, controller.signal]) : controller.signal;

    /** Fetches, verifies and stores one piece; throws only what must end the run. */
    async function fetchPiece({ piece, source }: PieceRequest): Promise<void> {
      const at = locations.get(piece)!;
      if (source === WEB_SEED) {
        const { bytes, url } = await askWebSeed(at, signal);
        if (!(await isPieceIntact(at, bytes))) {
          throw new PackageError(`the web seed sent bad bytes for piece ${piece} (${bytes.byteLength} bytes, not the ${at.length} with SHA-256 ${at.sha256.slice(0, 16)}… the manifest lists)`, { source: url });
        }
        await stored(piece, source, bytes);
        report.fromWebSeed++;
      } else {
        const bytes = await askPeer(source, at, signal);
        if (!bytes) return;
        if (!(await isPieceIntact(at, bytes))) {
          report.badPieces++;
          dropped.add(source);
          report.dropped = [...dropped];
          closePool(source);
          emit();
          return;
        }
        await stored(piece, source, bytes);
        report.fromPeers++;
      }
      emit();
    }

    async function stored(piece: PieceKey, source: string, bytes: Uint8Array): Promise<void> {
      signal.throwIfAborted();
      await deps.store.put(packageId, piece, bytes);
      remaining.delete(piece);
      report.verified++;
      report.bytes += bytes.byteLength;
      report.sources[source] = (report.sources[source] ?? 0) + 1;
    }

    return new Promise<SwarmReport>((resolve, reject) => {
      let settled = false;
      const finish = (err?: unknown) => {
        if (settled) return;
        settled = true;
        replan = undefined;
        external?.removeEventListener('abort', onAbort);
        controller.abort(err ?? new UsageError('the swarm run has ended'));
        if (err === undefined) resolve(report);
        else reject(err);
      };
      const onAbort = () => finish(external!.reason);
      external?.addEventListener('abort', onAbort, { once: true });
      if (external?.aborted) return onAbort(); // aborted while the store listed its keys

      const pump = () => {
        if (settled) return;
        if (remaining.size === 0) return finish();
        const plan = planRequests({
          needed: needed.filter((key) => remaining.has(key)),
          have: usableHave(),
          inFlight,
          load,
          dropped,
          maxPerPeer,
          maxWebSeed,
        });
        for (const request of plan) {
          inFlight.add(request.piece);
          load.set(request.source, (load.get(request.source) ?? 0) + 1);
          fetchPiece(request)
            .catch(finish)
            .finally(() => {
              inFlight.delete(request.piece);
              load.set(request.source, load.get(request.source)! - 1);
              pump();
            });
        }
        // Nothing in flight and nothing to ask happens only without a web seed: setPeers re-plans.
      };
      replan = pump;
      pump();
    });
  }

  return {
    setPeers(list) {
      peers = new Map(list.map((p) => [p.peerId, { peerId: p.peerId, addrs: p.addrs }]));
      have = new Map(list.map((p) => [p.peerId, new Set(p.have)]));
      declined = new Map();
      benched = new Set();
      for (const peerId of [...pools.keys()]) if (!peers.has(peerId)) closePool(peerId);
      replan?.();
    },
    async run(signal) {
      if (running) throw new UsageError('this swarm fetcher is already running');
      running = true;
      try {
        return await fetchAll(signal);
      } finally {
        running = false;
        for (const peerId of [...pools.keys()]) closePool(peerId);
      }
    },
    onProgress(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
}
