/**
 * The donor page's live chart of this node's throughput (tokens/s over the last few minutes),
 * drawn with uPlot: a canvas line chart small enough to redraw on every sample. Used by view.ts.
 */
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

/** Samples kept: two minutes at the donor page's one sample a second; older ones scroll off. */
export const THROUGHPUT_POINTS = 120;
const HEIGHT_PX = 160;
/** Before layout (or while hidden) a container measures 0 wide; draw at this width until it has one. */
const FALLBACK_WIDTH_PX = 480;

export interface ThroughputChart {
  /** `t` in milliseconds since the epoch (`Date.now()`), as the chart's time axis shows wall-clock time. */
  push(t: number, tokensPerSecond: number): void;
}

export function createThroughputChart(container: HTMLElement): ThroughputChart {
  // uPlot's time axis counts seconds; the samples arrive in milliseconds.
  const seconds: number[] = [];
  const rates: number[] = [];
  const widthOf = () => Math.max(240, container.clientWidth || FALLBACK_WIDTH_PX);
  const chart = new uPlot(
    {
      width: widthOf(),
      height: HEIGHT_PX,
      legend: { show: false },
      cursor: { show: false },
      scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, Math.max(1, max * 1.1)] } },
      series: [{}, { label: 'tokens/s', stroke: '#2f6fde', fill: 'rgba(47, 111, 222, 0.12)', width: 2, points: { show: false } }],
      axes: [{}, { label: 'tokens/s', size: 50 }],
    },
    [seconds, rates],
    container,
  );
  // The page reflows (narrow screens, a sidebar): keep the chart as wide as its box.
  if (typeof ResizeObserver !== 'undefined') {
    new ResizeObserver(() => chart.setSize({ width: widthOf(), height: HEIGHT_PX })).observe(container);
  }
  if (typeof document !== 'undefined') {
    document.addEventListener('visibilitychange', () => {
      if (!document.hidden) chart.setData([seconds, rates]);
    });
  }
  return {
    push(t, tokensPerSecond) {
      seconds.push(t / 1000);
      rates.push(tokensPerSecond);
      if (seconds.length > THROUGHPUT_POINTS) {
        seconds.splice(0, seconds.length - THROUGHPUT_POINTS);
        rates.splice(0, rates.length - THROUGHPUT_POINTS);
      }
      // A tab in the background draws nothing; it catches up when the visitor looks again.
      if (typeof document === 'undefined' || !document.hidden) chart.setData([seconds, rates]);
    },
  };
}
