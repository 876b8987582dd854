import { describe, expect, it } from 'vitest';
import { pieceKey, planRequests, WEB_SEED } from './piece-plan.ts';
import type { PlanInput } from './piece-plan.ts';

const p = (i: number) => pieceKey('block-0.data', i);
const base = (over: Partial<PlanInput>): PlanInput => ({
  needed: [],
  have: new Map(),
  inFlight: new Set(),
  load: new Map(),
  dropped: new Set(),
  maxPerPeer: 4,
  maxWebSeed: 2,
  ...over,
});

describe('piece plan', () => {
  it('asks for the rarest pieces first', () => {
    const have = new Map([
      ['a', new Set([p(0), p(1), p(2)])],
      ['b', new Set([p(0), p(1)])],
      ['c', new Set([p(0)])],
    ]);
    const plan = planRequests(base({ needed: [p(0), p(1), p(2)], have, maxPerPeer: 1 }));
    expect(plan.map((r) => r.piece)).toEqual([p(2), p(1), p(0)]);
    expect(plan).toEqual([
      { piece: p(2), source: 'a' },
      { piece: p(1), source: 'b' },
      { piece: p(0), source: 'c' },
    ]);
  });

  it('spreads requests over holders by their load, and respects the per-peer limit', () => {
    const all = new Set([0, 1, 2, 3, 4, 5].map(p));
    const have = new Map([['a', all], ['b', all]]);
    const plan = planRequests(base({ needed: [...all], have, maxPerPeer: 2, load: new Map([['a', 1]]) }));
    const count = (peer: string) => plan.filter((r) => r.source === peer).length;
    expect(count('a')).toBe(1);
    expect(count('b')).toBe(2);
    expect(plan).toHaveLength(3);
  });

  it('uses the web seed only for pieces no usable peer holds, within its own limit', () => {
    const have = new Map([['a', new Set([p(0)])]]);
    const plan = planRequests(base({ needed: [p(0), p(1), p(2), p(3)], have, maxWebSeed: 2 }));
    expect(plan.find((r) => r.piece === p(0))!.source).toBe('a');
    expect(plan.filter((r) => r.source === WEB_SEED).map((r) => r.piece)).toEqual([p(1), p(2)]);
  });

  it('never asks a dropped peer, falling back to the web seed when it was the only holder', () => {
    const have = new Map([['liar', new Set([p(0), p(1)])], ['honest', new Set([p(1)])]]);
    const plan = planRequests(base({ needed: [p(0), p(1)], have, dropped: new Set(['liar']) }));
    expect(plan).toEqual([
      { piece: p(1), source: 'honest' },
      { piece: p(0), source: WEB_SEED },
    ]);
  });

  it('does not request a piece twice while it is in flight', () => {
    const have = new Map([['a', new Set([p(0), p(1)])]]);
    const plan = planRequests(base({ needed: [p(0), p(1)], have, inFlight: new Set([p(0)]) }));
    expect(plan).toEqual([{ piece: p(1), source: 'a' }]);
  });
});
