/**
 * Which contiguous layer range each node serves. Like Petals' block selection, every node takes
 * as many layers as its memory holds and places them where the swarm is weakest; "weakest"
 * here is lexicographic: first the fewest replicas (the goal is every layer served at least
 * REPLICAS times when the grid allows), then the least total throughput. Pure functions: the
 * coordinator calls them with measured capacities and acts on the result.
 *
 * A stage runs exactly the range it loaded (one stitched graph), so a route is a chain of
 * ranges that tile 0..n end to start (route.ts). Placement therefore starts a window only at a
 * tiling boundary — 0 or the end of a range a route can already reach — and clips it at the
 * model's end; a node there may get fewer layers than it holds. Any window placed this way
 * extends some route, so once the nodes' capacity adds up to the model, a route exists.
 */
import { UsageError } from '../errors.ts';
import { throughputOf } from './types.ts';
import { sameRange } from '../runtime/stage.ts';
import type { LayerRange } from '../runtime/stage.ts';
import type { Assignment, ModelShape, NodeCapacity } from './types.ts';

/** Each layer on at least two nodes, so one node leaving never breaks a route. */
export const REPLICAS = 2;
/** A node moves only when that raises the weakest layer's throughput by this fraction (Petals uses 1.2x too). */
export const REBALANCE_GAIN = 0.2;

export interface PlacementOptions {
  /** The most layers one node is given whatever its memory (the server's `--max-layers-per-node`). */
  maxLayersPerNode?: number;
}

export interface RebalanceOptions extends PlacementOptions {
  /**
   * The nodes serving their current range now (weights loaded), not merely assigned it. A
   * serving node moves only to give the weakest layer a replica (or close a gap), never for
   * throughput alone: a move ends the requests running through it. And only when every layer it
   * serves stays served by another serving node that is not moving: a move is a download, and
   * until the node that takes its place has loaded, the layers must not go dark (make before
   * break). Left out, nodes move as if none served yet.
   */
  serving?: ReadonlySet<string>;
}

export interface LayerCoverage {
  replicas: number[];
  throughput: number[];
}

export function coverage(shape: ModelShape, nodes: NodeCapacity[], assignments: Assignment[]): LayerCoverage {
  const replicas = new Array<number>(shape.nLayers).fill(0);
  const throughput = new Array<number>(shape.nLayers).fill(0);
  const byId = new Map(nodes.map((n) => [n.id, n]));
  for (const a of assignments) {
    const node = byId.get(a.nodeId);
    if (!node) continue;
    for (let l = a.layers.start; l < a.layers.end; l++) {
      replicas[l] += 1;
      throughput[l] += throughputOf(node);
    }
  }
  return { replicas, throughput };
}

/** How many layers a node can hold: whole layers that fit its memory, at most the model and the cap. */
export function spanOf(shape: ModelShape, node: NodeCapacity, maxLayersPerNode?: number): number {
  if (maxLayersPerNode !== undefined && !(Number.isInteger(maxLayersPerNode) && maxLayersPerNode >= 1)) {
    throw new UsageError(`maxLayersPerNode must be a whole number of at least 1, got ${maxLayersPerNode}`);
  }
  return Math.min(shape.nLayers, Math.floor(node.memoryBytes / shape.bytesPerLayer), maxLayersPerNode ?? Infinity);
}

/**
 * The assignments a route can reach from layer 0: those starting at 0 or where a reachable one
 * ends. The others are stranded: their layers serve no request until the gap before them closes.
 */
export function routable(nLayers: number, assignments: Assignment[]): Assignment[] {
  const reached = new Set<number>([0]);
  const found = new Set<Assignment>();
  for (let grew = true; grew; ) {
    grew = false;
    for (const a of assignments) {
      // The same ranges route.ts ignores can never be part of a route.
      if (found.has(a) || !reached.has(a.layers.start) || a.layers.end <= a.layers.start || a.layers.end > nLayers) continue;
      found.add(a);
      reached.add(a.layers.end);
      grew = true;
    }
  }
  return assignments.filter((a) => found.has(a));
}

/** Where a new window may start and still join a route: 0 and each reachable end before the model's end, ascending. */
export function tilingStarts(nLayers: number, assignments: Assignment[]): number[] {
  const starts = new Set<number>([0]);
  for (const a of routable(nLayers, assignments)) if (a.layers.end < nLayers) starts.add(a.layers.end);
  return [...starts].sort((x, y) => x - y);
}

