/**
 * The points the donor page's throughput chart draws (throughput-chart.ts): the last two minutes
 * of one-a-second samples. An idle tab samples zeros for hours; drawing each one would redraw
 * the chart (layout, raster, compositing) every few seconds for a flat line. So a zero that
 * follows a zero is held back, not drawn: the line ends flat at zero and the chart stays as it
 * is. When work comes back, the last zero held is drawn first (the line stays at zero up to
 * then, instead of ramping across the idle time), and points older than the window go.
 */

/** Samples kept: two minutes at the donor page's one sample a second. */
export const THROUGHPUT_POINTS = 120;
export const THROUGHPUT_WINDOW_MS = 120_000;

export interface ThroughputSeries {
  /** `t` in ms since the epoch. Whether the points drawn changed (false: nothing to redraw). */
  add(t: number, tokensPerSecond: number): boolean;
  /** uPlot's time axis counts seconds */
  readonly seconds: number[];
  readonly rates: number[];
}

export function createThroughputSeries(options: { points?: number; windowMs?: number } = {}): ThroughputSeries {
  const points = options.points ?? THROUGHPUT_POINTS;
  const windowMs = options.windowMs ?? THROUGHPUT_WINDOW_MS;
  const seconds: number[] = [];
  const rates: number[] = [];
  let heldZeroAt: number | undefined;
  const append = (t: number, rate: number) => {
    seconds.push(t / 1000);
    rates.push(rate);
  };
  return {
    seconds,
    rates,
    add(t, tokensPerSecond) {
      if (tokensPerSecond === 0 && rates.length > 0 && rates[rates.length - 1] === 0) {
        heldZeroAt = t;
        return false;
      }
      if (heldZeroAt !== undefined) append(heldZeroAt, 0);
      heldZeroAt = undefined;
      append(t, tokensPerSecond);
      let stale = 0;
      while (stale < seconds.length && seconds[stale] * 1000 < t - windowMs) stale++;
      stale = Math.max(stale, seconds.length - points);
      seconds.splice(0, stale);
      rates.splice(0, stale);
      return true;
    },
  };
}
