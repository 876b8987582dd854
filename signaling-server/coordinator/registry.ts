/**
 * The coordinator's view of the grid: who is connected, what each donor measured, holds,
 * was assigned and serves, and the RTTs peers reported. Placement and routes are computed from
 * it with the pure functions in shared/placement/. No I/O here: coordinator.ts feeds it messages.
 */
import { InfermeshError } from '../../shared/errors.ts';
import type { Manifest } from '../../shared/model/manifest.ts';
import { blockShards } from '../../shared/model/manifest.ts';
import { rebalance } from '../../shared/placement/placement.ts';
import { bestRoute } from '../../shared/placement/route.ts';
import type { Assignment, ModelShape, NodeCapacity } from '../../shared/placement/types.ts';
import { sameRange } from '../../shared/runtime/stage.ts';
import type { LayerRange } from '../../shared/runtime/stage.ts';
import { piecesForLayers } from '../../shared/swarm/package-pieces.ts';
import type { PieceKey } from '../../shared/swarm/piece-plan.ts';
import type { DeviceSummary, RouteHop, ServingStats } from '../../shared/grid/protocol.ts';
import type { DeviceProfile } from '../trust/device-profile.ts';

/** A donor announced layers it was not assigned or whose pieces it does not hold. */
export class LayersNotHeldError extends InfermeshError {
  override name = 'LayersNotHeldError';
}

/** A peer (or a device) the validator caught cheating: it may not join the grid again. */
export class BannedPeerError extends InfermeshError {
  override name = 'BannedPeerError';
}

/** No chain of serving stages covers the model yet (or, once some are avoided, any longer). */
export class NoRouteError extends InfermeshError {
  override name = 'NoRouteError';
  /** the layers no serving stage (left) covers: empty when each is covered but no chain tiles the model */
  readonly uncovered: number[];
  constructor(message: string, uncovered: number[]) {
    super(message);
    this.uncovered = uncovered;
  }
}

/** A route and its warm standbys, as GET /api/route answers. */
export interface RouteWithStandbys {
  predictedMs: number;
  hops: RouteHop[];
  /**
   * serving stages off the route that each hold exactly one hop's layers: a client swaps one in
   * for that hop when its stage goes (its weights are loaded, its links to the others probed)
   */
  standbys: RouteHop[];
}

/** Layers as people read them: "3", "3..5", "0, 3..5". */
export function layerList(layers: number[]): string {
  const runs: string[] = [];
  for (let i = 0; i < layers.length; i++) {
    let j = i;
    while (j + 1 < layers.length && layers[j + 1] === layers[j] + 1) j++;
    runs.push(j === i ? `${layers[i]}` : `${layers[i]}..${layers[j]}`);
    i = j;
  }
  return runs.join(', ');
}

export interface PeerRecord {
  peerId: string;
  role: 'donor' | 'client';
  addrs: string[];
  device?: DeviceSummary;
  have: Set<PieceKey>;
  assignment?: LayerRange;
  serving?: LayerRange;
  rtt: Map<string, number>;
  stats?: ServingStats;
  joinedAt: number;
  /** what the server tells of its device (trust/device-profile.ts): a donor's, when it said hello with one */
  profile?: DeviceProfile;
}

/** RTT assumed for a link nobody has measured yet (a client's first hop): a LAN-ish guess. */
export const UNMEASURED_RTT_MS = 5;

export interface RegistryOptions {
  manifest: Manifest;
  /** the server's --max-layers-per-node */
  maxLayersPerNode?: number;
  /** where bans are kept across restarts (the server's store); default: in memory only */
  bans?: BanList;
}

/**
 * Bans by key (a peer id, `device:<signature>`, or `profile:<device profile>`), with why: read
 * when the registry starts, added to as it bans. A banned peer id or signature may not join; a
 * banned profile only marks look-alikes (resemblesBanned) for the validator to check in full.
 */
export interface BanList {
  all(): Iterable<[key: string, reason: string]>;
  add(key: string, reason: string): void;
}

