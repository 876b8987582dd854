import { describe, expect, it } from 'vitest';
import { campaignReportHtml, histogramSvg, scatterSvg } from './static-report.ts';
import type { DashboardReport, DashboardRun } from '../../shared/campaign/summary.ts';

const run = (provider: string, tokensPerSecond: number, adapter = 'google swiftshader'): DashboardRun => ({ peerId: 'p', deviceSignature: `dev-${provider}`, provider, adapter, workload: 'w', tokensPerSecond, msPerLayer: 100 / tokensPerSecond, deviceGflops: 10, correct: null, receivedAt: 0 });
const skipped: DashboardReport = { peerId: 'p2', adapter: 'cpu', tabProvider: 'wasm', event: 'skipped', provider: 'webgpu', workload: '', planned: 0, reason: 'no <b>adapter</b>', receivedAt: 0 };

describe('the static campaign report', () => {
  it('draws a bar per non-empty bin and provider', () => {
    const svg = histogramSvg({ edges: [0, 5, 10], counts: { wasm: [2, 0], webgpu: [1, 3] } }, 'tokens/s');
    expect(svg.match(/<rect [^>]*><title>/g)).toHaveLength(3);
    expect(svg).toContain('<title>webgpu: 3 runs in 5.0–10.0</title>');
  });

  it('draws a point per run at its device GFLOP/s and tokens/s', () => {
    const svg = scatterSvg({ wasm: [[10, 50], [10, 60]], webgpu: [[100, 20]] });
    expect(svg.match(/<circle /g)).toHaveLength(3);
    expect(svg).toContain('<title>webgpu: 100 GFLOP/s, 20.0 tokens/s</title>');
  });

  it('holds the summary, a row per device and tab, the charts, what was skipped, the refusals and the spec, with what a tab sent escaped', () => {
    const html = campaignReportHtml(
      {
        campaign: { id: 'cmp_1', name: 'two <EPs>', state: 'running', runs: 3, devices: 2, refused: 1, endsAt: '2027-01-01T00:00:00Z', target: { devices: 2 } },
        spec: { name: 'two <EPs>' },
        runs: [run('wasm', 50, '<script>alert(1)</script>'), run('wasm', 60), run('webgpu', 20)],
        reports: [{ ...skipped, event: 'joined', provider: '', planned: 4, reason: '' }, skipped],
        refusals: [{ peerId: 'p9', reason: 'ReplayedResultError', message: 'a replay', receivedAt: 0 }],
        serverTime: 120_000,
      },
      new Date('2027-01-01T00:00:00Z'),
    );
    expect(html).toContain('<h1>two &#60;EPs&#62;</h1>');
    expect(html).not.toContain('<script>');
    expect(html.match(/<svg /g)).toHaveLength(3);
    expect(html).not.toContain('<b>');
    expect(html).toContain('<td>skipped</td><td>webgpu</td><td>no &#60;b&#62;adapter&#60;/b&#62;</td>');
    // p posted runs without joining; p2 joined and went quiet two minutes ago: a straggler.
    expect(html).toContain('<td class="num">0 / 4</td><td>straggler: quiet for 120 s</td>');
    expect(html.match(/<tr><td class="mono">dev-/g)).toHaveLength(2);
    expect(html).toContain('<td>ReplayedResultError</td>');
    expect(html).toContain('report made 2027-01-01T00:00:00.000Z');
  });
});
