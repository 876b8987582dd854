import { describe, expect, it } from 'vitest';
import { bestRoute } from './route.ts';
import type { RouteStage } from './route.ts';

const rttTable = (table: Record<string, number>, fallback = 5) => (a: string, b: string) => (a === b ? 0 : (table[`${a}-${b}`] ?? table[`${b}-${a}`] ?? fallback));

describe('routing', () => {
  it('picks the chain with the lowest predicted latency, not the first to join', () => {
    const stages: RouteStage[] = [
      { peerId: 'early-slow', layers: { start: 0, end: 6 }, msPerLayer: 10 },
      { peerId: 'late-fast', layers: { start: 0, end: 6 }, msPerLayer: 1 },
      { peerId: 'tail', layers: { start: 6, end: 12 }, msPerLayer: 1 },
    ];
    const route = bestRoute(12, stages, rttTable({}), 'client')!;
    expect(route.hops.map((h) => h.peerId)).toEqual(['late-fast', 'tail']);
    expect(route.predictedMs).toBe(5 + 6 + 5 + 6 + 5);
  });

  it('weighs round trips against compute: a far fast peer loses to a near slower one when the link costs more', () => {
    const stages: RouteStage[] = [
      { peerId: 'near', layers: { start: 0, end: 4 }, msPerLayer: 2 },
      { peerId: 'far', layers: { start: 0, end: 4 }, msPerLayer: 1 },
    ];
    const rtt = rttTable({ 'client-near': 2, 'client-far': 50 });
    expect(bestRoute(4, stages, rtt, 'client')!.hops.map((h) => h.peerId)).toEqual(['near']);
  });

  it('uses more, shorter hops when they are faster in total, and stages must tile the model', () => {
    const stages: RouteStage[] = [
      { peerId: 'whole', layers: { start: 0, end: 8 }, msPerLayer: 5 },
      { peerId: 'front', layers: { start: 0, end: 4 }, msPerLayer: 1 },
      { peerId: 'back', layers: { start: 4, end: 8 }, msPerLayer: 1 },
      { peerId: 'overlap', layers: { start: 2, end: 8 }, msPerLayer: 0.1 },
    ];
    const route = bestRoute(8, stages, rttTable({}, 3), 'client')!;
    expect(route.hops.map((h) => h.peerId)).toEqual(['front', 'back']);
    expect(route.predictedMs).toBe(3 + 4 + 3 + 4 + 3);
  });

  it('returns null when no chain covers the model or a needed peer is unreachable', () => {
    const gap: RouteStage[] = [{ peerId: 'a', layers: { start: 0, end: 3 }, msPerLayer: 1 }];
    expect(bestRoute(6, gap, rttTable({}), 'client')).toBeNull();
    const cut: RouteStage[] = [...gap, { peerId: 'b', layers: { start: 3, end: 6 }, msPerLayer: 1 }];
    expect(bestRoute(6, cut, rttTable({ 'a-b': Infinity }), 'client')).toBeNull();
  });
});
