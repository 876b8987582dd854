import { describe, expect, it } from 'vitest';
import { coverage, hasRoute, planPlacement, rebalance, REPLICAS, spanOf, tilingStarts, weakestLayer } from './placement.ts';
import { bestRoute } from './route.ts';
import type { Assignment, ModelShape, NodeCapacity } from './types.ts';
import { seededUniform } from '../../testkit/seeded-steps.ts';

const MiB = 1 << 20;
const shape = { nLayers: 12, bytesPerLayer: 100 * MiB };
const node = (id: string, layers: number, msPerLayer = 1): NodeCapacity => ({ id, memoryBytes: layers * 100 * MiB + 5 * MiB, msPerLayer });

describe('placement', () => {
  it('sizes a node by its memory: as many whole layers as fit, at most the model', () => {
    expect(spanOf(shape, node('a', 5))).toBe(5);
    expect(spanOf(shape, node('a', 40))).toBe(12);
    expect(spanOf(shape, { id: 'x', memoryBytes: 50 * MiB, msPerLayer: 1 })).toBe(0);
  });

  it('caps a node at maxLayersPerNode, and rejects a cap that is not a whole number of at least 1', () => {
    expect(spanOf(shape, node('a', 5), 3)).toBe(3);
    expect(spanOf(shape, node('a', 2), 3)).toBe(2);
    expect(() => spanOf(shape, node('a', 5), 0)).toThrow(expect.objectContaining({ name: 'UsageError' }));
    expect(() => spanOf(shape, node('a', 5), 2.5)).toThrow(expect.objectContaining({ name: 'UsageError' }));
  });

  it('gives no node more than maxLayersPerNode layers, and the capped nodes still tile the model', () => {
    const nodes = ['a', 'b', 'c', 'd'].map((id) => node(id, 12));
    const plan = planPlacement(shape, nodes, { maxLayersPerNode: 3 });
    expect(plan.map((a) => a.layers)).toEqual([
      { start: 0, end: 3 },
      { start: 3, end: 6 },
      { start: 6, end: 9 },
      { start: 9, end: 12 },
    ]);
    const { assignments } = rebalance(shape, [...nodes, node('e', 12)], plan, { maxLayersPerNode: 3 });
    for (const a of assignments) expect(a.layers.end - a.layers.start).toBeLessThanOrEqual(3);
  });

  it('moves a node off a range larger than a lowered cap allows, and the smaller ranges still tile the model', () => {
    const nodes = [node('a', 12), node('b', 12)];
    const plan = planPlacement(shape, nodes);
    expect(plan.map((a) => a.layers)).toEqual([{ start: 0, end: 12 }, { start: 0, end: 12 }]);
    const { assignments, moved } = rebalance(shape, nodes, plan, { maxLayersPerNode: 6 });
    expect(moved).toEqual(['a', 'b']);
    expect(assignments.map((a) => [a.nodeId, a.layers.start, a.layers.end])).toEqual([['a', 0, 6], ['b', 6, 12]]);
  });

  it('covers every layer at least twice when the grid has room, and every node holds a contiguous range', () => {
    const nodes = ['a', 'b', 'c', 'd', 'e', 'f'].map((id) => node(id, 4));
    const plan = planPlacement(shape, nodes);
    expect(plan).toHaveLength(6);
    for (const a of plan) expect(a.layers.end - a.layers.start).toBe(4);
    expect(Math.min(...coverage(shape, nodes, plan).replicas)).toBe(REPLICAS);
  });

  it('covers every layer once before doubling any: three nodes of four layers tile the model', () => {
    const nodes = ['a', 'b', 'c'].map((id) => node(id, 4));
    const plan = planPlacement(shape, nodes);
    expect(coverage(shape, nodes, plan).replicas).toEqual(new Array(12).fill(1));
  });

  it('balances throughput: a newcomer doubles the layers the slow node serves, not the fast node\'s', () => {
    const current = [
      { nodeId: 'slow', layers: { start: 0, end: 6 } },
      { nodeId: 'fast', layers: { start: 6, end: 12 } },
    ];
    const nodes = [node('slow', 6, 10), node('fast', 6, 1), node('new', 6, 1)];
    const { assignments } = rebalance(shape, nodes, current);
    expect(assignments.find((a) => a.nodeId === 'new')!.layers).toEqual({ start: 0, end: 6 });
  });

  it('skips nodes that cannot hold a layer', () => {
    const plan = planPlacement(shape, [node('a', 12), { id: 'tiny', memoryBytes: MiB, msPerLayer: 1 }]);
    expect(plan.map((a) => a.nodeId)).toEqual(['a']);
  });

  it('rebalances when a node leaves: the gap is closed by a node moving, and nodes that need not move stay', () => {
    const nodes = ['a', 'b', 'c', 'd', 'e', 'f'].map((id) => node(id, 4));
    const plan = planPlacement(shape, nodes);
    const gone = plan[0].nodeId;
    const remaining = nodes.filter((n) => n.id !== gone);
    const before = weakestLayer(coverage(shape, remaining, plan.filter((a) => a.nodeId !== gone)));
    const { assignments, moved } = rebalance(shape, remaining, plan);
    const after = weakestLayer(coverage(shape, remaining, assignments));
    expect(before.replicas).toBe(1);
    expect(after.replicas).toBe(1); // five nodes of four layers: 20 slots cannot double 12 layers
    expect(assignments.map((a) => a.nodeId)).not.toContain(gone);
    expect(moved.length).toBeLessThanOrEqual(1);
  });

  it('rebalances when a node joins: the newcomer takes the weakest layers and nobody else moves', () => {
    const nodes = ['a', 'b', 'c'].map((id) => node(id, 4));
    const plan = planPlacement(shape, nodes);
    const joined = [...nodes, node('d', 4)];
    const { assignments, moved } = rebalance(shape, joined, plan);
    expect(moved).toEqual([]);
    for (const a of plan) expect(assignments.find((x) => x.nodeId === a.nodeId)!.layers).toEqual(a.layers);
    expect(assignments.find((a) => a.nodeId === 'd')!.layers).toEqual({ start: 0, end: 4 });
  });

  it('moves one node to close a gap left behind, when moving restores full coverage', () => {
    // a holds 0..6, b holds 6..12 and c duplicates a; if b leaves, a or c must move to 6..12.
    const nodes = [node('a', 6), node('c', 6)];
    const current = [
      { nodeId: 'a', layers: { start: 0, end: 6 } },
      { nodeId: 'b', layers: { start: 6, end: 12 } },
      { nodeId: 'c', layers: { start: 0, end: 6 } },
    ];
    const { assignments, moved } = rebalance(shape, nodes, current);
    expect(moved).toHaveLength(1);
    expect(assignments.find((a) => a.nodeId === moved[0])!.layers).toEqual({ start: 6, end: 12 });
    expect(coverage(shape, nodes, assignments).replicas).toEqual(new Array(12).fill(1));
  });
});

