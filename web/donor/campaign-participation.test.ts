/**
 * A donor tab's campaigns end to end below the page: the participation and the runner on a real
 * shard engine (onnxruntime-node's CPU provider standing in for a tab's onnxruntime-web WASM;
 * the campaign is told "wasm") posting to the real campaigns API over HTTP and
 * SQLite. A join link's campaign runs and is reported joined, skipped (the provider it does not
 * compute on) and finished; an opted-in tab finds the running campaign of its model and not
 * another model's; opting out mid-campaign reports it left; a closing page hands over a signed
 * `left` report to send as a beacon, which the server takes; leaving says so too.
 */
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { generateKeyPair } from '@libp2p/crypto/keys';
import type { PrivateKey } from '@libp2p/interface';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openCheckpoint } from '../../cli/open-checkpoint.ts';
import type { DeviceSummary } from '../../shared/grid/protocol.ts';
import type { Manifest } from '../../shared/model/manifest.ts';
import { campaignHandlers } from '../../signaling-server/campaigns/campaign-api.ts';
import { openCampaignStore } from '../../signaling-server/campaigns/campaign-store.ts';
import type { CampaignStore } from '../../signaling-server/campaigns/campaign-store.ts';
import { startHttpServer } from '../../signaling-server/http/server.ts';
import type { HttpServer } from '../../signaling-server/http/server.ts';
import { compileTo, packageBytes, removeTempDirs, STORIES_260K, TOK_512, tempDir } from '../../testkit/model-fixtures.ts';
import { createShardEngine } from '../../worker/engine.ts';
import type { EngineOrt } from '../../worker/engine.ts';
import { createCampaignParticipation } from './campaign-participation.ts';
import type { CampaignParticipationDeps } from './campaign-participation.ts';
import type { CampaignProgress } from './campaign-runner.ts';

const LAYERS = { start: 0, end: 5 };
let engine: ReturnType<typeof createShardEngine>;
let manifest: Manifest;
let store: CampaignStore;
let http: HttpServer;
const devices = new Map<string, DeviceSummary>();

beforeAll(async () => {
  const compiled = await compileTo(await openCheckpoint(STORIES_260K, { tokenizer: TOK_512, seed: 0 }), 'f32');
  manifest = compiled.manifest;
  engine = createShardEngine({ ort: ort as unknown as EngineOrt });
  await engine.load({ modelId: manifest.id, layers: LAYERS, source: await packageBytes(compiled.dir), executionProviders: ['cpu'] });
  store = openCampaignStore(join(await tempDir(), 'campaigns.sqlite'));
  const packages = () => [{ id: manifest.id, name: manifest.name, dtype: 'f32' }, { id: 'pkg-llama', name: 'llama', dtype: 'q4' }];
  http = await startHttpServer({ host: '127.0.0.1', port: 0, api: campaignHandlers({ store, packages, device: (peerId) => devices.get(peerId), origin: () => 'http://grid.test/' }) });
}, 120_000);
afterAll(async () => {
  await http?.close();
  store?.close();
  await engine?.unload();
  await removeTempDirs();
});

async function campaign(model: string, repetitions: number): Promise<string> {
  const spec = { name: model, models: [{ package: model }], workloads: [{ name: 'short', promptTokens: 4, decodeTokens: 2 }], providers: ['webgpu', 'wasm'], repetitions, warmup: 0, target: { devices: 1 }, endsAt: new Date(Date.now() + 3_600_000).toISOString() };
  const res = await fetch(new URL('/api/campaigns', http.url), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(spec) });
  expect(res.status).toBe(201);
  return ((await res.json()) as { campaign: { id: string } }).campaign.id;
}

/** A tab the grid measured, and its participation; `seen` has its progress as the page would show it. */
async function tab(o: { joinLink?: string; optedIn: boolean }, more: Partial<CampaignParticipationDeps> = {}) {
  const key: PrivateKey = await generateKeyPair('Ed25519');
  const peerId = peerIdFromPrivateKey(key).toString();
  const device: DeviceSummary = { executionProvider: 'wasm', msPerLayer: 0.1, memoryBytes: 1 << 30, signature: `dev-${peerId.slice(-6)}`, label: 'test CPU', gflops: 5 };
  devices.set(peerId, device);
  const seen: CampaignProgress[] = [];
  const participation = createCampaignParticipation(
    { ...o, serverUrl: http.url, peerId, device, dim: manifest.config.dim, model: { id: manifest.id, name: manifest.name }, providerReason: 'the page was opened with ?ep=wasm' },
    { engine, privateKey: key, lastServedAt: () => -Infinity, progress: (p) => p && seen.push(p), ...more },
  );
  return { peerId, participation, seen, last: () => seen.at(-1) };
}

