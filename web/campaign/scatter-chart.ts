/**
 * The GFLOP/s vs tokens/s scatter, drawn with uPlot: a point per run at its device's measured
 * matmul GFLOP/s (the handshake's, on its provider) and the tokens/s it ran at, a colour per
 * execution provider. uPlot's series share one x array, so the points are sorted by GFLOP/s and
 * each provider's series has a value only at its own runs' x.
 */
import type uPlot from 'uplot';
import { PROVIDER_COLORS } from '../../shared/campaign/summary.ts';
import type { Scatter } from '../../shared/campaign/summary.ts';
import { createProviderChart, PROVIDERS } from './provider-chart.ts';

export interface ScatterChart {
  show(points: Scatter): void;
}

/** The shared x (sorted GFLOP/s) and a y per provider, null where the point is another's. */
export function alignedScatter(points: Scatter, providers: readonly string[]): uPlot.AlignedData {
  const all = providers.flatMap((p, pi) => points[p].map(([x, y]) => ({ x, y, pi }))).sort((a, b) => a.x - b.x);
  return [all.map((q) => q.x), ...providers.map((_, pi) => all.map((q) => (q.pi === pi ? q.y : null)))];
}

export function createScatterChart(container: HTMLElement): ScatterChart {
  const upToTenthMore: uPlot.Range.Function = (_u, _min, max) => [0, Math.max(1, max * 1.1)];
  const chart = createProviderChart(container, (providers) => ({
    scales: { x: { time: false, range: upToTenthMore }, y: { range: upToTenthMore } },
    series: [{ label: 'device GFLOP/s' }, ...providers.map((p) => ({ label: p, stroke: PROVIDER_COLORS[p], paths: () => null, points: { show: true, size: 7, fill: `${PROVIDER_COLORS[p]}cc` } }))],
    axes: [{ label: 'device GFLOP/s (matmul)' }, { label: 'tokens/s', size: 50 }],
  }));
  return {
    show(points) {
      const providers = PROVIDERS.filter((p) => points[p]?.length);
      chart.show(providers, alignedScatter(points, providers));
    },
  };
}
