/**
 * A campaign's summary, computed from what GET /api/campaigns/<id> returns: a row per device
 * (adapter, provider, runs, median speed, correctness), a row per tab (how far it got, whether
 * it finished, left or went quiet: the stragglers), what tabs skipped or failed and why,
 * histograms of tokens/s and ms per layer and the GFLOP/s vs tokens/s scatter, per execution
 * provider. The live dashboard, the static report and the summary export all show these. Pure,
 * so it is tested without a page or a server.
 */
export interface DashboardRun {
  peerId: string;
  deviceSignature: string;
  provider: string;
  adapter: string;
  workload: string;
  tokensPerSecond: number;
  msPerLayer: number;
  /** the device's measured matmul GFLOP/s on its provider, when the grid has it */
  deviceGflops?: number | null;
  correct: boolean | null;
  receivedAt: number;
}

/** A tab's report as the status lists it (shared/campaign/tab-report.ts, with the server's receipt time). */
export interface DashboardReport {
  peerId: string;
  adapter: string;
  tabProvider: string;
  event: string;
  provider: string;
  workload: string;
  planned: number;
  reason: string;
  receivedAt: number;
}

/** A refused submission as the status lists it. */
export interface DashboardRefusal {
  peerId: string;
  /** false: refused before its signature was checked, so the tab is only what it claimed */
  verified?: boolean;
  reason: string;
  message: string;
  receivedAt: number;
}

/** A refused submission's tab as shown (`name`, default its peer id): an unchecked one is marked as a claim. */
export const refusedTab = (r: DashboardRefusal, name = r.peerId) => (r.verified === false ? `${name} (claimed)` : name);

/** What GET /api/campaigns/<id> answers, as far as the dashboard, the report and `campaign status` read it. */
export interface CampaignStatus {
  campaign: { id: string; name: string; state: string; runs: number; devices: number; refused: number; endsAt: string; target: { devices?: number; runs?: number } };
  spec: unknown;
  runs: DashboardRun[];
  reports: DashboardReport[];
  refusals: DashboardRefusal[];
  /** the server's clock when it answered: how long a tab has been quiet is measured against it */
  serverTime: number;
}

/** A tab still running that the server has heard nothing from for this long is a straggler. */
export const QUIET_AFTER_MS = 60_000;

export type TabState = 'running' | 'quiet' | 'finished' | 'left';

export interface TabRow {
  peerId: string;
  adapter: string;
  provider: string;
  /** runs it said it would post (null: it posted without joining first) */
  planned: number | null;
  runs: number;
  state: TabState;
  /** when the server last heard from it: a report or a run */
  lastHeardAt: number;
}

export interface FailureRow {
  peerId: string;
  adapter: string;
  event: 'skipped' | 'failed';
  /** what it did not run: "decode-16 on wasm", "wasm", "every workload" */
  what: string;
  reason: string;
  receivedAt: number;
}

/** Per provider, one [device GFLOP/s, tokens/s] point per run that has both. */
export type Scatter = Record<string, [number, number][]>;

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

/**
 * One row per tab that joined or posted: stragglers first (quiet, then left before finishing),
 * then the running and the finished, each the least done first.
 */
export function tabRows(runs: readonly DashboardRun[], reports: readonly DashboardReport[], now: number): TabRow[] {
  const tabs = new Map<string, TabRow & { finished: boolean; left: boolean }>();
  const tab = (peerId: string, adapter: string, provider: string) => {
    let t = tabs.get(peerId);
    if (!t) tabs.set(peerId, (t = { peerId, adapter, provider, planned: null, runs: 0, state: 'running', lastHeardAt: 0, finished: false, left: false }));
    return t;
  };
  for (const r of reports) {
    const t = tab(r.peerId, r.adapter, r.tabProvider);
    t.lastHeardAt = Math.max(t.lastHeardAt, r.receivedAt);
    if (r.event === 'joined') t.planned = r.planned;
    if (r.event === 'finished') t.finished = true;
    if (r.event === 'left') t.left = true;
  }
  for (const r of runs) {
    const t = tab(r.peerId, r.adapter, r.provider);
    t.runs++;
    t.lastHeardAt = Math.max(t.lastHeardAt, r.receivedAt);
  }
  const order: Record<TabState, number> = { quiet: 0, left: 1, running: 2, finished: 3 };
  return [...tabs.values()]
    .map(({ finished, left, ...t }) => ({ ...t, state: finished ? 'finished' : left ? 'left' : now - t.lastHeardAt >= QUIET_AFTER_MS ? 'quiet' : 'running' }) as TabRow)
    .sort((a, b) => order[a.state] - order[b.state] || a.runs - b.runs || a.peerId.localeCompare(b.peerId));
}

/** What tabs skipped or failed, with why, in the order the server heard it. */
export function failureRows(reports: readonly DashboardReport[]): FailureRow[] {
  return reports
    .filter((r): r is DashboardReport & { event: FailureRow['event'] } => r.event === 'skipped' || r.event === 'failed')
    .map((r) => ({
      peerId: r.peerId,
      adapter: r.adapter,
      event: r.event,
      what: r.workload && r.provider ? `${r.workload} on ${r.provider}` : r.workload || r.provider || 'every workload',
      reason: r.reason,
      receivedAt: r.receivedAt,
    }));
}

/** How a tab's state reads on the dashboard and in the report. */
export function tabStateText(t: TabRow, now: number): string {
  if (t.state === 'quiet') return `straggler: quiet for ${Math.round((now - t.lastHeardAt) / 1000)} s`;
  if (t.state === 'left') return `left after ${t.runs} of ${t.planned ?? '?'} runs`;
  return t.state;
}

export function scatter(runs: readonly DashboardRun[]): Scatter {
  const points: Scatter = {};
  for (const r of runs) if (r.deviceGflops) (points[r.provider] ??= []).push([r.deviceGflops, r.tokensPerSecond]);
  return points;
}