const until = async (what: () => boolean, ms = 30_000) => {
  const deadline = Date.now() + ms;
  while (!what()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
};
const events = (id: string, peerId: string) => store.reports(id).filter((r) => r.peerId === peerId).map((r) => `${r.event} ${r.provider}${r.workload}`.trim());

describe("a donor tab's benchmark campaigns", () => {
  it("runs its join link's campaign once it serves, reporting what it skipped and that it finished", async () => {
    const id = await campaign(manifest.name, 2);
    const t = await tab({ joinLink: id, optedIn: false });
    t.participation.serving(LAYERS);
    await until(() => t.last()?.status === 'finished');
    t.participation.stop();
    expect(t.last()).toMatchObject({ id, done: 2, total: 2, refused: 0 });
    expect(store.runs(id).map((r) => [r.peerId, r.provider, r.repetition, r.deviceGflops])).toEqual([[t.peerId, 'wasm', 0, 5], [t.peerId, 'wasm', 1, 5]]);
    expect(events(id, t.peerId)).toEqual(['joined', 'skipped webgpu', 'finished']);
    expect(store.reports(id)[1].reason).toBe('this tab computes on wasm: the page was opened with ?ep=wasm');
  });

  it("opted in, joins the running campaign of its model (not another model's); opting out leaves it, and a closing page's beacon says so", async () => {
    const other = await campaign('llama', 1);
    const id = await campaign(manifest.name, 200);
    const beacons: { url: string; body: string }[] = [];
    const t = await tab({ optedIn: false }, { beacon: (url, body) => beacons.push({ url, body }) });
    t.participation.serving(LAYERS);
    t.participation.optIn(true);
    await until(() => (t.last()?.id === id && t.last()!.done >= 1) || t.last()?.id === other);
    expect(t.last()?.id).toBe(id);

    // The page closes: the report it hands over is signed and taken as it is.
    t.participation.pageClosing();
    expect(beacons).toHaveLength(1);
    expect(beacons[0].url).toBe(new URL(`/api/campaigns/${id}/reports`, http.url).href);
    const beaconed = await fetch(beacons[0].url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: beacons[0].body });
    expect(beaconed.status).toBe(201);
    expect(((await beaconed.json()) as { report: { reason: string } }).report.reason).toMatch(/^closed after [1-9]\d* of 200 runs$/);

    // Opting out stops it between runs: reported left (the closing report already is, so the server refuses a second).
    t.participation.optIn(false);
    await until(() => t.last()?.status === 'left');
    t.participation.stop();
    expect(t.last()!.done).toBeLessThan(200);
    expect(store.runs(id).filter((r) => r.peerId === t.peerId)).toHaveLength(t.last()!.done);
    expect(events(id, t.peerId)).toEqual(['joined', 'skipped webgpu', 'left']);
    expect(t.last()?.note).toMatch(/^refused: DuplicateReportError: .* already reported left/);
    expect(store.refusals(id).map((r) => r.reason)).toEqual(['DuplicateReportError']);
    expect(events(other, t.peerId)).toEqual([]);
  });

  it('leaves the campaign under way when its visitor asks, saying so, and runs nothing more of it', async () => {
    const id = await campaign(manifest.name, 200);
    const t = await tab({ joinLink: id, optedIn: false });
    t.participation.serving(LAYERS);
    await until(() => (t.last()?.done ?? 0) >= 1);
    t.participation.leave();
    await until(() => t.last()?.status === 'left');
    t.participation.stop();
    const left = store.reports(id).find((r) => r.peerId === t.peerId && r.event === 'left');
    expect(left?.reason).toBe(`left the campaign after ${t.last()!.done} of 200 runs`);
    expect(store.runs(id).filter((r) => r.peerId === t.peerId)).toHaveLength(t.last()!.done);
  });

  it('leaves a campaign when the tab is given other layers, and goes on asking the server after an answer that is not the list', async () => {
    const id = await campaign(manifest.name, 200);
    // The earlier tests' campaigns stopped: an opted-in tab would run them first.
    for (const c of store.list()) if (c.id !== id) store.stop(c.id);
    let answers = 0;
    // The first answer for the list is a proxy's error page with status 200.
    const flaky: typeof fetch = async (input, init) => (String(input).endsWith('/api/campaigns') && answers++ === 0 ? new Response('<html>bad gateway</html>', { status: 200 }) : fetch(input, init));
    const t = await tab({ optedIn: true }, { fetch: flaky });
    t.participation.serving(LAYERS);
    await until(() => answers > 0);
    // The loop survived the bad answer: choosing again asks at once.
    t.participation.optIn(true);
    await until(() => t.last()?.id === id && t.last()!.done >= 1);
    t.participation.serving({ start: 0, end: 2 });
    await until(() => t.last()?.status === 'left');
    t.participation.stop();
    expect(store.reports(id).find((r) => r.peerId === t.peerId && r.event === 'left')?.reason).toBe(`the tab was given other layers after ${t.last()!.done} of 200 runs`);
    expect(store.runs(id).filter((r) => r.peerId === t.peerId).every((r) => r.layers.end === LAYERS.end)).toBe(true);
  });
});
