/**
 * The coordinator: donors and clients keep one COORDINATOR_PROTOCOL stream open to the server
 * (over their WebSocket connection to the relay) and exchange small JSON messages on it.
 * Donors say hello with their measured device, are assigned layer ranges (placement), announce
 * the pieces they hold (forwarded to every peer so downloads can come from peers), report RTTs,
 * and say when they serve; clients ask for routes over HTTP (routeFor). A peer that leaves
 * loses its range and the rest are re-placed.
 *
 * Its peers may be anyone, so (coordinator-messages.ts has the schemas):
 *  - a peer has one session: a newer stream from it replaces the older, which is told so and
 *    closed without the peer leaving; the peer leaves when its current stream ends;
 *  - a stream must say hello within HELLO_TIMEOUT_MS;
 *  - a message that breaks the protocol (framing, JSON, schema, another peer's addresses,
 *    pieces the package lacks, a ban) is answered with an ERROR naming it, then the stream is
 *    closed; a claim the registry cannot grant yet (LayersNotHeldError: a download or an
 *    assignment still on its way) is answered with an ERROR and the session goes on.
 */
import type { Libp2p } from 'libp2p';
import type { Stream } from '@libp2p/interface';
import { multiaddr } from '@multiformats/multiaddr';
import { InfermeshError } from '../../shared/errors.ts';
import type { Manifest } from '../../shared/model/manifest.ts';
import type { LayerRange } from '../../shared/runtime/stage.ts';
import { MAX_CONTROL_BYTES } from '../../shared/grid/protocol.ts';
import { COORDINATOR_PROTOCOL } from '../../shared/grid/protocol-ids.ts';
import type { FromCoordinator, ModelOffer, ToCoordinator, VerdictNotice } from '../../shared/grid/protocol.ts';
import { CoordinatorMessageError, parseToCoordinator } from '../../shared/grid/coordinator-messages.ts';
import { boundedLpStream, nextMessage } from '../../shared/grid/lp-stream.ts';
import { endStream } from '../../shared/grid/stream-end.ts';
import { piecesOfFile } from '../../shared/swarm/package-pieces.ts';
import { createRegistry } from './registry.ts';
import type { BanList, PeerRecord, Registry } from './registry.ts';
import { deviceProfile } from '../trust/device-profile.ts';

/** A stream that lost its framing: a bad length prefix or a message over MAX_CONTROL_BYTES. */
export class CoordinatorFrameError extends InfermeshError {
  override name = 'CoordinatorFrameError';
}

/** A stream that did not say hello in time. */
export class HelloTimeoutError extends InfermeshError {
  override name = 'HelloTimeoutError';
}

/** This stream was replaced by a newer one from the same peer. */
export class SessionReplacedError extends InfermeshError {
  override name = 'SessionReplacedError';
}

/** A tab says hello as soon as its stream is open; one that has not after this is not a tab. */
export const HELLO_TIMEOUT_MS = 5_000;

/** Refusals after which the session goes on: a claim the registry may grant once the peer catches up. */
const KEEPS_SESSION: ReadonlySet<string> = new Set(['LayersNotHeldError']);

/** One peer's current coordinator stream. */
interface Session {
  stream: Stream;
  send(message: FromCoordinator): void;
  /** answers with an ERROR naming `err`, then ends the stream */
  refuse(err: unknown): Promise<void>;
}

/** How long peer announcements are gathered before one 'peers' message goes out to everyone. */
const PEERS_BROADCAST_DEBOUNCE_MS = 100;

export interface CoordinatorOptions {
  manifest: Manifest;
  /** base URL of the package on the HTTP server (web seed), ending in '/' */
  packageUrl: string;
  maxLayersPerNode?: number;
  /** default HELLO_TIMEOUT_MS */
  helloTimeoutMs?: number;
  /** bans kept across restarts (registry.ts BanList); default: in memory */
  bans?: BanList;
}

