/**
 * A uPlot chart of the campaign dashboard with a series per execution provider: redrawn with
 * setData as results arrive while the providers stay the same, built anew when one appears.
 */
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { PROVIDER_COLORS } from '../../shared/campaign/summary.ts';

const HEIGHT_PX = 220;
/** The providers in the order the charts draw them. */
export const PROVIDERS = Object.keys(PROVIDER_COLORS);

export interface ProviderChart {
  show(providers: readonly string[], data: uPlot.AlignedData): void;
}

/** `options` builds the chart for these providers (its size and legend are the dashboard's). */
export function createProviderChart(container: HTMLElement, options: (providers: readonly string[]) => Omit<uPlot.Options, 'width' | 'height'>): ProviderChart {
  let chart: uPlot | undefined;
  let shown = '';
  return {
    show(providers, data) {
      const key = providers.join(',');
      if (chart && key === shown) return chart.setData(data);
      chart?.destroy();
      shown = key;
      const width = Math.max(280, container.clientWidth || 480);
      chart = new uPlot({ width, height: HEIGHT_PX, legend: { show: true }, cursor: { show: false }, ...options(providers) }, data, container);
    },
  };
}
