/**
 * A benchmark campaign across real donor tabs in headless Chromium: two honest tabs (WASM, whose
 * visitor opts in on the donor page, and WebGPU on SwiftShader, opened from the join link) and
 * two cheating ones (the test kit's faulty donor page: one posts every result twice, one improves
 * its figures after signing) from the join link. Every honest repetition is stored, once, and the
 * sample replayed against the reference passes; the repeat and the forgery are refused by name
 * and the refusals are in the campaign's status; each tab reports joining, the provider it
 * skipped and why, and finishing; the CSV export has exactly one row per stored run; each tab
 * shows its progress; the campaign's dashboard shows every run, device, tab, skip and refusal and
 * the GFLOP/s scatter. Then a second campaign: the opted-in tab joins it, and closing the tab
 * mid-campaign reports it left, by beacon.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openCheckpoint } from '../cli/open-checkpoint.ts';
import { compileTo, removeTempDirs, STORIES_260K, TOK_512 } from '../testkit/model-fixtures.ts';
import { FAULTY_DONOR, TEST_PAGE_ROUTES } from '../testkit/pages/paths.ts';
import { openDonorTabs } from '../signaling-server/local-grid/donor-tabs.ts';
import type { DonorTab, DonorTabs } from '../signaling-server/local-grid/donor-tabs.ts';
import { startGridServer } from '../signaling-server/grid-server.ts';
import type { GridServer } from '../signaling-server/grid-server.ts';

const WORKLOADS = [
  { name: 'prefill-8', promptTokens: 8, decodeTokens: 1 },
  { name: 'decode-16', promptTokens: 4, decodeTokens: 16 },
];
const REPETITIONS = 2;

let server: GridServer;
let tabs: DonorTabs;
let campaignId: string;
let joinUrl: string;

interface Status {
  campaign: { runs: number; devices: number; refused: number };
  runs: { peerId: string; provider: string; workload: string; repetition: number; layers: { start: number; end: number }; tokensPerSecond: number; deviceGflops: number | null; correct: boolean | null }[];
  reports: { peerId: string; event: string; provider: string; reason: string }[];
  refusals: { peerId: string; reason: string }[];
}
const status = async (id = campaignId) => (await (await fetch(new URL(`/api/campaigns/${id}`, server.url))).json()) as Status;
const createCampaign = async (spec: object) => {
  const created = await fetch(new URL('/api/campaigns', server.url), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(spec) });
  expect(created.status).toBe(201);
  return (await created.json()) as { campaign: { id: string }; joinUrl: string };
};
const specOf = (name: string, repetitions: number) => ({ name, models: [{ package: server.manifest.name }], workloads: WORKLOADS, providers: ['webgpu', 'wasm'], repetitions, warmup: 1, target: { devices: 4 }, endsAt: new Date(Date.now() + 3_600_000).toISOString() });
const peerOf = async (tab: DonorTab) => ((await tab.state()) as { peerId?: string } | null)?.peerId;

beforeAll(async () => {
  const { dir } = await compileTo(await openCheckpoint(STORIES_260K, { tokenizer: TOK_512, seed: 0 }), 'f32');
  // Each tab serves the whole model: every tab has layers to run the campaign on.
  server = await startGridServer({ host: '127.0.0.1', port: 0, modelDir: dir, maxLayersPerNode: 5, staticRoutes: TEST_PAGE_ROUTES });
  ({ campaign: { id: campaignId }, joinUrl } = await createCampaign(specOf('e2e', REPETITIONS)));
  tabs = await openDonorTabs(server.url, 0);
}, 300_000);

afterAll(async () => {
  await tabs?.close();
  await server?.close();
  await removeTempDirs();
});

describe('a benchmark campaign across donor tabs', () => {
  it('stores every honest run once, refuses the repeated and the forged results by name, lists each tab and what it skipped, exports one row per run, and hears of a tab closed mid-campaign', async () => {
    const join = new URL(joinUrl).search.slice(1);
    expect(join).toBe(`campaign=${campaignId}`);
    // The WASM tab's visitor opts in on the page (off by default) instead of following the link.
    const wasm = await tabs.open('ep=wasm');
    const optIn = wasm.page.getByTestId('campaign-opt-in');
    expect(await optIn.isChecked()).toBe(false);
    await optIn.check();
    const webgpu = await tabs.open(`${join}&ep=webgpu`);
    const repeats = await tabs.open(`${join}&ep=wasm&fault=campaign-repeat`, FAULTY_DONOR);
    const forges = await tabs.open(`${join}&ep=wasm&fault=campaign-forge`, FAULTY_DONOR);
    const perTab = WORKLOADS.length * REPETITIONS;
    // The two honest tabs' runs and the repeating tab's first posts are stored; the forger's none.
    const expected = 3 * perTab;
    const deadline = Date.now() + 150_000;
    let s = await status();
    const finished = () => s.reports.filter((r) => r.event === 'finished').length;
    while ((s.campaign.runs < expected || s.refusals.length < 2 * perTab || finished() < 4) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 500));
      s = await status();
    }
    const [wasmPeer, webgpuPeer, repeatPeer, forgePeer] = await Promise.all([wasm, webgpu, repeats, forges].map(peerOf));
    if (s.campaign.runs !== expected) {
      // What each tab made of it, for the failure below.
      for (const tab of [wasm, webgpu, repeats, forges]) console.error(JSON.stringify(((await tab.state()) as { campaign?: unknown; device?: unknown }) ?? {}, ['campaign', 'device', 'id', 'done', 'total', 'refused', 'status', 'note', 'executionProvider', 'msPerLayer']));
      console.error(JSON.stringify(s.refusals));
    }
    const runsOf = (peer?: string) => s.runs.filter((r) => r.peerId === peer);
    expect(runsOf(wasmPeer).map((r) => `${r.provider}/${r.workload}/${r.repetition}`).sort()).toEqual(['wasm/decode-16/0', 'wasm/decode-16/1', 'wasm/prefill-8/0', 'wasm/prefill-8/1']);
    expect(runsOf(webgpuPeer).map((r) => `${r.provider}/${r.workload}/${r.repetition}`).sort()).toEqual(['webgpu/decode-16/0', 'webgpu/decode-16/1', 'webgpu/prefill-8/0', 'webgpu/prefill-8/1']);
    expect(runsOf(repeatPeer)).toHaveLength(perTab);
    expect(runsOf(forgePeer)).toHaveLength(0);
    expect(s.runs.every((r) => r.layers.start === 0 && r.layers.end === 5 && r.tokensPerSecond > 0)).toBe(true);
    expect(s.campaign.runs).toBe(expected);

    const refusedAs = (peer?: string) => s.refusals.filter((r) => r.peerId === peer).map((r) => r.reason);
    expect(refusedAs(repeatPeer)).toEqual(Array(perTab).fill('ReplayedResultError'));
    expect(refusedAs(forgePeer)).toEqual(Array(perTab).fill('CampaignResultSignatureError'));
    expect(refusedAs(wasmPeer)).toEqual([]);

    // A sample of runs is replayed against the reference: the first of each device, provider and workload at least; every honest one passes.
    const checked = () => new Set(s.runs.filter((r) => r.correct === true).map((r) => `${r.provider}/${r.workload}`));
    while (checked().size < 4 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 500));
      s = await status();
    }
    expect([...checked()].sort()).toEqual(['wasm/decode-16', 'wasm/prefill-8', 'webgpu/decode-16', 'webgpu/prefill-8']);
    expect(s.runs.filter((r) => r.correct === false)).toEqual([]);

    // Every run carries its device's GFLOP/s, from the grid's handshake of it.
    expect(s.runs.every((r) => r.deviceGflops !== null && r.deviceGflops > 0)).toBe(true);
    // Each tab joined, said which provider it skipped and why, and finished.
    const reported = (peer?: string) => s.reports.filter((r) => r.peerId === peer).map((r) => `${r.event} ${r.provider}`.trim());
    expect(reported(wasmPeer)).toEqual(['joined', 'skipped webgpu', 'finished']);
    expect(reported(webgpuPeer)).toEqual(['joined', 'skipped wasm', 'finished']);
    expect(s.reports.find((r) => r.peerId === wasmPeer && r.event === 'skipped')?.reason).toBe('this tab computes on wasm: the page was opened with ?ep=wasm');

    const csv = (await (await fetch(new URL(`/api/campaigns/${campaignId}/export?format=csv`, server.url))).text()).trimEnd().split('\r\n');
    expect(csv).toHaveLength(1 + expected);

    // Each tab shows its part: the honest one all its runs done, the cheaters their refusals.
    const progress = async (tab: DonorTab) => ((await tab.state()) as { campaign?: { done: number; total: number; refused: number; status: string } }).campaign;
    expect(await progress(wasm)).toMatchObject({ done: perTab, total: perTab, refused: 0, status: 'finished' });
    expect(await progress(forges)).toMatchObject({ done: 0, refused: perTab });
    expect(await wasm.page.getByTestId('campaign-done').textContent()).toBe(String(perTab));

    // The dashboard the create call linked to shows every run, a row per device and provider, and every refusal.
    const dashboard = await tabs.browser.newPage();
    await dashboard.goto(new URL(`/campaign/?id=${campaignId}`, server.url).href);
    await dashboard.waitForFunction((n) => window.campaignDashboard?.runs === n, expected);
    expect(await dashboard.getByTestId('summary').getAttribute('data-runs')).toBe(String(expected));
    // Every tab runs on this machine's one device: a row for its WASM runs and one for its WebGPU runs.
    const rows = await dashboard.locator('[data-testid="devices"] tr').allTextContents();
    expect(rows).toHaveLength(2);
    expect(rows.find((r) => r.includes('webgpu'))).toMatch(/[1-4] ✓ · 0 ✗/);
    expect(await dashboard.locator('[data-testid="refusals"] tr').count()).toBe(2 * perTab);
    expect(await dashboard.locator('[data-testid="chart-tokens"] canvas').count()).toBe(1);
    expect(await dashboard.locator('[data-testid="chart-scatter"] canvas').count()).toBe(1);
    // A row per tab, every one finished; a row per provider a tab skipped, with why.
    expect(await dashboard.locator('[data-testid="tabs"] tr[data-state="finished"]').count()).toBe(4);
    const skips = await dashboard.locator('[data-testid="failures"] tr').allTextContents();
    expect(skips).toHaveLength(4);
    expect(skips.filter((r) => r.includes('skipped') && r.includes('this tab computes on wasm'))).toHaveLength(3);
    // A picture of it for the docs (INFERMESH_DASHBOARD_SCREENSHOT=docs/campaign-dashboard.png).
    if (process.env.INFERMESH_DASHBOARD_SCREENSHOT) await dashboard.screenshot({ path: process.env.INFERMESH_DASHBOARD_SCREENSHOT, fullPage: true });

    // A second campaign: the opted-in tab joins it (choosing again asks the server at once), and
    // its visitor closes the tab mid-campaign: the page's beacon reports it left.
    const second = (await createCampaign(specOf('e2e-long', 500))).campaign.id;
    await optIn.uncheck();
    await optIn.check();
    await wasm.page.waitForFunction((id) => {
      const c = (window.donor?.state() as { campaign?: { id: string; done: number } } | undefined)?.campaign;
      return c?.id === id && c.done >= 1;
    }, second, { timeout: 60_000 });
    await wasm.page.close();
    let left: Status['reports'][number] | undefined;
    for (const deadline = Date.now() + 10_000; !left && Date.now() < deadline; await new Promise((r) => setTimeout(r, 200))) {
      left = (await status(second)).reports.find((r) => r.peerId === wasmPeer && r.event === 'left');
    }
    expect(left?.reason).toMatch(/^closed after [1-9]\d* of 1000 runs$/);
  });
});
