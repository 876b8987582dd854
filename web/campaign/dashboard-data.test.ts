import { describe, expect, it } from 'vitest';
import { deviceRows, histogram, median } from './dashboard-data.ts';
import type { DashboardRun } from './dashboard-data.ts';

const run = (deviceSignature: string, provider: string, tokensPerSecond: number, msPerLayer: number, correct: boolean | null = null, peerId = 'p1'): DashboardRun => ({
  peerId,
  deviceSignature,
  provider,
  adapter: `${deviceSignature} adapter`,
  workload: 'w',
  tokensPerSecond,
  msPerLayer,
  correct,
  receivedAt: 0,
});

describe('the campaign dashboard data', () => {
  it('groups runs by device and provider, slowest first, with medians and correctness', () => {
    const rows = deviceRows([run('a', 'wasm', 10, 2, true), run('a', 'wasm', 30, 4, false, 'p2'), run('b', 'webgpu', 100, 0.5), run('a', 'webgpu', 50, 1)]);
    expect(rows.map((r) => [r.deviceSignature, r.provider, r.runs, r.tabs, r.medianTokensPerSecond, r.medianMsPerLayer, r.correct, r.wrong, r.unchecked])).toEqual([
      ['a', 'wasm', 2, 2, 20, 3, 1, 1, 0],
      ['a', 'webgpu', 1, 1, 50, 1, 0, 0, 1],
      ['b', 'webgpu', 1, 1, 100, 0.5, 0, 0, 1],
    ]);
  });

  it('bins a figure per provider from 0 to the largest value, the largest in the last bin', () => {
    const h = histogram([run('a', 'wasm', 0, 1), run('a', 'wasm', 5, 1), run('b', 'webgpu', 10, 1)], (r) => r.tokensPerSecond, 2);
    expect(h.edges).toEqual([0, 5, 10]);
    expect(h.counts).toEqual({ wasm: [1, 1], webgpu: [0, 1] });
    expect(median([])).toBeNaN();
  });
});
