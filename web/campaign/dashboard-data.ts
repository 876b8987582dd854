/**
 * What the campaign dashboard shows, computed from GET /api/campaigns/<id>: a row per device
 * (adapter, provider, runs, median speed, correctness) and histograms of tokens/s and ms per
 * layer per execution provider. Pure, so it is tested without a page.
 */
export interface DashboardRun {
  peerId: string;
  deviceSignature: string;
  provider: string;
  adapter: string;
  workload: string;
  tokensPerSecond: number;
  msPerLayer: number;
  correct: boolean | null;
  receivedAt: number;
}

export interface DeviceRow {
  deviceSignature: string;
  adapter: string;
  provider: string;
  /** the tabs this device reported from */
  tabs: number;
  runs: number;
  medianTokensPerSecond: number;
  medianMsPerLayer: number;
  correct: number;
  wrong: number;
  unchecked: number;
}

export interface Histogram {
  /** each bin's left edge, then the right edge of the last */
  edges: number[];
  /** per provider, its runs in each bin */
  counts: Record<string, number[]>;
}

/** Each execution provider's colour in the dashboard's and the report's charts. */
export const PROVIDER_COLORS: Record<string, string> = { webgpu: '#2f6fde', wasm: '#d9822b', cpu: '#5b8c3a' };

/** A device row's correctness counts, as the dashboard and the report print them. */
export const checkedText = (d: Pick<DeviceRow, 'correct' | 'wrong' | 'unchecked'>) => `${d.correct} ✓ · ${d.wrong} ✗ · ${d.unchecked} unchecked`;

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** One row per device and provider, the slowest first (stragglers at the top). */
export function deviceRows(runs: readonly DashboardRun[]): DeviceRow[] {
  const groups = new Map<string, DashboardRun[]>();
  for (const r of runs) {
    const key = `${r.deviceSignature}\n${r.provider}`;
    groups.set(key, [...(groups.get(key) ?? []), r]);
  }
  return [...groups.values()]
    .map((g) => ({
      deviceSignature: g[0].deviceSignature,
      adapter: g[0].adapter,
      provider: g[0].provider,
      tabs: new Set(g.map((r) => r.peerId)).size,
      runs: g.length,
      medianTokensPerSecond: median(g.map((r) => r.tokensPerSecond)),
      medianMsPerLayer: median(g.map((r) => r.msPerLayer)),
      correct: g.filter((r) => r.correct === true).length,
      wrong: g.filter((r) => r.correct === false).length,
      unchecked: g.filter((r) => r.correct === null).length,
    }))
    .sort((a, b) => b.medianMsPerLayer - a.medianMsPerLayer);
}

/** `bins` equal bins from 0 to the largest value, counted per provider. */
export function histogram(runs: readonly DashboardRun[], value: (r: DashboardRun) => number, bins = 12): Histogram {
  const top = Math.max(0, ...runs.map(value));
  const width = top > 0 ? top / bins : 1;
  const edges = Array.from({ length: bins + 1 }, (_, i) => i * width);
  const counts: Record<string, number[]> = {};
  for (const r of runs) {
    const row = (counts[r.provider] ??= Array(bins).fill(0));
    row[Math.min(bins - 1, Math.floor(value(r) / width))]++;
  }
  return { edges, counts };
}