/** Bytes one layer needs on a donor: its graph and weights plus a full-context KV cache in f32. */
export function bytesPerLayer(manifest: Manifest): number {
  const sizes = new Map(manifest.files.map((f) => [f.path, f.size]));
  const weights = Math.max(...blockShards(manifest).map((s) => (sizes.get(s.graph) ?? 0) + (sizes.get(s.data) ?? 0)));
  const { maxSeqLen, nKvHeads, headDim } = manifest.config;
  return weights + 2 * maxSeqLen * nKvHeads * headDim * 4;
}

export function createRegistry(options: RegistryOptions) {
  const { manifest } = options;
  const shape: ModelShape = { nLayers: manifest.config.nLayers, bytesPerLayer: bytesPerLayer(manifest) };
  const peers = new Map<string, PeerRecord>();
  /** Peer ids and device signatures caught cheating, with why (kept by options.bans across restarts). */
  const banned = new Map<string, string>(options.bans?.all() ?? []);
  /** Stages kept out of routes for a while (trust/no-shows.ts): they serve on, but no request goes through them. */
  const suspended = new Set<string>();
  const addBan = (key: string, reason: string) => {
    banned.set(key, reason);
    options.bans?.add(key, reason);
  };

  const donors = () => [...peers.values()].filter((p) => p.role === 'donor' && p.device);
  const capacity = (p: PeerRecord): NodeCapacity => ({ id: p.peerId, memoryBytes: p.device!.memoryBytes, msPerLayer: p.device!.msPerLayer });

  return {
    peers,
    shape,
    /**
     * A peer says hello. A donor that lost its session and joins again names the range it serves
     * (`claim`): it serves on as it did (its stage never stopped), so it is taken as its
     * assignment and as served at once, and the next `place()` moves it only as it would move
     * any serving donor. Its pieces follow in the 'have' it sends next.
     */
    join(peerId: string, role: PeerRecord['role'], addrs: string[], device: DeviceSummary | undefined, now: number, claim?: LayerRange, profile?: DeviceProfile): PeerRecord {
      const ban = banned.get(peerId) ?? (device && banned.get(`device:${device.signature}`));
      if (ban) throw new BannedPeerError(`this ${banned.has(peerId) ? 'peer' : 'device'} was caught serving wrong results and may not join: ${ban}`);
      const old = peers.get(peerId);
      const record: PeerRecord = { peerId, role, addrs, device, have: old?.have ?? new Set(), rtt: new Map(), joinedAt: now, profile };
      if (role === 'donor' && claim) record.assignment = record.serving = claim;
      peers.set(peerId, record);
      return record;
    },
    leave(peerId: string) {
      peers.delete(peerId);
    },
    /** Bans a peer and its device from the grid; it leaves the registry (re-place after this). */
    ban(peerId: string, reason: string) {
      addBan(peerId, reason);
      const record = peers.get(peerId);
      if (record?.device) addBan(`device:${record.device.signature}`, reason);
      if (record?.profile) addBan(`profile:${record.profile.own}`, reason);
      peers.delete(peerId);
    },
    isBanned: (peerId: string) => banned.has(peerId),
    /** Whether a peer's device looks like one banned for cheating (same network, provider, adapter and about its speed). */
    resemblesBanned: (peerId: string) => peers.get(peerId)?.profile?.near.some((p) => banned.has(`profile:${p}`)) ?? false,
    /** Keeps a stage out of routes until resume(); it stays registered and serving. */
    suspend: (peerId: string) => void suspended.add(peerId),
    resume: (peerId: string) => void suspended.delete(peerId),
    isSuspended: (peerId: string) => suspended.has(peerId),
    /** Re-places donors after a join or leave; returns the donors whose range changed. */
    place(): Assignment[] {
      const current = donors().flatMap((p) => (p.assignment ? [{ nodeId: p.peerId, layers: p.assignment }] : []));
      // A move never takes the last serving replica of a layer off before its successor has loaded.
      const serving = new Set(donors().filter((p) => p.serving).map((p) => p.peerId));
      const { assignments } = rebalance(shape, donors().map(capacity), current, { maxLayersPerNode: options.maxLayersPerNode, serving });
      const changed: Assignment[] = [];
      for (const a of assignments) {
        const p = peers.get(a.nodeId)!;
        if (p.assignment && sameRange(p.assignment, a.layers)) continue;
        p.assignment = a.layers;
        if (p.serving && !sameRange(p.serving, a.layers)) p.serving = undefined;
        changed.push(a);
      }
      return changed;
    },
    /** A donor says it serves `layers`: only its assignment, and only when it announced every piece of it. */
    serving(peerId: string, layers: LayerRange): void {
      const p = peers.get(peerId);
      if (!p || p.role !== 'donor') throw new LayersNotHeldError(`peer ${peerId} is not a registered donor`);
      const a = p.assignment;
      if (!a || !sameRange(a, layers)) {
        throw new LayersNotHeldError(`announced layers ${layers.start}..${layers.end - 1} but was assigned ${a ? `${a.start}..${a.end - 1}` : 'none'}`);
      }
      const needed = piecesForLayers(manifest, layers);
      const missing = needed.filter((k) => !p.have.has(k));
      if (missing.length > 0) {
        throw new LayersNotHeldError(`announced layers ${layers.start}..${layers.end - 1} but holds ${needed.length - missing.length} of their ${needed.length} pieces (missing ${missing[0]})`);
      }
      p.serving = layers;
    },
    /** Layers 0..n-1 each served by how many donors (leaving out `avoid`). */
    coverage(avoid: ReadonlySet<string> = new Set()): number[] {
      const cover = new Array<number>(shape.nLayers).fill(0);
      for (const p of peers.values()) if (p.serving && !avoid.has(p.peerId) && !suspended.has(p.peerId)) for (let l = p.serving.start; l < p.serving.end; l++) cover[l] += 1;
      return cover;
    },
    /**
     * The best route for `clientId` and its standbys, leaving out the stages in `avoid` (those a
     * client saw fail or stall mid-request). Throws NoRouteError naming the uncovered layers.
     */
    route(clientId = 'client', avoid: ReadonlySet<string> = new Set()): RouteWithStandbys {
      const serving = [...peers.values()].filter((p) => p.serving && p.device && !avoid.has(p.peerId) && !suspended.has(p.peerId));
      const stages = serving.map((p) => ({ peerId: p.peerId, layers: p.serving!, msPerLayer: p.device!.msPerLayer }));
      const rtt = (a: string, b: string) => peers.get(a)?.rtt.get(b) ?? peers.get(b)?.rtt.get(a) ?? UNMEASURED_RTT_MS;
      const route = bestRoute(shape.nLayers, stages, rtt, clientId);
      if (!route) {
        const cover = this.coverage(avoid);
        const uncovered = cover.flatMap((c, layer) => (c === 0 ? [layer] : []));
        const left = avoid.size > 0 ? ` once ${avoid.size} failed stage(s) are left out` : ' yet';
        // What the grid lacks, for whoever reads the error: donors at all, or donors still getting ready.
        const joined = donors();
        const preparing = joined.filter((p) => !p.serving).length;
        const why =
          joined.length === 0
            ? '; no donor has joined the grid (a donor opens its /donor/ page in a browser, or runs `npx infermesh donate <grid URL>`)'
            : preparing > 0
              ? `; ${preparing} donor(s) still measuring, fetching or loading their layers`
              : '';
        throw new NoRouteError(
          uncovered.length > 0
            ? `layers ${layerList(uncovered)} of 0..${shape.nLayers - 1} are served by no stage${left} (coverage per layer: ${cover.join(',')})${why}`
            : `no chain of serving stages covers layers 0..${shape.nLayers - 1}${left} (coverage per layer: ${cover.join(',')})${why}`,
          uncovered,
        );
      }
      const hop = (p: PeerRecord): RouteHop => ({ peerId: p.peerId, addrs: p.addrs, layers: p.serving! });
      const onRoute = new Set(route.hops.map((h) => h.peerId));
      const standbys = serving.filter((p) => !onRoute.has(p.peerId) && route.hops.some((h) => sameRange(h.layers, p.serving!)));
      return { predictedMs: route.predictedMs, hops: route.hops.map((h) => hop(peers.get(h.peerId)!)), standbys: standbys.map(hop) };
    },
  };
}

export type Registry = ReturnType<typeof createRegistry>;