/** What the coordinator records, for the server's store (signaling-server/store.ts). */
export interface CoordinatorEvents {
  peerSeen?(peer: PeerRecord): void;
  peerLeft?(peerId: string): void;
  assigned?(peerId: string, layers: { start: number; end: number }): void;
  /** a donor named the EVM address its earnings go to */
  payTo?(peerId: string, address: `0x${string}`): void;
}

export interface Coordinator {
  readonly registry: Registry;
  /**
   * Acts on a verdict against a stage: bans the peer and its device, gives its layers to
   * others, and tells every peer (the stage, clients, donors).
   */
  banish(verdict: VerdictNotice): void;
  readonly offer: ModelOffer;
  /** Resolves when every layer is served by at least `replicas` donors. */
  waitForCoverage(replicas?: number, timeoutMs?: number): Promise<void>;
  /** Resolves when `check` holds, tested whenever a donor starts or stops serving. */
  waitFor(check: (registry: Registry) => boolean, what: string, timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

export interface CoordinatorDeps {
  node: Libp2p;
  events?: CoordinatorEvents;
  now?: () => number;
  /** Where failures that are ours, not a peer's (a bug, a store that failed), are reported; default console.error. */
  logError?: (err: unknown) => void;
}

export async function startCoordinator(options: CoordinatorOptions, deps: CoordinatorDeps): Promise<Coordinator> {
  const { manifest } = options;
  const registry = createRegistry({ manifest, maxLayersPerNode: options.maxLayersPerNode, bans: options.bans });
  const now = deps.now ?? Date.now;
  const helloTimeoutMs = options.helloTimeoutMs ?? HELLO_TIMEOUT_MS;
  const logError = deps.logError ?? ((err: unknown) => console.error(err));
  const offer: ModelOffer = { packageId: manifest.id, name: manifest.name, nLayers: manifest.config.nLayers, packageUrl: options.packageUrl };
  const sessions = new Map<string, Session>();
  const pieceKeys = new Set(manifest.files.flatMap(piecesOfFile));
  const coverageWaiters = new Set<() => void>();
  let broadcastTimer: ReturnType<typeof setTimeout> | null = null;

  const send = (peerId: string, message: FromCoordinator) => sessions.get(peerId)?.send(message);
  const donorsSeenBy = (peerId: string): Extract<FromCoordinator, { type: 'peers' }> => ({
    type: 'peers',
    peers: [...registry.peers.values()]
      .filter((p) => p.role === 'donor' && p.peerId !== peerId)
      .map((p) => ({ peerId: p.peerId, addrs: p.addrs, have: [...p.have], serving: p.serving })),
  });
  const broadcastPeers = () => {
    if (broadcastTimer) return;
    broadcastTimer = setTimeout(() => {
      broadcastTimer = null;
      for (const id of sessions.keys()) send(id, donorsSeenBy(id));
    }, PEERS_BROADCAST_DEBOUNCE_MS);
  };
  const place = () => {
    for (const a of registry.place()) {
      deps.events?.assigned?.(a.nodeId, a.layers);
      send(a.nodeId, { type: 'assign', packageId: manifest.id, layers: a.layers });
    }
  };
  const coverageChanged = () => coverageWaiters.forEach((w) => w());

  /** `remoteAddr`: where the peer's connection comes from, as the server sees it (for its device profile). */
  function onMessage(peerId: string, message: ToCoordinator, remoteAddr?: string): void {
    const peer = registry.peers.get(peerId);
    if (message.type === 'hello') {
      if (message.role === 'donor' && !message.device) throw new CoordinatorMessageError('a donor hello needs its device summary');
      checkOwnAddrs(peerId, message.addrs);
      if (message.layers) checkClaim(message.role, message.layers);
      const profile = message.device && deviceProfile(message.device, remoteAddr);
      const record = registry.join(peerId, message.role, message.addrs, message.device, now(), message.layers, profile);
      deps.events?.peerSeen?.(record);
      send(peerId, { type: 'welcome', peerId, model: offer });
      // Who holds what, before any assignment: a newcomer's first download plan asks peers, not the web seed.
      send(peerId, donorsSeenBy(peerId));
      if (message.role === 'donor' && message.payTo) deps.events?.payTo?.(peerId, message.payTo as `0x${string}`);
      if (message.role === 'donor') place();
      broadcastPeers();
      // A donor that joins again serves again.
      if (message.layers) coverageChanged();
      return;
    }
    if (!peer) throw new CoordinatorMessageError(`say hello before '${message.type}'`);
    switch (message.type) {
      case 'have': {
        checkPackage(message.packageId);
        const unknown = message.pieces.find((k) => !pieceKeys.has(k));
        if (unknown !== undefined) throw new CoordinatorMessageError(`have: ${JSON.stringify(unknown.slice(0, 80))} is not a piece of package ${manifest.id}`);
        peer.have = new Set(message.pieces);
        broadcastPeers();
        return;
      }
      case 'serving':
        checkPackage(message.packageId);
        registry.serving(peerId, message.layers);
        broadcastPeers();
        coverageChanged();
        return;
      case 'rtt':
        // A peer measured before it left is no longer anyone's neighbour: kept only for peers here.
        for (const [other, m] of Object.entries(message.peers)) if (other !== peerId && registry.peers.has(other)) peer.rtt.set(other, m.rttMs);
        return;
      case 'stats':
        peer.stats = message.stats;
        if (peer.device && message.stats.msPerLayer) peer.device = { ...peer.device, msPerLayer: message.stats.msPerLayer };
        deps.events?.peerSeen?.(peer);
        return;
    }
  }

  function checkPackage(packageId: string): void {
    if (packageId !== manifest.id) throw new CoordinatorMessageError(`this grid serves package ${manifest.id}, not ${JSON.stringify(packageId.slice(0, 80))}`);
  }

  /** A rejoining donor's range must be one this grid could have assigned it. */
  function checkClaim(role: PeerRecord['role'], layers: LayerRange): void {
    const { nLayers } = manifest.config;
    const most = options.maxLayersPerNode ?? nLayers;
    if (role !== 'donor') throw new CoordinatorMessageError('hello: only a donor names the layers it serves');
    if (layers.end > nLayers || layers.end - layers.start > most) {
      throw new CoordinatorMessageError(`hello: layers ${layers.start}..${layers.end - 1} are not a range this grid assigns (layers 0..${nLayers - 1}, at most ${most} per donor)`);
    }
  }

  /** Peers are introduced by these addresses: each must be a multiaddr that ends in the sender's own id. */
  function checkOwnAddrs(peerId: string, addrs: string[]): void {
    for (const [i, addr] of addrs.entries()) {
      let self: string | undefined;
      try {
        self = multiaddr(addr).getComponents().findLast((c) => c.name === 'p2p')?.value;
      } catch (err) {
        throw new CoordinatorMessageError(`hello: addrs.${i}: ${JSON.stringify(addr.slice(0, 80))} is not a multiaddr`, { cause: err });
      }
      if (self !== peerId) throw new CoordinatorMessageError(`hello: addrs.${i} must end in this peer's own /p2p/${peerId}, not ${self ? `/p2p/${self}` : 'no peer id'}`);
    }
  }

  function openSession(stream: Stream, peerId: string) {
    const lp = boundedLpStream(stream, MAX_CONTROL_BYTES);
    let queue = Promise.resolve();
    let ended = false;
    const write = (message: FromCoordinator) => lp.write(new TextEncoder().encode(JSON.stringify(message)));
    const session: Session = {
      stream,
      send(message) {
        if (ended) return;
        // One writer at a time on a stream; messages keep their order.
        queue = queue.then(() => write(message)).catch(() => undefined);
      },
      async refuse(err) {
        if (ended) return;
        ended = true;
        const e = err as InfermeshError;
        const refusal: FromCoordinator = { type: 'error', name: e?.name ?? 'Error', message: e?.shortMessage ?? e?.message ?? String(err) };
        await endStream(stream, () => queue.then(() => write(refusal)));
      },
    };
    return { session, lp };
  }

  async function handle(stream: Stream, peerId: string, remoteAddr: string): Promise<void> {
    const { session, lp } = openSession(stream, peerId);
    const older = sessions.get(peerId);
    sessions.set(peerId, session);
    if (older) void older.refuse(new SessionReplacedError('a newer coordinator stream from this peer replaces this one'));
    const helloTimer = setTimeout(() => {
      if (!registry.peers.has(peerId)) void session.refuse(new HelloTimeoutError(`say hello within ${helloTimeoutMs} ms of opening the stream`));
    }, helloTimeoutMs);
    try {
      for (;;) {
        const next = await nextMessage(lp);
        if (next.kind === 'unframed') {
          return await session.refuse(new CoordinatorFrameError(`a coordinator message is a varint length, then at most ${MAX_CONTROL_BYTES} bytes of JSON: ${next.error.message}`));
        }
        // The peer closed its end or the stream was reset: the peer left (tab closed, reload,
        // network gone). Our end closes too.
        if (next.kind === 'end') return await endStream(stream);
        const bytes = next.bytes;
        // A replaced stream's last messages speak for a session that is over.
        if (sessions.get(peerId) !== session) continue;
        try {
          onMessage(peerId, parseToCoordinator(bytes), remoteAddr);
        } catch (err) {
          // A peer's fault is an InfermeshError naming it; anything else is ours, and still ends only this stream.
          if (!(err instanceof InfermeshError)) logError(err);
          if (!KEEPS_SESSION.has((err as Error)?.name)) return await session.refuse(err);
          const e = err as InfermeshError;
          session.send({ type: 'error', name: e.name, message: e.shortMessage ?? e.message });
        }
      }
    } finally {
      clearTimeout(helloTimer);
      // A replaced session's end is not its peer's: the newer stream carries on.
      if (sessions.get(peerId) === session) {
        sessions.delete(peerId);
        if (registry.peers.has(peerId)) {
          registry.leave(peerId);
          deps.events?.peerLeft?.(peerId);
          place();
          broadcastPeers();
          coverageChanged();
        }
      }
    }
  }

  await deps.node.handle(COORDINATOR_PROTOCOL, (stream, connection) => {
    void handle(stream, connection.remotePeer.toString(), connection.remoteAddr.toString()).catch((err: Error) => {
      logError(err);
      stream.abort(err);
    });
  }, { runOnLimitedConnection: false, maxInboundStreams: 4 });

  const waitFor: Coordinator['waitFor'] = (check, what, timeoutMs = 120_000) => {
    return new Promise<void>((resolve, reject) => {
      const test = () => {
        if (!check(registry)) return;
        coverageWaiters.delete(test);
        clearTimeout(timer);
        resolve();
      };
        const timer = setTimeout(() => {
          coverageWaiters.delete(test);
          reject(new InfermeshError(`not reached within ${timeoutMs} ms: ${what} (coverage per layer ${registry.coverage().join(',')})`));
        }, timeoutMs);
        coverageWaiters.add(test);
        test();
      });
  };

  return {
    registry,
    offer,
    banish(verdict) {
      const wasHere = registry.peers.has(verdict.peerId);
      registry.ban(verdict.peerId, verdict.reason);
      for (const id of sessions.keys()) send(id, { type: 'verdict', verdict });
      if (!wasHere) return;
      deps.events?.peerLeft?.(verdict.peerId);
      place();
      broadcastPeers();
      coverageChanged();
    },
    waitFor,
    waitForCoverage: (replicas = 1, timeoutMs = 120_000) =>
      waitFor((r) => r.coverage().every((c) => c >= replicas), `every layer served ${replicas}x`, timeoutMs),
    async stop() {
      if (broadcastTimer) clearTimeout(broadcastTimer);
      await deps.node.unhandle(COORDINATOR_PROTOCOL);
    },
  };
}
