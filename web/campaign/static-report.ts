/**
 * A campaign's dashboard as one static HTML file (`infermesh campaign report <id> --out
 * report.html`): the summary, the device table, the tokens/s and ms-per-layer histograms and the
 * GFLOP/s vs tokens/s scatter as inline SVG, the tabs (stragglers first), what they skipped or
 * failed, the refusals and the spec, with no script and nothing fetched, so a paper can cite it
 * and it opens anywhere. Pure: status in, HTML out.
 */
import { checkedText, deviceRows, failureRows, histogram, PROVIDER_COLORS, refusedTab, scatter, tabRows, tabStateText } from '../../shared/campaign/summary.ts';
import type { CampaignStatus, Histogram, Scatter } from '../../shared/campaign/summary.ts';

const W = 480;
const H = 220;
const PAD = { left: 40, right: 10, top: 10, bottom: 40 };

const escape = (text: string | number) => String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const fmt = (x: number) => (x >= 100 ? x.toFixed(0) : x >= 1 ? x.toFixed(1) : x.toPrecision(2));

const PLOT_W = W - PAD.left - PAD.right;
const PLOT_H = H - PAD.top - PAD.bottom;
const colour = (provider: string) => PROVIDER_COLORS[provider] ?? '#888';

/** What both charts share: the axes with their ends labelled, the marks, and a legend of the providers. */
function chartSvg(o: { ariaLabel: string; providers: readonly string[]; yTop: string; yLabel?: string; xTop: string; xLabel: string; marks: readonly string[] }): string {
  const legend = o.providers.map((p, i) => `<rect x="${PAD.left + i * 90}" y="${H - 14}" width="10" height="10" fill="${colour(p)}"/><text x="${PAD.left + i * 90 + 14}" y="${H - 5}">${escape(p)}</text>`);
  const yLabel = o.yLabel ? `<text x="${PAD.left - 4}" y="${PAD.top + PLOT_H / 2}" text-anchor="end">${escape(o.yLabel)}</text>` : '';
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-size="11" font-family="system-ui, sans-serif" role="img" aria-label="${escape(o.ariaLabel)}">
<line x1="${PAD.left}" y1="${PAD.top + PLOT_H}" x2="${W - PAD.right}" y2="${PAD.top + PLOT_H}" stroke="#444"/><line x1="${PAD.left}" y1="${PAD.top}" x2="${PAD.left}" y2="${PAD.top + PLOT_H}" stroke="#444"/>
<text x="${PAD.left - 4}" y="${PAD.top + 8}" text-anchor="end">${o.yTop}</text><text x="${PAD.left - 4}" y="${PAD.top + PLOT_H}" text-anchor="end">0</text>${yLabel}
<text x="${PAD.left}" y="${PAD.top + PLOT_H + 13}">0</text><text x="${W - PAD.right}" y="${PAD.top + PLOT_H + 13}" text-anchor="end">${o.xTop}</text><text x="${PAD.left + PLOT_W / 2}" y="${PAD.top + PLOT_H + 13}" text-anchor="middle">${escape(o.xLabel)}</text>
${o.marks.join('')}${legend.join('')}</svg>`;
}

/** Bars per provider side by side in each bin, the axes' ends labelled. */
export function histogramSvg(h: Histogram, label: string): string {
  const providers = Object.keys(h.counts).sort();
  const bins = h.edges.length - 1;
  const top = Math.max(1, ...providers.flatMap((p) => h.counts[p]));
  const binW = PLOT_W / bins;
  const barW = (binW * 0.8) / Math.max(1, providers.length);
  const bars = providers.flatMap((p, pi) =>
    h.counts[p].map((n, b) => {
      if (n === 0) return '';
      const x = PAD.left + b * binW + binW * 0.1 + pi * barW;
      const y = PAD.top + PLOT_H * (1 - n / top);
      return `<rect x="${x.toFixed(1)}" y="${y.toFixed(1)}" width="${barW.toFixed(1)}" height="${(PAD.top + PLOT_H - y).toFixed(1)}" fill="${colour(p)}"><title>${escape(p)}: ${n} runs in ${fmt(h.edges[b])}–${fmt(h.edges[b + 1])}</title></rect>`;
    }),
  );
  return chartSvg({ ariaLabel: label, providers, yTop: String(top), xTop: fmt(h.edges[bins]), xLabel: label, marks: bars });
}

/** A point per run at (device GFLOP/s, tokens/s), a colour per provider, both axes from 0. */
export function scatterSvg(points: Scatter): string {
  const providers = Object.keys(points).sort();
  const all = providers.flatMap((p) => points[p]);
  const [xTop, yTop] = [Math.max(1, ...all.map(([x]) => x)) * 1.1, Math.max(1, ...all.map(([, y]) => y)) * 1.1];
  const dots = providers.flatMap((p) =>
    points[p].map(([x, y]) => `<circle cx="${(PAD.left + (PLOT_W * x) / xTop).toFixed(1)}" cy="${(PAD.top + PLOT_H * (1 - y / yTop)).toFixed(1)}" r="3.5" fill="${colour(p)}" fill-opacity="0.8"><title>${escape(p)}: ${fmt(x)} GFLOP/s, ${fmt(y)} tokens/s</title></circle>`),
  );
  return chartSvg({ ariaLabel: 'tokens/s against device GFLOP/s', providers, yTop: fmt(yTop), yLabel: 'tok/s', xTop: fmt(xTop), xLabel: 'device GFLOP/s (matmul)', marks: dots });
}

export function campaignReportHtml(s: CampaignStatus, generatedAt = new Date()): string {
  const c = s.campaign;
  const devices = deviceRows(s.runs)
    .map((d) => `<tr><td class="mono">${escape(d.deviceSignature)}</td><td>${escape(d.adapter)}</td><td>${escape(d.provider)}</td><td class="num">${d.tabs}</td><td class="num">${d.runs}</td><td class="num">${d.medianTokensPerSecond.toFixed(1)}</td><td class="num">${d.medianMsPerLayer.toFixed(3)}</td><td>${checkedText(d)}</td></tr>`)
    .join('\n');
  const tabs = tabRows(s.runs, s.reports, s.serverTime)
    .map((t) => `<tr><td class="mono">${escape(t.peerId)}</td><td>${escape(t.adapter)}</td><td>${escape(t.provider)}</td><td class="num">${t.runs} / ${t.planned ?? '?'}</td><td>${escape(tabStateText(t, s.serverTime))}</td><td>${escape(new Date(t.lastHeardAt).toISOString())}</td></tr>`)
    .join('\n');
  const failures = failureRows(s.reports).map((f) => `<tr><td>${escape(new Date(f.receivedAt).toISOString())}</td><td class="mono">${escape(f.peerId)}</td><td>${escape(f.adapter)}</td><td>${f.event}</td><td>${escape(f.what)}</td><td>${escape(f.reason)}</td></tr>`).join('\n');
  const refusals = s.refusals.map((r) => `<tr><td>${escape(new Date(r.receivedAt).toISOString())}</td><td class="mono">${escape(refusedTab(r))}</td><td>${escape(r.reason)}</td><td>${escape(r.message)}</td></tr>`).join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escape(c.name)}: infermesh benchmark campaign ${escape(c.id)}</title>
<style>body{font:14px/1.5 system-ui,sans-serif;max-width:64rem;margin:2rem auto;padding:0 1rem;color:#1d2430}table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.2rem .5rem;border-bottom:1px solid #e3e7ee}td.num{text-align:right}.mono{font-family:ui-monospace,monospace;font-size:12px}.muted{color:#5b6575}figure{display:inline-block;margin:0 1rem 1rem 0}pre{background:#f5f7fa;padding:.5rem;overflow:auto}</style></head>
<body>
<h1>${escape(c.name)}</h1>
<p class="muted">Campaign ${escape(c.id)} · ${escape(c.state)} · ${c.runs} runs from ${c.devices} devices · ${c.refused} refused · ends ${escape(c.endsAt)} · report made ${escape(generatedAt.toISOString())}</p>
<h2>Devices</h2>
<table><thead><tr><th>Device</th><th>Adapter</th><th>EP</th><th>Tabs</th><th>Runs</th><th>tokens/s (median)</th><th>ms per layer (median)</th><th>Checked</th></tr></thead><tbody>
${devices}
</tbody></table>
<h2>Distributions</h2>
<figure>${histogramSvg(histogram(s.runs, (r) => r.tokensPerSecond), 'tokens/s')}<figcaption class="muted">tokens/s per run, by execution provider</figcaption></figure>
<figure>${histogramSvg(histogram(s.runs, (r) => r.msPerLayer), 'ms per layer')}<figcaption class="muted">ms per layer per decode step, per run, by execution provider</figcaption></figure>
<figure>${scatterSvg(scatter(s.runs))}<figcaption class="muted">tokens/s per run against its device's matmul GFLOP/s (the device handshake's, on its provider)</figcaption></figure>
<h2>Tabs</h2>
<table><thead><tr><th>Tab</th><th>Adapter</th><th>EP</th><th>Runs</th><th>State</th><th>Last heard</th></tr></thead><tbody>
${tabs}
</tbody></table>
<h2>Skipped and failed</h2>
<table><thead><tr><th>When</th><th>Tab</th><th>Adapter</th><th></th><th>What</th><th>Why</th></tr></thead><tbody>
${failures}
</tbody></table>
<h2>Refused results and reports</h2>
<table><thead><tr><th>When</th><th>Tab</th><th>Why</th><th>Message</th></tr></thead><tbody>
${refusals}
</tbody></table>
<h2>Spec</h2>
<pre>${escape(JSON.stringify(s.spec, null, 2))}</pre>
</body></html>
`;
}
