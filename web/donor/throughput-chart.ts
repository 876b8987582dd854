/**
 * The donor page's live chart of this node's throughput (tokens/s over the last few minutes),
 * drawn with uPlot: a canvas line chart, redrawn only when its points change (throughput-series.ts). Used by view.ts.
 */
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { createThroughputSeries } from './throughput-series.ts';

const HEIGHT_PX = 160;
/** Before layout (or while hidden) a container measures 0 wide; draw at this width until it has one. */
const FALLBACK_WIDTH_PX = 480;

export interface ThroughputChart {
  /** `t` in milliseconds since the epoch (`Date.now()`), as the chart's time axis shows wall-clock time. */
  push(t: number, tokensPerSecond: number): void;
}

export function createThroughputChart(container: HTMLElement): ThroughputChart {
  const series = createThroughputSeries();
  const { seconds, rates } = series;
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
  // A background tab draws nothing; it catches up when the visitor looks again.
  document.addEventListener('visibilitychange', () => {
    if (!document.hidden) chart.setData([seconds, rates]);
  });
  return {
    push(t, tokensPerSecond) {
      if (series.add(t, tokensPerSecond) && !document.hidden) chart.setData([seconds, rates]);
    },
  };
}
