/**
 * A histogram drawn with uPlot (bars per execution provider, side by side in each bin), for
 * the campaign dashboard's distributions. Redrawn with setData as results arrive.
 */
import uPlot from 'uplot';
import { PROVIDER_COLORS } from '../../shared/campaign/summary.ts';
import type { Histogram } from '../../shared/campaign/summary.ts';
import { createProviderChart, PROVIDERS } from './provider-chart.ts';

export interface HistogramChart {
  show(h: Histogram): void;
}

export function createHistogramChart(container: HTMLElement, label: string): HistogramChart {
  /** the right edge of the last bin: the x axis ends there, so the last bar is whole */
  let right = 1;
  const chart = createProviderChart(container, (providers) => {
    const bars = uPlot.paths.bars!({ size: [0.8 / Math.max(1, providers.length)] });
    return {
      scales: { x: { time: false, range: () => [0, right] }, y: { range: (_u, _min, max) => [0, Math.max(1, max + 1)] } },
      series: [{ label }, ...providers.map((p) => ({ label: p, stroke: PROVIDER_COLORS[p], fill: `${PROVIDER_COLORS[p]}99`, paths: bars, points: { show: false } }))],
      axes: [{ label }, { label: 'runs', size: 40 }],
    };
  });
  return {
    show(h) {
      const providers = PROVIDERS.filter((p) => h.counts[p]);
      const centers = h.edges.slice(0, -1).map((e, i) => (e + h.edges[i + 1]) / 2);
      right = h.edges.at(-1) ?? 1;
      chart.show(providers, [centers, ...providers.map((p) => h.counts[p])]);
    },
  };
}
