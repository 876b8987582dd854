/**
 * Which contiguous layer range each node serves. Like Petals' block selection, every node takes
 * as many layers as its memory holds and places them where the swarm is weakest; "weakest"
 * here is lexicographic: first the fewest replicas (the goal is every layer served at least
 * REPLICAS times when the grid allows), then the least total throughput. Pure functions: the
 * coordinator calls them with measured capacities and acts on the result.
 */
import { throughputOf } from './types.ts';
import type { Assignment, ModelShape, NodeCapacity } from './types.ts';

/** Each layer on at least two nodes, so one node leaving never breaks a route. */
export const REPLICAS = 2;
/** A node moves only when that raises the weakest layer's throughput by this fraction (Petals uses 1.2x too). */
export const REBALANCE_GAIN = 0.2;

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

/** How many layers a node can hold. */
export function spanOf(shape: ModelShape, node: NodeCapacity): number {
  return Math.min(shape.nLayers, Math.floor(node.memoryBytes / shape.bytesPerLayer));
}

/**
 * The window of `span` layers a node should take: the one whose weakest layer is weakest
 * (fewest replicas, then least throughput); ties go to the window with the least total
 * throughput, then the lowest start, so the result is deterministic.
 */
export function bestStart(cov: LayerCoverage, span: number): number {
  const n = cov.replicas.length;
  let best = 0;
  let bestKey: [number, number, number] | null = null;
  for (let start = 0; start + span <= n; start++) {
    let minReplicas = Infinity;
    let minThroughput = Infinity;
    let total = 0;
    for (let l = start; l < start + span; l++) {
      if (cov.replicas[l] < minReplicas || (cov.replicas[l] === minReplicas && cov.throughput[l] < minThroughput)) {
        minReplicas = cov.replicas[l];
        minThroughput = cov.throughput[l];
      }
      total += cov.throughput[l];
    }
    const key: [number, number, number] = [Math.min(minReplicas, REPLICAS), minThroughput, total];
    if (!bestKey || key[0] < bestKey[0] || (key[0] === bestKey[0] && (key[1] < bestKey[1] || (key[1] === bestKey[1] && key[2] < bestKey[2])))) {
      bestKey = key;
      best = start;
    }
  }
  return best;
}

/**
 * Places nodes one at a time, most capable first (largest span, then fastest), each where the
 * swarm is weakest at that moment. Nodes that cannot hold a single layer get no assignment.
 */
export function planPlacement(shape: ModelShape, nodes: NodeCapacity[]): Assignment[] {
  const order = [...nodes].sort((a, b) => spanOf(shape, b) - spanOf(shape, a) || a.msPerLayer - b.msPerLayer || (a.id < b.id ? -1 : 1));
  const assignments: Assignment[] = [];
  for (const node of order) {
    const span = spanOf(shape, node);
    if (span < 1) continue;
    const start = bestStart(coverage(shape, nodes, assignments), span);
    assignments.push({ nodeId: node.id, layers: { start, end: start + span } });
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
 * After nodes join or leave: nodes that left lose their ranges, new nodes are placed where the
 * swarm is weakest, and then each existing node in turn moves if moving raises the swarm's
 * weakest layer (a gap closed, a replica added, or REBALANCE_GAIN more throughput). Stable
 * nodes otherwise keep their ranges, so their downloaded weights stay useful.
 */
export function rebalance(shape: ModelShape, nodes: NodeCapacity[], current: Assignment[]): { assignments: Assignment[]; moved: string[] } {
  const live = new Set(nodes.map((n) => n.id));
  let assignments = current.filter((a) => live.has(a.nodeId));
  const placed = new Set(assignments.map((a) => a.nodeId));
  const moved: string[] = [];
  for (const node of [...nodes].sort((a, b) => spanOf(shape, b) - spanOf(shape, a) || (a.id < b.id ? -1 : 1))) {
    if (placed.has(node.id)) continue;
    const span = spanOf(shape, node);
    if (span < 1) continue;
    const start = bestStart(coverage(shape, nodes, assignments), span);
    assignments.push({ nodeId: node.id, layers: { start, end: start + span } });
  }
  for (const node of nodes) {
    const mine = assignments.find((a) => a.nodeId === node.id);
    if (!mine || !placed.has(node.id)) continue;
    const without = assignments.filter((a) => a !== mine);
    const span = mine.layers.end - mine.layers.start;
    const start = bestStart(coverage(shape, nodes, without), span);
    if (start === mine.layers.start) continue;
    const before = weakestLayer(coverage(shape, nodes, assignments));
    const candidate = [...without, { nodeId: node.id, layers: { start, end: start + span } }];
    const after = weakestLayer(coverage(shape, nodes, candidate));
    const better = after.replicas > before.replicas || (after.replicas === before.replicas && after.throughput > before.throughput * (1 + REBALANCE_GAIN));
    if (better) {
      assignments = candidate;
      moved.push(node.id);
    }
  }
  return { assignments, moved };
}
