import { describe, expect, it } from 'vitest';
import { deviceRows, failureRows, histogram, median, QUIET_AFTER_MS, scatter, tabRows, tabStateText } from './summary.ts';
import type { DashboardReport, DashboardRun } from './summary.ts';

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

  it('lists each tab, stragglers first: quiet ones, then those that left before finishing', () => {
    const report = (peerId: string, event: string, receivedAt: number, planned = 0): DashboardReport => ({ peerId, adapter: 'a', tabProvider: 'wasm', event, provider: '', workload: '', planned, reason: '', receivedAt });
    const now = 1_000_000;
    const runs = [{ ...run('a', 'wasm', 10, 1, null, 'quiet'), receivedAt: now - QUIET_AFTER_MS - 1 }, { ...run('a', 'wasm', 10, 1, null, 'busy'), receivedAt: now - 1000 }, { ...run('a', 'wasm', 10, 1, null, 'stranger'), receivedAt: now }];
    const reports = [report('done', 'joined', 0, 2), report('done', 'finished', 10), report('gone', 'joined', 0, 4), report('gone', 'left', now - 2 * QUIET_AFTER_MS), report('quiet', 'joined', 0, 4), report('busy', 'joined', 0, 4)];
    const rows = tabRows(runs, reports, now);
    expect(rows.map((t) => [t.peerId, t.state, t.runs, t.planned])).toEqual([
      ['quiet', 'quiet', 1, 4],
      ['gone', 'left', 0, 4],
      ['busy', 'running', 1, 4],
      ['stranger', 'running', 1, null],
      ['done', 'finished', 0, 2],
    ]);
    expect(tabStateText(rows[0], now)).toBe('straggler: quiet for 60 s');
    expect(tabStateText(rows[1], now)).toBe('left after 0 of 4 runs');
  });

  it('says what each skip or failure concerns, and leaves out the other reports', () => {
    const base = { peerId: 'p', adapter: 'a', tabProvider: 'wasm', planned: 0, reason: 'why', receivedAt: 0 };
    const rows = failureRows([
      { ...base, event: 'joined', provider: '', workload: '' },
      { ...base, event: 'skipped', provider: 'webgpu', workload: '' },
      { ...base, event: 'skipped', provider: 'wasm', workload: 'decode-16' },
      { ...base, event: 'skipped', provider: '', workload: '' },
      { ...base, event: 'failed', provider: 'wasm', workload: 'prefill-8' },
    ]);
    expect(rows.map((f) => `${f.event} ${f.what}`)).toEqual(['skipped webgpu', 'skipped decode-16 on wasm', 'skipped every workload', 'failed prefill-8 on wasm']);
  });

  it('plots a run against its device GFLOP/s only when the grid measured it', () => {
    expect(scatter([{ ...run('a', 'wasm', 10, 1), deviceGflops: 40 }, { ...run('b', 'webgpu', 30, 1), deviceGflops: null }, run('c', 'wasm', 5, 1)])).toEqual({ wasm: [[40, 10]] });
  });
});
