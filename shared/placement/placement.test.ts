import { describe, expect, it } from 'vitest';
import { coverage, planPlacement, rebalance, REPLICAS, spanOf, weakestLayer } from './placement.ts';
import type { NodeCapacity } from './types.ts';

const MiB = 1 << 20;
const shape = { nLayers: 12, bytesPerLayer: 100 * MiB };
const node = (id: string, layers: number, msPerLayer = 1): NodeCapacity => ({ id, memoryBytes: layers * 100 * MiB + 5 * MiB, msPerLayer });

describe('placement', () => {
  it('sizes a node by its memory: as many whole layers as fit, at most the model', () => {
    expect(spanOf(shape, node('a', 5))).toBe(5);
    expect(spanOf(shape, node('a', 40))).toBe(12);
    expect(spanOf(shape, { id: 'x', memoryBytes: 50 * MiB, msPerLayer: 1 })).toBe(0);
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
