/**
 * `bench campaign`: how fast the server takes campaign results, and how soon a campaign shows
 * its first one.
 * - resultsPerSecond: signed results the campaigns API verifies and stores per second,
 *   sustained, from `concurrency` clients posting distinct pre-signed results. It runs on a real
 *   HTTP server (signaling-server/http/server.ts) and a campaigns file (node:sqlite, WAL). The
 *   measured devices come from a map, as the grid's registry gives them, so no tab is needed to
 *   load the server; every result passes every check, the signature included.
 * - timeToFirstResultMs: with real tabs. A grid server (stories260K f32) and a donor tab in
 *   headless Chromium. The campaign is created, the tab opens its join link, and the time is
 *   taken when the dashboard page shows the first run. The tab's join, download and load are
 *   part of it, as for a visitor who follows the link.
 */
import { join } from 'node:path';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { signCampaignResult } from '../shared/campaign/result.ts';
import type { SignedCampaignResult } from '../shared/campaign/result.ts';
import type { DeviceSummary } from '../shared/grid/protocol.ts';
import { campaignHandlers } from '../signaling-server/campaigns/campaign-api.ts';
import { openCampaignStore } from '../signaling-server/campaigns/campaign-store.ts';
import { startHttpServer } from '../signaling-server/http/server.ts';
import { startGridServer } from '../signaling-server/grid-server.ts';
import { openDonorTabs } from '../signaling-server/local-grid/donor-tabs.ts';
import { ensureWebApp } from '../signaling-server/local-grid/web-app.ts';
import { openCheckpoint } from '../cli/open-checkpoint.ts';
import { compileTo, removeTempDirs, STORIES_260K, tempDir, TOK_512 } from '../testkit/model-fixtures.ts';
import { machineInfo } from './machine.ts';

export interface CampaignBenchOptions {
  /** clients posting at once */
  concurrency: number;
  /** how long results are posted */
  seconds: number;
  /** campaigns followed from creation to their first result on the dashboard, each on a fresh grid */
  rounds: number;
}

const TABS = 16;
const round = (x: number, digits = 1) => Number(x.toFixed(digits));
const quantile = (sorted: number[], q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];

export async function campaignBench(o: CampaignBenchOptions) {
  try {
    const throughput = await measureThroughput(o);
    const firstResult = [];
    for (let r = 0; r < o.rounds; r++) firstResult.push(await timeToFirstResult());
    const times = firstResult.map((f) => f.timeToFirstResultMs).sort((a, b) => a - b);
    return { machine: machineInfo(), ...throughput, timeToFirstResultMs: times[times.length >> 1], timeToFirstResultRangeMs: [times[0], times.at(-1)], firstResultRounds: firstResult };
  } finally {
    await removeTempDirs();
  }
}

async function measureThroughput({ concurrency, seconds }: CampaignBenchOptions) {
  const store = openCampaignStore(join(await tempDir(), 'campaigns.sqlite'));
  const devices = new Map<string, DeviceSummary>();
  const http = await startHttpServer({
    host: '127.0.0.1',
    port: 0,
    api: campaignHandlers({ store, packages: () => [{ id: 'pkg', name: 'bench', dtype: 'f32' }], device: (id) => devices.get(id), origin: () => 'http://127.0.0.1/' }),
  });
  try {
    const campaign = store.create({
      name: 'bench',
      models: [{ package: 'bench' }],
      workloads: [{ name: 'w', promptTokens: 8, decodeTokens: 16, batch: 1, layers: 'all' }],
      providers: ['wasm'],
      repetitions: 1_000_000,
      warmup: 0,
      target: { runs: 1_000_000 },
      endsAt: new Date(Date.now() + 3_600_000).toISOString(),
    });
    // Enough distinct results for the run: signed before the clock starts.
    const perTab = Math.ceil((seconds * 4000) / TABS);
    const signing = performance.now();
    const bodies: string[] = [];
    for (let t = 0; t < TABS; t++) {
      const key = await generateKeyPair('Ed25519');
      const peerId = peerIdFromPrivateKey(key).toString();
      devices.set(peerId, { executionProvider: 'wasm', msPerLayer: 1, memoryBytes: 1 << 30, signature: `dev-${t}`, label: 'bench' });
      const signed: SignedCampaignResult[] = await Promise.all(
        Array.from({ length: perTab }, (_, repetition) =>
          signCampaignResult({ campaignId: campaign.id, peerId, deviceSignature: `dev-${t}`, provider: 'wasm', adapter: 'bench', workload: 'w', repetition, layers: { start: 0, end: 5 }, promptMs: 3, decodeMs: 40, tokensPerSecond: 400, msPerLayer: 0.5, fingerprint: 'ab'.repeat(60), finishedAt: Date.now() }, key),
        ),
      );
      bodies.push(...signed.map((s) => JSON.stringify(s)));
    }
    const signMs = performance.now() - signing;
    const url = new URL(`/api/campaigns/${campaign.id}/results`, http.url).href;
    const latencies: number[] = [];
    const statuses: Record<number, number> = {};
    let next = 0;
    const started = performance.now();
    const until = started + seconds * 1000;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (performance.now() < until && next < bodies.length) {
          const body = bodies[next++];
          const t0 = performance.now();
          const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
          await res.arrayBuffer();
          latencies.push(performance.now() - t0);
          statuses[res.status] = (statuses[res.status] ?? 0) + 1;
        }
      }),
    );
    const elapsedS = (performance.now() - started) / 1000;
    const stored = store.runs(campaign.id).length;
    latencies.sort((a, b) => a - b);
    return {
      concurrency,
      seconds: round(elapsedS, 2),
      resultsPerSecond: round(stored / elapsedS),
      stored,
      byStatus: statuses,
      p50Ms: round(quantile(latencies, 0.5), 2),
      p99Ms: round(quantile(latencies, 0.99), 2),
      presignedPerSecond: round(bodies.length / (signMs / 1000)),
      ranOutOfResults: next >= bodies.length,
    };
  } finally {
    await http.close();
    store.close();
  }
}

async function timeToFirstResult() {
  await ensureWebApp();
  const { dir } = await compileTo(await openCheckpoint(STORIES_260K, { tokenizer: TOK_512, seed: 0 }), 'f32');
  const server = await startGridServer({ host: '127.0.0.1', port: 0, modelDir: dir, maxLayersPerNode: 5 });
  const tabs = await openDonorTabs(server.url, 0);
  try {
    const dashboard = await tabs.browser.newPage();
    const created = performance.now();
    const answer = await fetch(new URL('/api/campaigns', server.url), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'first result', models: [{ package: server.manifest.name }], workloads: [{ name: 'decode-16', promptTokens: 4, decodeTokens: 16 }], providers: ['wasm'], repetitions: 1, warmup: 1, target: { devices: 1 }, endsAt: new Date(Date.now() + 3_600_000).toISOString() }),
    });
    const { campaign, joinUrl, dashboardUrl } = (await answer.json()) as { campaign: { id: string }; joinUrl: string; dashboardUrl: string };
    await dashboard.goto(dashboardUrl);
    await tabs.open(`${new URL(joinUrl).search.slice(1)}&ep=wasm`);
    await dashboard.waitForFunction(() => (window.campaignDashboard?.runs ?? 0) >= 1, undefined, { timeout: 300_000, polling: 50 });
    const timeToFirstResultMs = Math.round(performance.now() - created);
    return { campaign: campaign.id, timeToFirstResultMs };
  } finally {
    await tabs.close();
    await server.close();
  }
}