/** Whether the assignments hold a chain of ranges tiling 0..nLayers: what bestRoute needs (reachability aside). */
export function hasRoute(nLayers: number, assignments: Assignment[]): boolean {
  return routable(nLayers, assignments).some((a) => a.layers.end === nLayers);
}

type WindowKey = [number, number, number, number];
const lessThan = (a: WindowKey, b: WindowKey) => {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i] < b[i];
  return false;
};

/**
 * The start, among `starts`, of the window of up to `span` layers (clipped at the model's end) a
 * node should take: the one whose weakest layer is weakest (fewest replicas, then least
 * throughput). Ties go to the window raising more layers at that weakest level — so a gap is
 * filled from its beginning, and a window clipped at the end does not win by being short —
 * then to the least total throughput, then the lowest start, so the result is deterministic.
 */
export function bestStart(cov: LayerCoverage, span: number, starts: readonly number[]): number {
  const n = cov.replicas.length;
  let best = 0;
  let bestKey: WindowKey | null = null;
  for (const start of starts) {
    if (start < 0 || start >= n) continue;
    const end = Math.min(start + span, n);
    let minReplicas = Infinity;
    let minThroughput = Infinity;
    let total = 0;
    for (let l = start; l < end; l++) {
      if (cov.replicas[l] < minReplicas || (cov.replicas[l] === minReplicas && cov.throughput[l] < minThroughput)) {
        minReplicas = cov.replicas[l];
        minThroughput = cov.throughput[l];
      }
      total += cov.throughput[l];
    }
    let atWeakest = 0;
    for (let l = start; l < end; l++) if (cov.replicas[l] === minReplicas) atWeakest++;
    // Past REPLICAS, more replicas are not a goal of their own, so neither is raising many layers.
    const key: WindowKey = [Math.min(minReplicas, REPLICAS), minThroughput, minReplicas < REPLICAS ? -atWeakest : 0, total];
    if (!bestKey || lessThan(key, bestKey) || (!lessThan(bestKey, key) && start < best)) {
      bestKey = key;
      best = start;
    }
  }
  return best;
}

/** The window a node of `span` layers takes next to `assignments`: at a tiling boundary, where reachable coverage is weakest. */
function placeWindow(shape: ModelShape, nodes: NodeCapacity[], assignments: Assignment[], span: number): LayerRange {
  const reachable = routable(shape.nLayers, assignments);
  const start = bestStart(coverage(shape, nodes, reachable), span, tilingStarts(shape.nLayers, assignments));
  return { start, end: Math.min(start + span, shape.nLayers) };
}

/**
 * Places nodes one at a time, most capable first (largest span, then fastest), each where the
 * swarm is weakest at that moment. Nodes that cannot hold a single layer get no assignment.
 */
export function planPlacement(shape: ModelShape, nodes: NodeCapacity[], options: PlacementOptions = {}): Assignment[] {
  const span = (node: NodeCapacity) => spanOf(shape, node, options.maxLayersPerNode);
  const order = [...nodes].sort((a, b) => span(b) - span(a) || a.msPerLayer - b.msPerLayer || (a.id < b.id ? -1 : 1));
  const assignments: Assignment[] = [];
  for (const node of order) {
    const s = span(node);
    if (s < 1) continue;
    assignments.push({ nodeId: node.id, layers: placeWindow(shape, nodes, assignments, s) });
  }
  return assignments;
}

/** The weakest layer's throughput and replica count: what placement tries to raise. */
export function weakestLayer(cov: LayerCoverage): { replicas: number; throughput: number } {
  let replicas = Infinity;
  let throughput = Infinity;
  for (let l = 0; l < cov.replicas.length; l++) {
    replicas = Math.min(replicas, cov.replicas[l]);
    throughput = Math.min(throughput, cov.throughput[l]);
  }
  return { replicas, throughput };
}

/**
 * Whether moving a node from `before` to `after` is worth its download: the weakest layer gains a
 * replica, or a gap shrinks (while any layer has no reachable replica no request runs, and a
 * gap wider than one node closes only a node at a time), or its throughput grows by REBALANCE_GAIN.
 */
function improves(shape: ModelShape, nodes: NodeCapacity[], before: Assignment[], after: Assignment[]): 'replicas' | 'throughput' | null {
  const covBefore = coverage(shape, nodes, routable(shape.nLayers, before));
  const covAfter = coverage(shape, nodes, routable(shape.nLayers, after));
  const b = weakestLayer(covBefore);
  const a = weakestLayer(covAfter);
  if (a.replicas !== b.replicas) return a.replicas > b.replicas ? 'replicas' : null;
  const gaps = (cov: LayerCoverage) => cov.replicas.filter((r) => r === 0).length;
  if (a.replicas === 0 && gaps(covAfter) !== gaps(covBefore)) return gaps(covAfter) < gaps(covBefore) ? 'replicas' : null;
  return a.throughput > b.throughput * (1 + REBALANCE_GAIN) ? 'throughput' : null;
}

