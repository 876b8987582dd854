import { describe, expect, it } from 'vitest';
import { campaignReportHtml, histogramSvg } from './static-report.ts';
import type { DashboardRun } from './dashboard-data.ts';

const run = (provider: string, tokensPerSecond: number, adapter = 'google swiftshader'): DashboardRun => ({ peerId: 'p', deviceSignature: `dev-${provider}`, provider, adapter, workload: 'w', tokensPerSecond, msPerLayer: 100 / tokensPerSecond, correct: null, receivedAt: 0 });

describe('the static campaign report', () => {
  it('draws a bar per non-empty bin and provider', () => {
    const svg = histogramSvg({ edges: [0, 5, 10], counts: { wasm: [2, 0], webgpu: [1, 3] } }, 'tokens/s');
    expect(svg.match(/<rect [^>]*><title>/g)).toHaveLength(3);
    expect(svg).toContain('<title>webgpu: 3 runs in 5.0–10.0</title>');
  });

  it('holds the summary, a row per device, both charts, the refusals and the spec, with what a tab sent escaped', () => {
    const html = campaignReportHtml(
      {
        campaign: { id: 'cmp_1', name: 'two <EPs>', state: 'running', runs: 3, devices: 2, refused: 1, endsAt: '2027-01-01T00:00:00Z', target: { devices: 2 } },
        spec: { name: 'two <EPs>' },
        runs: [run('wasm', 50, '<script>alert(1)</script>'), run('wasm', 60), run('webgpu', 20)],
        refusals: [{ peerId: 'p9', reason: 'ReplayedResultError', message: 'a replay', receivedAt: 0 }],
      },
      new Date('2027-01-01T00:00:00Z'),
    );
    expect(html).toContain('<h1>two &#60;EPs&#62;</h1>');
    expect(html).not.toContain('<script>');
    expect(html.match(/<svg /g)).toHaveLength(2);
    expect(html.match(/<tr><td class="mono">dev-/g)).toHaveLength(2);
    expect(html).toContain('<td>ReplayedResultError</td>');
    expect(html).toContain('report made 2027-01-01T00:00:00.000Z');
  });
});
