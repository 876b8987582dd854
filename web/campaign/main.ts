/**
 * The live dashboard of a benchmark campaign (`/campaign/?id=<id>`, the link `infermesh campaign
 * create` prints): runs done of the target, a row per device (the slowest first), the
 * distributions of tokens/s and ms per layer and the GFLOP/s vs tokens/s scatter per execution
 * provider, a row per tab (stragglers first), what tabs skipped or failed and why, and every
 * refused result with why. It reads GET /api/campaigns/<id> every few seconds, so it follows
 * results as tabs post them.
 */
import { createHistogramChart } from './histogram-chart.ts';
import { createScatterChart } from './scatter-chart.ts';
import { checkedText, deviceRows, failureRows, histogram, refusedTab, scatter, tabRows, tabStateText } from '../../shared/campaign/summary.ts';
import type { CampaignStatus } from '../../shared/campaign/summary.ts';

const POLL_MS = 2000;

declare global {
  interface Window {
    campaignDashboard?: { updates: number; runs: number };
  }
}

const $ = (id: string) => document.querySelector(`[data-testid="${id}"]`) as HTMLElement;
const id = new URLSearchParams(location.search).get('id') ?? '';
const tokensChart = createHistogramChart($('chart-tokens'), 'tokens/s');
const msChart = createHistogramChart($('chart-ms'), 'ms per layer');
const scatterChart = createScatterChart($('chart-scatter'));
const short = (text: string) => (text.length > 14 ? `${text.slice(0, 6)}…${text.slice(-6)}` : text);
const cell = (text: string | number, numeric = false) => Object.assign(document.createElement('td'), { textContent: String(text), className: numeric ? 'num' : '' });
const row = (...cells: HTMLTableCellElement[]) => {
  const tr = document.createElement('tr');
  tr.append(...cells);
  return tr;
};

($('export-csv') as HTMLAnchorElement).href = `/api/campaigns/${encodeURIComponent(id)}/export?format=csv`;
($('export-jsonl') as HTMLAnchorElement).href = `/api/campaigns/${encodeURIComponent(id)}/export?format=jsonl`;
($('export-summary') as HTMLAnchorElement).href = `/api/campaigns/${encodeURIComponent(id)}/export?format=summary`;

function render(s: CampaignStatus): void {
  const c = s.campaign;
  document.title = `infermesh: ${c.name}`;
  $('name').textContent = c.name;
  // Progress toward the target: devices when it names them, else runs.
  const [done, of, unit] = c.target.devices !== undefined ? [c.devices, c.target.devices, 'devices'] : [c.runs, c.target.runs ?? c.runs, 'runs'];
  $('summary').textContent = `${c.state} · ${c.runs} runs from ${c.devices} devices (${done} of ${of} ${unit}) · ${c.refused} refused · ends ${new Date(c.endsAt).toLocaleString()}`;
  $('summary').dataset.runs = String(c.runs);
  const bar = $('progress') as HTMLProgressElement;
  bar.max = Math.max(1, of);
  bar.value = Math.min(done, of);
  $('devices').replaceChildren(
    ...deviceRows(s.runs).map((d) =>
      row(cell(short(d.deviceSignature)), cell(d.adapter), cell(d.provider), cell(d.tabs, true), cell(d.runs, true), cell(d.medianTokensPerSecond.toFixed(1), true), cell(d.medianMsPerLayer.toFixed(3), true), cell(checkedText(d))),
    ),
  );
  const heard = (at: number) => `${Math.max(0, Math.round((s.serverTime - at) / 1000))} s ago`;
  $('tabs').replaceChildren(
    ...tabRows(s.runs, s.reports, s.serverTime).map((t) => {
      const tr = row(cell(short(t.peerId)), cell(t.adapter), cell(t.provider), cell(`${t.runs} / ${t.planned ?? '?'}`, true), cell(tabStateText(t, s.serverTime)), cell(heard(t.lastHeardAt)));
      tr.dataset.state = t.state;
      return tr;
    }),
  );
  $('failures').replaceChildren(...failureRows(s.reports).map((f) => row(cell(new Date(f.receivedAt).toLocaleTimeString()), cell(short(f.peerId)), cell(f.adapter), cell(f.event), cell(f.what), cell(f.reason))));
  $('refusals').replaceChildren(...s.refusals.map((r) => row(cell(new Date(r.receivedAt).toLocaleTimeString()), cell(refusedTab(r, short(r.peerId))), cell(r.reason), cell(r.message))));
  tokensChart.show(histogram(s.runs, (r) => r.tokensPerSecond));
  msChart.show(histogram(s.runs, (r) => r.msPerLayer));
  scatterChart.show(scatter(s.runs));
  window.campaignDashboard = { updates: (window.campaignDashboard?.updates ?? 0) + 1, runs: c.runs };
}

async function poll(): Promise<void> {
  try {
    const res = await fetch(`/api/campaigns/${encodeURIComponent(id)}`);
    const body = await res.json();
    if (!res.ok) throw new Error((body as { error?: { message?: string } }).error?.message ?? `the server answered ${res.status}`);
    $('error').textContent = '';
    render(body as CampaignStatus);
  } catch (err) {
    $('error').textContent = id ? (err as Error).message : 'No campaign named: open the dashboard link `infermesh campaign create` printed (…/campaign/?id=cmp_…).';
  }
  setTimeout(() => void poll(), POLL_MS);
}

void poll();
