/**
 * The coordinator: donors and clients keep one COORDINATOR_PROTOCOL stream open to the server
 * (over their WebSocket connection to the relay) and exchange small JSON messages on it.
 * Donors say hello with their measured device, are assigned layer ranges (placement), announce
 * the pieces they hold (forwarded to every peer so downloads can come from peers), report RTTs,
 * and say when they serve; clients ask for routes over HTTP (routeFor). A peer that leaves
 * loses its range and the rest are re-placed. Bad messages get an ERROR naming the problem.
 */
import type { Libp2p } from 'libp2p';
import type { Stream } from '@libp2p/interface';
import { lpStream } from '@libp2p/utils';
import type { LengthPrefixedStream } from '@libp2p/utils';
import { InfermeshError, UsageError } from '../../shared/errors.ts';
import type { Manifest } from '../../shared/model/manifest.ts';
import { COORDINATOR_PROTOCOL, MAX_CONTROL_BYTES } from '../../shared/grid/protocol.ts';
import type { FromCoordinator, ModelOffer, ToCoordinator, VerdictNotice } from '../../shared/grid/protocol.ts';
import { createRegistry } from './registry.ts';
import type { PeerRecord, Registry } from './registry.ts';

/** How long peer announcements are gathered before one 'peers' message goes out to everyone. */
const PEERS_BROADCAST_DEBOUNCE_MS = 100;

export interface CoordinatorOptions {
  manifest: Manifest;
  /** base URL of the package on the HTTP server (web seed), ending in '/' */
  packageUrl: string;
  maxLayersPerNode?: number;
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

export async function startCoordinator(options: CoordinatorOptions, deps: { node: Libp2p; events?: CoordinatorEvents; now?: () => number }): Promise<Coordinator> {
  const { manifest } = options;
  const registry = createRegistry({ manifest, maxLayersPerNode: options.maxLayersPerNode });
  const now = deps.now ?? Date.now;
  const offer: ModelOffer = { packageId: manifest.id, name: manifest.name, nLayers: manifest.config.nLayers, packageUrl: options.packageUrl };
  const senders = new Map<string, (message: FromCoordinator) => void>();
  const coverageWaiters = new Set<() => void>();
  let broadcastTimer: ReturnType<typeof setTimeout> | null = null;

  const send = (peerId: string, message: FromCoordinator) => senders.get(peerId)?.(message);
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
      for (const id of senders.keys()) send(id, donorsSeenBy(id));
    }, PEERS_BROADCAST_DEBOUNCE_MS);
  };
  const place = () => {
    for (const a of registry.place()) {
      deps.events?.assigned?.(a.nodeId, a.layers);
      send(a.nodeId, { type: 'assign', packageId: manifest.id, layers: a.layers });
    }
  };
  const coverageChanged = () => coverageWaiters.forEach((w) => w());

  function onMessage(peerId: string, message: ToCoordinator): void {
    const peer = registry.peers.get(peerId);
    if (message.type === 'hello') {
      if (message.role !== 'donor' && message.role !== 'client') throw new UsageError(`hello.role must be 'donor' or 'client', got ${JSON.stringify(message.role)}`);
      if (!Array.isArray(message.addrs)) throw new UsageError('hello.addrs must be an array of multiaddrs');
      if (message.role === 'donor') checkDevice(message.device);
      if (message.payTo !== undefined && !/^0x[0-9a-fA-F]{40}$/.test(String(message.payTo))) {
        throw new UsageError(`hello.payTo must be an EVM address (0x and 40 hex digits), got ${JSON.stringify(message.payTo)}`);
      }
      const record = registry.join(peerId, message.role, message.addrs, message.device, now());
      deps.events?.peerSeen?.(record);
      send(peerId, { type: 'welcome', peerId, model: offer });
      // Who holds what, before any assignment: a newcomer's first download plan asks peers, not the web seed.
      send(peerId, donorsSeenBy(peerId));
      if (message.role === 'donor' && message.payTo) deps.events?.payTo?.(peerId, message.payTo as `0x${string}`);
      if (message.role === 'donor') place();
      broadcastPeers();
      return;
    }
    if (!peer) throw new UsageError(`say hello before '${message.type}'`);
    switch (message.type) {
      case 'have':
        if (message.packageId !== manifest.id) throw new UsageError(`this grid serves package ${manifest.id}, not ${message.packageId}`);
        if (!Array.isArray(message.pieces)) throw new UsageError('have.pieces must be an array of piece keys');
        peer.have = new Set(message.pieces.filter((k) => typeof k === 'string'));
        broadcastPeers();
        return;
      case 'serving':
        if (message.packageId !== manifest.id) throw new UsageError(`this grid serves package ${manifest.id}, not ${message.packageId}`);
        registry.serving(peerId, message.layers);
        broadcastPeers();
        coverageChanged();
        return;
      case 'rtt':
        for (const [other, m] of Object.entries(message.peers ?? {})) if (Number.isFinite(m?.rttMs)) peer.rtt.set(other, m.rttMs);
        return;
      case 'stats':
        peer.stats = message.stats;
        if (peer.device && Number(message.stats?.msPerLayer) > 0) peer.device = { ...peer.device, msPerLayer: Number(message.stats.msPerLayer) };
        deps.events?.peerSeen?.(peer);
        return;
      default:
        throw new UsageError(`unknown coordinator message type ${JSON.stringify((message as { type: unknown }).type)}`);
    }
  }

  async function handle(stream: Stream, peerId: string): Promise<void> {
    const lp: LengthPrefixedStream<Stream> = lpStream(stream, { maxDataLength: MAX_CONTROL_BYTES });
    let queue = Promise.resolve();
    senders.set(peerId, (message) => {
      // One writer at a time on a stream; messages keep their order.
      queue = queue.then(() => lp.write(new TextEncoder().encode(JSON.stringify(message)))).catch(() => undefined);
    });
    try {
      for (;;) {
        const bytes = (await lp.read()).subarray();
        try {
          const message = JSON.parse(new TextDecoder().decode(bytes)) as ToCoordinator;
          if (typeof message !== 'object' || message === null || typeof message.type !== 'string') throw new UsageError('a coordinator message is a JSON object with a "type"');
          onMessage(peerId, message);
        } catch (err) {
          const e = err as InfermeshError;
          send(peerId, { type: 'error', name: err instanceof SyntaxError ? 'UsageError' : e.name, message: err instanceof SyntaxError ? `not JSON: ${e.message}` : (e.shortMessage ?? e.message) });
        }
      }
    } catch {
      // The stream closed: the peer left (tab closed, reload, network gone).
    } finally {
      senders.delete(peerId);
      if (registry.peers.has(peerId)) {
        registry.leave(peerId);
        deps.events?.peerLeft?.(peerId);
        place();
        broadcastPeers();
        coverageChanged();
      }
    }
  }

  await deps.node.handle(COORDINATOR_PROTOCOL, (stream, connection) => {
    void handle(stream, connection.remotePeer.toString());
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
      for (const id of senders.keys()) send(id, { type: 'verdict', verdict });
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

function checkDevice(device: unknown): void {
  const d = device as Record<string, unknown> | undefined;
  if (!d || typeof d !== 'object') throw new UsageError('a donor hello needs its device summary');
  if (!(Number(d.msPerLayer) > 0)) throw new UsageError(`device.msPerLayer must be a positive number, got ${JSON.stringify(d.msPerLayer)}`);
  if (!(Number(d.memoryBytes) > 0)) throw new UsageError(`device.memoryBytes must be a positive number, got ${JSON.stringify(d.memoryBytes)}`);
}
