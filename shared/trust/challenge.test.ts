import { describe, expect, it } from 'vitest';
import { drawChallenges, SAMPLING_DECAY_STEPS, SAMPLING_RATE_FLOOR, SAMPLING_RATE_NEW, samplingRate } from './challenge.ts';

const seed = (n: number) => Uint8Array.from({ length: 32 }, (_, i) => (i * 31 + n * 101) & 0xff);

describe('drawChallenges', () => {
  it('draws the same steps from the same seed', async () => {
    expect(await drawChallenges(seed(1), 100, 0.1)).toEqual(await drawChallenges(seed(1), 100, 0.1));
  });

  it('draws different steps from a different seed', async () => {
    expect(await drawChallenges(seed(2), 100, 0.1)).not.toEqual(await drawChallenges(seed(1), 100, 0.1));
  });

  it('returns ceil(rate × steps) distinct steps in order, within range', async () => {
    const drawn = await drawChallenges(seed(3), 97, 0.2);
    expect(drawn).toHaveLength(20);
    expect(new Set(drawn).size).toBe(20);
    expect(drawn).toEqual([...drawn].sort((a, b) => a - b));
    expect(drawn.every((s) => Number.isInteger(s) && s >= 0 && s < 97)).toBe(true);
  });

  it('draws at least one step at any positive rate, every step at rate 1, none at rate 0', async () => {
    expect(await drawChallenges(seed(4), 1000, 1e-9)).toHaveLength(1);
    expect(await drawChallenges(seed(4), 5, 1)).toEqual([0, 1, 2, 3, 4]);
    expect(await drawChallenges(seed(4), 5, 3)).toEqual([0, 1, 2, 3, 4]);
    expect(await drawChallenges(seed(4), 5, 0)).toEqual([]);
    expect(await drawChallenges(seed(4), 0, 0.5)).toEqual([]);
  });

  it('refuses a seed shorter than 32 bytes or a negative rate', async () => {
    await expect(drawChallenges(new Uint8Array(16), 10, 0.5)).rejects.toMatchObject({ name: 'UsageError' });
    await expect(drawChallenges(seed(5), 10, -1)).rejects.toMatchObject({ name: 'UsageError' });
  });

  it('picks every step about equally often over many seeds', async () => {
    const steps = 20;
    const counts = new Array(steps).fill(0);
    const draws = 2000;
    for (let d = 0; d < draws; d++) {
      const s = new Uint8Array(32);
      new DataView(s.buffer).setUint32(0, d);
      for (const step of await drawChallenges(s, steps, 0.1)) counts[step]++;
    }
    // 2 of 20 a draw: 200 expected per step, binomial sd ≈ 13.4; ±4.5 sd.
    for (const c of counts) expect(Math.abs(c - 200)).toBeLessThan(60);
    const chi2 = counts.reduce((sum, c) => sum + (c - 200) ** 2 / 200, 0);
    expect(chi2).toBeLessThan(43.8); // chi-square, 19 degrees of freedom, p = 0.001
  });
});

describe('samplingRate', () => {
  it('checks a new peer at the high rate', () => {
    expect(samplingRate({ verifiedSteps: 0, failedChecks: 0 })).toBeCloseTo(SAMPLING_RATE_NEW);
  });

  it('decays towards the floor as verified work accumulates, never below it', () => {
    const rates = [0, 1000, 5000, 20_000, 1e7].map((v) => samplingRate({ verifiedSteps: v, failedChecks: 0 }));
    for (let i = 1; i < rates.length; i++) expect(rates[i]).toBeLessThan(rates[i - 1]);
    expect(rates.at(-1)).toBeCloseTo(SAMPLING_RATE_FLOOR, 6);
    expect(Math.min(...rates)).toBeGreaterThanOrEqual(SAMPLING_RATE_FLOOR);
  });

  it('goes back to the high rate after a failed check, and earns trust back more slowly', () => {
    expect(samplingRate({ verifiedSteps: 50_000, failedChecks: 1, verifiedSinceFailure: 0 })).toBeCloseTo(SAMPLING_RATE_NEW);
    expect(samplingRate({ verifiedSteps: 50_000, failedChecks: 1 })).toBeCloseTo(SAMPLING_RATE_NEW);
    const after = samplingRate({ verifiedSteps: 52_000, failedChecks: 1, verifiedSinceFailure: 2000 });
    expect(after).toBeGreaterThan(samplingRate({ verifiedSteps: 2000, failedChecks: 0 }));
  });

  it('checks every step of a look-alike of a banned device until it has earned trust, then decays slowly', () => {
    expect(samplingRate({ verifiedSteps: 0, failedChecks: 0, resemblesBanned: true })).toBe(1);
    expect(samplingRate({ verifiedSteps: SAMPLING_DECAY_STEPS - 1, failedChecks: 0, resemblesBanned: true })).toBe(1);
    const earned = samplingRate({ verifiedSteps: SAMPLING_DECAY_STEPS, failedChecks: 0, resemblesBanned: true });
    expect(earned).toBeLessThan(SAMPLING_RATE_NEW);
    expect(earned).toBeGreaterThan(samplingRate({ verifiedSteps: SAMPLING_DECAY_STEPS, failedChecks: 0 }));
  });
});
