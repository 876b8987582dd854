import { describe, expect, it } from 'vitest';
import { median, timeToTarget } from './timing.ts';
import { rejection } from '../../testkit/rejection.ts';

describe('timeToTarget', () => {
  it('sizes the reported window to about a fifth of the target, whatever the speed', async () => {
    for (const msPerRep of [0.001, 0.5, 30]) {
      const calls: number[] = [];
      const timed = await timeToTarget(async (reps) => (calls.push(reps), reps * msPerRep), { targetMs: 200, maxReps: 1e6, source: 'test' });
      expect(timed.ms / timed.reps).toBeCloseTo(msPerRep);
      if (msPerRep < 30) expect(timed.ms).toBeGreaterThan(30);
      expect(timed.ms).toBeLessThan(80);
      expect(calls.reduce((s, r) => s + r * msPerRep, 0)).toBeLessThan(400);
    }
  });

  it('reports the median window, so one slow window does not count', async () => {
    let call = 0;
    const timed = await timeToTarget(async (reps) => (++call === 4 ? 1000 : reps * 2), { targetMs: 100, maxReps: 1000, source: 'test' });
    expect(timed.ms / timed.reps).toBe(2);
  });

  it('never exceeds maxReps', async () => {
    const timed = await timeToTarget(async (reps) => reps * 1e-6 + 0.01, { targetMs: 200, maxReps: 64, source: 'test' });
    expect(timed.reps).toBeLessThanOrEqual(64);
  });

  it('fails by name when the clock does not advance', async () => {
    const err = await rejection(timeToTarget(async () => 0, { targetMs: 10, maxReps: 8, source: 'stuck clock' }));
    expect(err.name).toBe('DeviceProbeError');
    expect(err.message).toMatch(/^stuck clock: the clock did not advance/);
  });
});

describe('median', () => {
  it('is the middle value, or the mean of the two middle values', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
  });
});
