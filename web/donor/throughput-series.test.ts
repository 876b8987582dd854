import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { createThroughputSeries } from './throughput-series.ts';

const second = 1000;

/** A series fed [seconds, tokens/s] samples. */
function fed(...samples: [number, number][]) {
  const s = createThroughputSeries();
  for (const [t, rate] of samples) s.add(t * second, rate);
  return s;
}

describe('the donor chart\'s throughput series', () => {
  it('draws the drop to zero once, then holds zeros back without redrawing', () => {
    const s = createThroughputSeries();
    expect(s.add(0, 5)).toBe(true);
    expect(s.add(1 * second, 0)).toBe(true);
    for (let t = 2; t < 60; t++) expect(s.add(t * second, 0)).toBe(false);
    expect(s.seconds).toEqual([0, 1]);
    expect(s.rates).toEqual([5, 0]);
  });

  it('draws the last zero held before new work, so the line stays at zero instead of ramping across the idle time', () => {
    const s = fed([0, 5], [1, 0], [2, 0], [30, 0]);
    expect(s.add(31 * second, 8)).toBe(true);
    expect(s.seconds).toEqual([0, 1, 30, 31]);
    expect(s.rates).toEqual([5, 0, 0, 8]);
  });

  it('keeps the last two minutes only, at most 120 points', () => {
    const s = fed([0, 5], [1, 0], [3600, 0], [3601, 7]);
    expect(s.seconds).toEqual([3600, 3601]);
    for (let t = 0; t < 200; t++) s.add((4000 + t) * second, 1 + t);
    expect(s.seconds).toHaveLength(120);
    expect(s.seconds[0]).toBe(4080);
  });

  it('draws every sample that is not a repeated zero, and each drawing is the last two minutes of what was sampled', () => {
    fc.assert(
      fc.property(fc.array(fc.record({ gap: fc.integer({ min: 1, max: 30 }), rate: fc.oneof(fc.constant(0), fc.double({ min: 0.1, max: 100, noNaN: true })) }), { maxLength: 400 }), (samples) => {
        const s = createThroughputSeries();
        let t = 0;
        let last: number | undefined;
        for (const { gap, rate } of samples) {
          t += gap * second;
          const drawn = s.add(t, rate);
          expect(drawn).toBe(!(rate === 0 && last === 0));
          if (drawn) last = rate;
          expect(s.seconds.length).toBeLessThanOrEqual(120);
          // Held zeros leave the chart as it was drawn; each drawing shows the last two minutes.
          if (drawn) expect(s.seconds.every((x) => x * second >= t - 120 * second)).toBe(true);
          expect(s.seconds.every((x, i) => i === 0 || x > s.seconds[i - 1])).toBe(true);
        }
        if (samples.length > 0 && last !== undefined) expect(s.rates.at(-1)).toBe(last);
      }),
    );
  });
});