/** Whether every layer of `mine` is served by another serving node that keeps its range in `assignments`. */
function servedWithout(mine: Assignment, assignments: Assignment[], serving: ReadonlySet<string>, moved: string[]): boolean {
  const stay = assignments.filter((a) => a.nodeId !== mine.nodeId && serving.has(a.nodeId) && !moved.includes(a.nodeId));
  for (let l = mine.layers.start; l < mine.layers.end; l++) if (!stay.some((a) => a.layers.start <= l && l < a.layers.end)) return false;
  return true;
}

/**
 * After nodes join or leave: nodes that left lose their ranges, new nodes are placed where the
 * swarm is weakest, and then each existing node in turn moves if moving raises the swarm's
 * weakest layer (see `improves`) without stranding another node's range. A node must move when
 * its range is larger than it may now hold, or stranded (a node before it left), except a serving
 * node whose layers no other serving node keeps. A serving node moves only when others serve its
 * layers meanwhile (options.serving). Stable nodes otherwise keep their ranges, so their downloaded weights stay useful — unless that leaves no
 * route although the nodes' capacity covers the model: then a route beats the downloads, and
 * the grid is placed afresh.
 */
export function rebalance(
  shape: ModelShape,
  nodes: NodeCapacity[],
  current: Assignment[],
  options: RebalanceOptions = {},
): { assignments: Assignment[]; moved: string[] } {
  const n = shape.nLayers;
  const span = (node: NodeCapacity) => spanOf(shape, node, options.maxLayersPerNode);
  const live = new Set(nodes.map((node) => node.id));
  const kept = current.filter((a) => live.has(a.nodeId));
  let assignments = [...kept];
  const placed = new Set(assignments.map((a) => a.nodeId));
  const moved: string[] = [];
  for (const node of [...nodes].sort((a, b) => span(b) - span(a) || (a.id < b.id ? -1 : 1))) {
    if (placed.has(node.id)) continue;
    const s = span(node);
    if (s < 1) continue;
    assignments.push({ nodeId: node.id, layers: placeWindow(shape, nodes, assignments, s) });
  }
  for (const node of nodes) {
    const mine = assignments.find((a) => a.nodeId === node.id);
    const s = span(node);
    if (!mine || !placed.has(node.id) || s < 1) continue;
    const without = assignments.filter((a) => a !== mine);
    const layers = placeWindow(shape, nodes, without, s);
    const reachableBefore = new Set(routable(n, assignments));
    const candidate = [...without, { nodeId: node.id, layers }];
    const tooLarge = mine.layers.end - mine.layers.start > s;
    const stranded = !reachableBefore.has(mine);
    // A stranded node moves to close the gap before it, but a serving one only while others
    // serve its layers: the node that left may be back in a moment (a tab whose connection to
    // the server dropped joins again with its range), and moving the last replica of a range to
    // fill the gap only moves the gap.
    const forced = tooLarge || (stranded && !(options.serving?.has(node.id) && !servedWithout(mine, candidate, options.serving, moved)));
    if (!forced && sameRange(layers, mine.layers)) continue;
    if (!forced) {
      const reachableAfter = new Set(routable(n, candidate));
      const strands = [...reachableBefore].some((a) => a !== mine && !reachableAfter.has(a));
      const gain = strands ? null : improves(shape, nodes, assignments, candidate);
      if (!gain) continue;
      // A serving node drops the requests running through it when it moves: only for a replica.
      if (options.serving?.has(node.id) && (gain !== 'replicas' || !servedWithout(mine, candidate, options.serving, moved))) continue;
    }
    assignments = candidate;
    moved.push(node.id);
  }
  const capacity = nodes.reduce((sum, node) => sum + Math.max(0, span(node)), 0);
  if (!hasRoute(n, assignments) && capacity >= n) {
    const fresh = planPlacement(shape, nodes, options);
    const was = new Map(kept.map((a) => [a.nodeId, a.layers]));
    const now = new Map(fresh.map((a) => [a.nodeId, a.layers]));
    const changed = nodes.filter((node) => {
      const before = was.get(node.id);
      const after = now.get(node.id);
      return before && (!after || after.start !== before.start || after.end !== before.end);
    });
    return { assignments: fresh, moved: changed.map((node) => node.id) };
  }
  return { assignments, moved };
}