/** A stage per assignment, as the coordinator hands them to bestRoute. */
const stagesOf = (nodes: NodeCapacity[], plan: Assignment[]) =>
  plan.map((a) => ({ peerId: a.nodeId, layers: a.layers, msPerLayer: nodes.find((n) => n.id === a.nodeId)!.msPerLayer }));

/** Seeded draws, so a failing case can be replayed from its seed: uniform in [0, 1), and whole numbers from lo to hi. */
function seeded(seed: number) {
  const next = seededUniform(seed);
  return { next, int: (lo: number, hi: number) => lo + Math.floor(next() * (hi - lo + 1)) };
}

/** Any finite RTTs: symmetric, drawn once per pair. */
function randomRtt(rng: ReturnType<typeof seeded>) {
  const table = new Map<string, number>();
  return (a: string, b: string) => {
    if (a === b) return 0;
    const k = a < b ? `${a}|${b}` : `${b}|${a}`;
    if (!table.has(k)) table.set(k, rng.next() * 200);
    return table.get(k)!;
  };
}

describe('placement leaves a route: windows start only at tiling boundaries', () => {
  const five: ModelShape = { nLayers: 5, bytesPerLayer: 100 * MiB };
  const pairs = (count: number) => Array.from({ length: count }, (_, i) => node(`n${i}`, 2));

  it('four nodes of two layers on five layers: 0-2, 2-4, 4-5 (clipped), then 0-2 again; a route runs 0-2, 2-4, 4-5', () => {
    const nodes = pairs(4);
    const plan = planPlacement(five, nodes);
    expect(plan.map((a) => [a.layers.start, a.layers.end])).toEqual([[0, 2], [2, 4], [4, 5], [0, 2]]);
    expect(coverage(five, nodes, plan).replicas).toEqual([2, 2, 1, 1, 1]);
    const route = bestRoute(5, stagesOf(nodes, plan), () => 5, 'client')!;
    expect(route.hops.map((h) => [h.layers.start, h.layers.end])).toEqual([[0, 2], [2, 4], [4, 5]]);
  });

  it('eight nodes of two layers on five layers: every layer on at least two nodes, and a route exists', () => {
    const nodes = pairs(8);
    const plan = planPlacement(five, nodes);
    expect(coverage(five, nodes, plan).replicas).toEqual([3, 3, 2, 2, 3]);
    expect(bestRoute(5, stagesOf(nodes, plan), () => 5, 'client')).not.toBeNull();
  });

  it('starts a window only at 0 or where a reachable range ends, and clips it at the model\'s end', () => {
    const current: Assignment[] = [
      { nodeId: 'a', layers: { start: 0, end: 2 } },
      { nodeId: 'b', layers: { start: 2, end: 4 } },
      { nodeId: 'stranded', layers: { start: 3, end: 5 } },
    ];
    expect(tilingStarts(5, current)).toEqual([0, 2, 4]);
    const plan = planPlacement(five, pairs(3));
    expect(plan[2].layers).toEqual({ start: 4, end: 5 });
  });

  it('moves a node whose range a departure stranded, so the route is whole again', () => {
    // b (2..4) leaves: c's range 4..5 now starts where no reachable range ends, and c can hold three layers.
    const nodes = [node('a', 2), node('c', 3)];
    const current: Assignment[] = [
      { nodeId: 'a', layers: { start: 0, end: 2 } },
      { nodeId: 'b', layers: { start: 2, end: 4 } },
      { nodeId: 'c', layers: { start: 4, end: 5 } },
    ];
    const { assignments, moved } = rebalance(five, nodes, current);
    expect(moved).toEqual(['c']);
    expect(assignments.map((a) => [a.nodeId, a.layers.start, a.layers.end])).toEqual([['a', 0, 2], ['c', 2, 5]]);
    expect(bestRoute(5, stagesOf(nodes, assignments), () => 5, 'client')!.hops.map((h) => h.peerId)).toEqual(['a', 'c']);
  });

  it('moves a serving node for a replica only, never for throughput alone: a move ends the requests running through it', () => {
    // n0 (2..4) left. For throughput alone, n2 would move from 4..5 to 2..4 and n3 from 2..4 to 4..5.
    const nodes = [node('n1', 2, 0.55), node('n2', 2, 2.74), node('n3', 2, 7.84), node('n4', 2, 6.38), node('n5', 2, 9.14)];
    const current: Assignment[] = [
      { nodeId: 'n1', layers: { start: 0, end: 2 } },
      { nodeId: 'n2', layers: { start: 4, end: 5 } },
      { nodeId: 'n4', layers: { start: 4, end: 5 } },
      { nodeId: 'n3', layers: { start: 2, end: 4 } },
      { nodeId: 'n5', layers: { start: 0, end: 2 } },
    ];
    expect(rebalance(five, nodes, current).moved).toEqual(['n2', 'n3']);
    expect(rebalance(five, nodes, current, { serving: new Set(nodes.map((n) => n.id)) }).moved).toEqual([]);
  });

  it('moves a serving node only while others serve its layers: the last replica waits for its successor to load', () => {
    // 4..5 has one replica and 2..4 three, but only n3 has loaded 2..4 (n8 and n9 are still downloading).
    const nodes = ['n3', 'n8', 'n9', 'n1', 'n2', 'n4'].map((id) => node(id, 2));
    const current: Assignment[] = [
      { nodeId: 'n3', layers: { start: 2, end: 4 } },
      { nodeId: 'n8', layers: { start: 2, end: 4 } },
      { nodeId: 'n9', layers: { start: 2, end: 4 } },
      { nodeId: 'n1', layers: { start: 0, end: 2 } },
      { nodeId: 'n2', layers: { start: 0, end: 2 } },
      { nodeId: 'n4', layers: { start: 4, end: 5 } },
    ];
    // Counting assignments only, n3 would go to 4..5 and layers 2..3 would go dark until n8 loads.
    expect(rebalance(five, nodes, current).moved).toEqual(['n3']);
    const { assignments, moved } = rebalance(five, nodes, current, { serving: new Set(['n3', 'n1', 'n2', 'n4']) });
    expect(moved).toEqual(['n8']);
    expect(assignments.find((a) => a.nodeId === 'n8')!.layers).toEqual({ start: 4, end: 5 });
  });

  it('closes the gap a serving node left with a spare replica, never with the last one of another range', () => {
    // x (0..2) left: w, the only node serving 2..4, and y and z, both serving 4..5, are stranded.
    // Moving w to 0..2 would only move the gap to 2..4 (and x may be back at once, its range in hand).
    const nodes = ['w', 'y', 'z'].map((id) => node(id, 2));
    const current: Assignment[] = [
      { nodeId: 'w', layers: { start: 2, end: 4 } },
      { nodeId: 'y', layers: { start: 4, end: 5 } },
      { nodeId: 'z', layers: { start: 4, end: 5 } },
    ];
    const serving = new Set(['w', 'y', 'z']);
    const { assignments, moved } = rebalance(five, nodes, current, { serving });
    expect(moved).toEqual(['y']);
    expect(assignments.map((a) => [a.nodeId, a.layers.start, a.layers.end])).toEqual([['w', 2, 4], ['z', 4, 5], ['y', 0, 2]]);
    // With no spare replica anywhere, the serving nodes keep their ranges and the gap waits for a node.
    const sole = rebalance(five, nodes.slice(0, 2), current.slice(0, 2), { serving });
    expect(sole.moved).toEqual([]);
    // Not serving yet (still downloading), w moves as before (nothing goes dark), and y, a spare, fills 2..4.
    expect(rebalance(five, nodes, current, { serving: new Set(['y', 'z']) }).assignments.map((a) => [a.nodeId, a.layers.start])).toEqual([['z', 4], ['w', 0], ['y', 2]]);
  });

  it('closes a gap wider than any one node a node at a time, and a route exists again', () => {
    // 2..6 lost its nodes; two of the three spare replicas of 0..2 move into it, two layers each.
    const six: ModelShape = { nLayers: 6, bytesPerLayer: 100 * MiB };
    const nodes = ['a', 'b', 'c'].map((id) => node(id, 2));
    const current: Assignment[] = nodes.map((n) => ({ nodeId: n.id, layers: { start: 0, end: 2 } }));
    const { assignments, moved } = rebalance(six, nodes, current);
    expect(moved).toEqual(['a', 'b']);
    expect(assignments.map((a) => [a.nodeId, a.layers.start, a.layers.end])).toEqual([['c', 0, 2], ['a', 2, 4], ['b', 4, 6]]);
  });

  it('places the grid afresh when no move that strands nobody restores a route, though capacity covers the model', () => {
    // Old non-tiling ranges: only 0-1, 1-3, 3-5 or 0-2, 2-4, 4-5 tile five layers with these nodes.
    const nodes = [node('n0', 1, 2), node('n1', 2, 2), node('n2', 2, 3)];
    const current: Assignment[] = [
      { nodeId: 'n0', layers: { start: 0, end: 1 } },
      { nodeId: 'n1', layers: { start: 1, end: 3 } },
      { nodeId: 'n2', layers: { start: 0, end: 2 } },
    ];
    const { assignments, moved } = rebalance(five, nodes, current);
    expect(assignments).toEqual(planPlacement(five, nodes));
    expect(assignments.map((a) => [a.nodeId, a.layers.start, a.layers.end])).toEqual([['n1', 0, 2], ['n2', 2, 4], ['n0', 4, 5]]);
    expect(moved).toEqual(['n0', 'n1', 'n2']);
  });

  it('property: whenever the nodes\' capacity covers the model, bestRoute finds a route with any finite RTTs (200 seeded cases)', () => {
    for (let seed = 1; seed <= 200; seed++) {
      const rng = seeded(seed);
      const model: ModelShape = { nLayers: rng.int(1, 24), bytesPerLayer: 100 * MiB };
      const nodes = Array.from({ length: rng.int(1, 12) }, (_, i) => node(`n${i}`, rng.int(0, model.nLayers + 2), 0.5 + rng.next() * 20));
      const options = rng.next() < 0.3 ? { maxLayersPerNode: rng.int(1, model.nLayers) } : {};
      const capacity = nodes.reduce((sum, n) => sum + spanOf(model, n, options.maxLayersPerNode), 0);
      const plan = planPlacement(model, nodes, options);
      const context = `seed ${seed}: ${model.nLayers} layers, spans ${nodes.map((n) => spanOf(model, n, options.maxLayersPerNode))}`;
      for (const a of plan) expect(tilingStarts(model.nLayers, plan.filter((b) => b !== a)), context).toContain(a.layers.start);
      if (capacity < model.nLayers) continue;
      expect(bestRoute(model.nLayers, stagesOf(nodes, plan), randomRtt(rng), 'client'), context).not.toBeNull();
    }
  });

  it('property: after random departures and arrivals, from any ranges, rebalance leaves a route whenever capacity covers the model (200 seeded cases)', () => {
    for (let seed = 1001; seed <= 1200; seed++) {
      const rng = seeded(seed);
      const model: ModelShape = { nLayers: rng.int(1, 24), bytesPerLayer: 100 * MiB };
      const before = Array.from({ length: rng.int(1, 12) }, (_, i) => node(`n${i}`, rng.int(0, model.nLayers + 2), 0.5 + rng.next() * 20));
      // Half the cases start from a plan, half from arbitrary windows such as the old, non-tiling placement left.
      const plan = rng.next() < 0.5 ? planPlacement(model, before) : before.filter((n) => spanOf(model, n) >= 1).map((n) => {
        const start = rng.int(0, model.nLayers - spanOf(model, n));
        return { nodeId: n.id, layers: { start, end: start + spanOf(model, n) } };
      });
      const stayed = before.filter(() => rng.next() < 0.6);
      const arrived = Array.from({ length: rng.int(0, 4) }, (_, i) => node(`new${i}`, rng.int(0, model.nLayers + 2), 0.5 + rng.next() * 20));
      const nodes = [...stayed, ...arrived];
      const { assignments } = rebalance(model, nodes, plan);
      const context = `seed ${seed}: ${model.nLayers} layers, stayed ${stayed.map((n) => n.id)}, arrived spans ${arrived.map((n) => spanOf(model, n))}`;
      expect(assignments.every((a) => nodes.some((n) => n.id === a.nodeId)), context).toBe(true);
      const capacity = nodes.reduce((sum, n) => sum + spanOf(model, n), 0);
      if (capacity < model.nLayers) continue;
      expect(bestRoute(model.nLayers, stagesOf(nodes, assignments), randomRtt(rng), 'client'), context).not.toBeNull();
    }
  });
});
