/**
 * The campaigns' HTTP API on a real HTTP server and a campaigns file (node:sqlite): create with
 * a spec checked against the grid's packages, signed results from a tab the grid measured,
 * refusals by name that stay visible, exports with one row per run, and a restart that keeps
 * everything. The grid's registry is stood in by a map of measured devices (the API's `device`
 * dependency); e2e tests give it the real one.
 */
import { join } from 'node:path';
import { generateKeyPair } from '@libp2p/crypto/keys';
import type { PrivateKey } from '@libp2p/interface';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DatabaseSync } from 'node:sqlite';
import { parquetReadObjects } from 'hyparquet';
import { signCampaignResult } from '../../shared/campaign/result.ts';
import type { CampaignResult } from '../../shared/campaign/result.ts';
import { signTabReport } from '../../shared/campaign/tab-report.ts';
import type { CampaignTabReport } from '../../shared/campaign/tab-report.ts';
import type { DeviceSummary } from '../../shared/grid/protocol.ts';
import { removeTempDirs, tempDir } from '../../testkit/model-fixtures.ts';
import { startHttpServer } from '../http/server.ts';
import type { HttpServer } from '../http/server.ts';
import { campaignHandlers } from './campaign-api.ts';
import { CAMPAIGN_MIGRATIONS, MAX_REFUSALS_KEPT, openCampaignStore } from './campaign-store.ts';
import { createGatewayKeys } from '../api-keys/gateway-keys.ts';
import { openKeyStore } from '../api-keys/key-store.ts';
import type { CampaignStore } from './campaign-store.ts';

const SPEC = {
  name: 'two workloads',
  models: [{ package: 'stories260K' }],
  workloads: [
    { name: 'prefill', promptTokens: 16, decodeTokens: 1 },
    { name: 'decode', promptTokens: 4, decodeTokens: 32 },
  ],
  providers: ['wasm', 'webgpu'],
  repetitions: 2,
  target: { devices: 2 },
  endsAt: new Date(Date.now() + 3_600_000).toISOString(),
};

let file: string;
let store: CampaignStore;
let http: HttpServer;
const devices = new Map<string, DeviceSummary>();

async function start(deps: Partial<Parameters<typeof campaignHandlers>[0]> = {}): Promise<void> {
  store = openCampaignStore(file);
  const api = campaignHandlers({
    ...deps,
    store,
    packages: () => [{ id: 'pkg-1', name: 'stories260K', dtype: 'f32' }],
    device: (peerId) => devices.get(peerId),
    origin: () => 'https://grid.example.org/',
  });
  http = await startHttpServer({ host: '127.0.0.1', port: 0, api });
}

async function stop(): Promise<void> {
  await http.close();
  store.close();
}

beforeEach(async () => {
  file = join(await tempDir(), 'campaigns.sqlite');
  await start();
});
afterEach(stop);
afterAll(removeTempDirs);

const post = (path: string, body?: unknown) => fetch(new URL(path, http.url), { method: 'POST', headers: { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
const get = (path: string) => fetch(new URL(path, http.url));

async function created(): Promise<string> {
  const res = await post('/api/campaigns', SPEC);
  expect(res.status).toBe(201);
  const body = (await res.json()) as { campaign: { id: string }; joinUrl: string; dashboardUrl: string };
  expect(body.joinUrl).toBe(`https://grid.example.org/donor/?campaign=${body.campaign.id}`);
  expect(body.dashboardUrl).toBe(`https://grid.example.org/campaign/?id=${body.campaign.id}`);
  return body.campaign.id;
}

/** A tab on the grid: its key, and its device as the handshake measured it (1 ms per layer on WASM). */
async function measuredTab(): Promise<{ key: PrivateKey; peerId: string }> {
  const key = await generateKeyPair('Ed25519');
  const peerId = peerIdFromPrivateKey(key).toString();
  devices.set(peerId, { executionProvider: 'wasm', msPerLayer: 1, memoryBytes: 1 << 30, signature: `dev-${peerId.slice(-6)}`, label: 'wasm, 2 threads', gflops: 42 });
  return { key, peerId };
}

const run = (campaignId: string, peerId: string, change: Partial<CampaignResult> = {}): CampaignResult => ({
  campaignId,
  peerId,
  deviceSignature: devices.get(peerId)?.signature ?? 'dev-unknown',
  provider: 'wasm',
  adapter: 'wasm, 2 threads, "fast", really',
  workload: 'decode',
  repetition: 0,
  layers: { start: 0, end: 2 },
  promptMs: 20,
  decodeMs: 310,
  tokensPerSecond: 100,
  msPerLayer: 1.1,
  fingerprint: 'c0ffee',
  finishedAt: Date.now(),
  ...change,
});

const tabReport = (campaignId: string, peerId: string, event: CampaignTabReport['event'], change: Partial<CampaignTabReport> = {}): CampaignTabReport => ({
  campaignId,
  peerId,
  deviceSignature: devices.get(peerId)?.signature ?? 'dev-unknown',
  adapter: 'wasm, 2 threads',
  tabProvider: 'wasm',
  event,
  provider: '',
  workload: '',
  planned: 0,
  reason: '',
  at: Date.now(),
  ...change,
});

const errorOf = async (res: Response) => ({ status: res.status, ...((await res.json()) as { error: { code: string; param: string | null; message: string } }).error });

describe('the campaigns API', () => {
  it('creates a campaign and lists it, with its join and dashboard links', async () => {
    const id = await created();
    const list = (await (await get('/api/campaigns')).json()) as { campaigns: { id: string; state: string; runsPerDevice: number }[] };
    expect(list.campaigns).toEqual([expect.objectContaining({ id, state: 'running', runsPerDevice: 8 })]);
  });

  it.each([
    ['an unknown model', { models: [{ package: 'llama-405b' }] }, 'models[0].package'],
    ['a dtype the grid does not serve', { models: [{ package: 'stories260K', dtypes: ['q4'] }] }, 'models[0].dtypes'],
    ['negative tokens', { workloads: [{ name: 'w', promptTokens: 1, decodeTokens: -1 }] }, 'workloads[0].decodeTokens'],
    ['an unknown execution provider', { providers: ['npu'] }, 'providers[0]'],
    ['an end before its start', { startsAt: '2030-01-02T00:00:00Z', endsAt: '2030-01-01T00:00:00Z' }, 'endsAt'],
  ])('refuses a spec with %s: 400, naming the field', async (_what, change, field) => {
    const error = await errorOf(await post('/api/campaigns', { ...SPEC, ...change }));
    expect(error).toMatchObject({ status: 400, code: 'invalid_campaign_spec', param: field });
    expect(error.message).toContain(field);
  });

  it('stores signed results from measured tabs, refuses forged, duplicated, replayed and impossible ones by name, and keeps the refusals', async () => {
    const id = await created();
    const a = await measuredTab();
    const b = await measuredTab();
    const good = await signCampaignResult(run(id, a.peerId), a.key);
    expect((await post(`/api/campaigns/${id}/results`, good)).status).toBe(201);
    expect((await post(`/api/campaigns/${id}/results`, await signCampaignResult(run(id, b.peerId, { repetition: 1 }), b.key))).status).toBe(201);

    const refused = [
      // the same submission again
      [good, 409, 'ReplayedResultError'],
      // another result for a run already stored
      [await signCampaignResult(run(id, a.peerId, { decodeMs: 200 }), a.key), 409, 'DuplicateResultError'],
      // signed by b in a's name
      [await signCampaignResult(run(id, a.peerId, { repetition: 1 }), b.key), 403, 'CampaignResultSignatureError'],
      // 20x faster than a's device measured
      [await signCampaignResult(run(id, a.peerId, { repetition: 1, msPerLayer: 0.05 }), a.key), 422, 'ImpossibleFigureError'],
      // from another device than a joined with
      [await signCampaignResult(run(id, a.peerId, { repetition: 1, deviceSignature: 'dev-other' }), a.key), 403, 'UnknownDeviceError'],
      // a workload the campaign does not have
      [await signCampaignResult(run(id, a.peerId, { workload: 'train' }), a.key), 409, 'OutsideCampaignError'],
    ] as const;
    for (const [body, status, code] of refused) expect(await errorOf(await post(`/api/campaigns/${id}/results`, body))).toMatchObject({ status, code });
    // A tab the grid never measured.
    const stranger = await generateKeyPair('Ed25519');
    const strangerId = peerIdFromPrivateKey(stranger).toString();
    expect(await errorOf(await post(`/api/campaigns/${id}/results`, await signCampaignResult(run(id, strangerId), stranger)))).toMatchObject({ status: 403, code: 'UnknownDeviceError' });

    const status = (await (await get(`/api/campaigns/${id}`)).json()) as { campaign: { runs: number; devices: number; refused: number }; refusals: { reason: string }[] };
    expect(status.campaign).toMatchObject({ runs: 2, devices: 2, refused: 7 });
    expect(status.refusals.map((r) => r.reason)).toEqual([...refused.map(([, , code]) => code), 'UnknownDeviceError']);
    // Refused before its signature held, a submission is only a claim of the tab it names.
    expect((status.refusals as { reason: string; verified?: boolean }[]).filter((r) => !r.verified).map((r) => r.reason)).toEqual(['CampaignResultSignatureError']);
  });

  it('exports exactly one row per run, as CSV, JSON Lines and Parquet', async () => {
    const id = await created();
    const a = await measuredTab();
    for (const [workload, repetition] of [['prefill', 0], ['prefill', 1], ['decode', 0]] as const) {
      expect((await post(`/api/campaigns/${id}/results`, await signCampaignResult(run(id, a.peerId, { workload, repetition }), a.key))).status).toBe(201);
    }
    const csv = await get(`/api/campaigns/${id}/export?format=csv`);
    expect(csv.headers.get('content-type')).toBe('text/csv; charset=utf-8');
    const lines = (await csv.text()).trimEnd().split('\r\n');
    expect(lines[0]).toBe('campaign,peer_id,device_signature,provider,adapter,workload,repetition,layers,prompt_ms,decode_ms,tokens_per_second,ms_per_layer,device_gflops,correct,finished_at,received_at');
    expect(lines).toHaveLength(4);
    expect(lines[1]).toContain(`${id},${a.peerId},`);
    // The adapter has a comma and quotes: quoted, quotes doubled.
    expect(lines[1]).toContain('"wasm, 2 threads, ""fast"", really"');
    // The device's GFLOP/s, from the grid's handshake of it, not from the tab's result.
    expect(lines[1]).toContain(',1.1,42,,');
    const jsonl = (await (await get(`/api/campaigns/${id}/export?format=jsonl`)).text()).trimEnd().split('\n').map((l) => JSON.parse(l));
    expect(jsonl.map((r) => [r.workload, r.repetition])).toEqual([['prefill', 0], ['prefill', 1], ['decode', 0]]);
    // Parquet: the same rows with typed columns, read back by another library than the one that wrote it.
    const parquet = await get(`/api/campaigns/${id}/export?format=parquet`);
    expect(parquet.headers.get('content-type')).toBe('application/vnd.apache.parquet');
    const rows = await parquetReadObjects({ file: await parquet.arrayBuffer() });
    expect(rows.map((r) => [r.workload, r.repetition, r.device_gflops, r.correct])).toEqual([['prefill', 0, 42, null], ['prefill', 1, 42, null], ['decode', 0, 42, null]]);
    expect(rows[0].finished_at).toEqual(new Date(jsonl[0].finished_at));
    expect(rows[0].adapter).toBe('wasm, 2 threads, "fast", really');
    expect(await errorOf(await get(`/api/campaigns/${id}/export?format=xlsx`))).toMatchObject({ status: 400, param: 'format' });
  });

  it("keeps each tab's signed reports (joined, skipped, failed, finished), once each, and refuses those out of turn or from strangers by name", async () => {
    const id = await created();
    const a = await measuredTab();
    const send = async (r: CampaignTabReport, key = a.key) => post(`/api/campaigns/${id}/reports`, await signTabReport(r, key));
    // Nothing but joined comes first.
    expect(await errorOf(await send(tabReport(id, a.peerId, 'skipped', { provider: 'webgpu', reason: 'no adapter' })))).toMatchObject({ status: 409, code: 'OutsideCampaignError' });
    expect((await send(tabReport(id, a.peerId, 'joined', { planned: 4 }))).status).toBe(201);
    expect((await send(tabReport(id, a.peerId, 'skipped', { provider: 'webgpu', reason: 'no adapter' }))).status).toBe(201);
    expect((await send(tabReport(id, a.peerId, 'failed', { provider: 'wasm', workload: 'decode', reason: 'RangeError: out of memory' }))).status).toBe(201);
    expect((await send(tabReport(id, a.peerId, 'finished', { reason: '2 of 4 runs stored' }))).status).toBe(201);

    const b = await measuredTab();
    const stranger = await generateKeyPair('Ed25519');
    const strangerId = peerIdFromPrivateKey(stranger).toString();
    const refused = [
      // the same event again
      [await send(tabReport(id, a.peerId, 'skipped', { provider: 'webgpu', reason: 'again' })), 409, 'DuplicateReportError'],
      // b's key in a's name
      [await send(tabReport(id, a.peerId, 'left'), b.key), 403, 'CampaignResultSignatureError'],
      // a workload the campaign does not have
      [await send(tabReport(id, b.peerId, 'joined', { workload: 'train' }), b.key), 409, 'OutsideCampaignError'],
      // more runs than a device can post
      [await send(tabReport(id, b.peerId, 'joined', { planned: 9 }), b.key), 409, 'OutsideCampaignError'],
      // a provider other than the device's
      [await send(tabReport(id, b.peerId, 'joined', { tabProvider: 'webgpu' }), b.key), 403, 'UnknownDeviceError'],
      // a tab the grid never measured
      [await send(tabReport(id, strangerId, 'joined'), stranger), 403, 'UnknownDeviceError'],
    ] as const;
    for (const [res, status, code] of refused) expect(await errorOf(res)).toMatchObject({ status, code });
    expect(await errorOf(await post(`/api/campaigns/${id}/reports`, { report: { event: 'joined' }, signature: 'x' }))).toMatchObject({ status: 400, code: 'CampaignResultFormatError' });

    // Once stopped, a tab may still say it left or finished, and nothing else.
    expect((await send(tabReport(id, b.peerId, 'joined', { planned: 2 }), b.key)).status).toBe(201);
    expect((await post(`/api/campaigns/${id}/stop`)).status).toBe(200);
    expect(await errorOf(await send(tabReport(id, b.peerId, 'skipped', { provider: 'webgpu' }), b.key))).toMatchObject({ status: 409, code: 'OutsideCampaignError' });
    expect((await send(tabReport(id, b.peerId, 'left', { reason: 'closed after 0 of 2 runs' }), b.key)).status).toBe(201);

    const status = (await (await get(`/api/campaigns/${id}`)).json()) as { reports: { peerId: string; event: string; reason: string }[]; refusals: { reason: string }[]; serverTime: number };
    expect(status.reports.map((r) => `${r.peerId === a.peerId ? 'a' : 'b'} ${r.event}`)).toEqual(['a joined', 'a skipped', 'a failed', 'a finished', 'b joined', 'b left']);
    expect(status.refusals.map((r) => r.reason)).toEqual(['OutsideCampaignError', ...refused.map(([, , code]) => code), 'CampaignResultFormatError', 'OutsideCampaignError']);
    expect(Math.abs(status.serverTime - Date.now())).toBeLessThan(60_000);

    // The summary export: the dashboard's tables as one JSON document.
    const summary = (await (await get(`/api/campaigns/${id}/export?format=summary`)).json()) as { tabs: { peerId: string; state: string }[]; failures: { event: string; what: string; reason: string }[] };
    expect(summary.tabs.map((t) => [t.peerId === a.peerId ? 'a' : 'b', t.state])).toEqual([['b', 'left'], ['a', 'finished']]);
    expect(summary.failures).toEqual([expect.objectContaining({ event: 'skipped', what: 'webgpu', reason: 'no adapter' }), expect.objectContaining({ event: 'failed', what: 'decode on wasm', reason: 'RangeError: out of memory' })]);
  });

  it('keeps the newest refusals of a campaign and counts every one: malformed posts cannot grow the file without end', async () => {
    const id = await created();
    for (let i = 0; i < MAX_REFUSALS_KEPT + 5; i++) store.refuse(id, { peerId: `p${i}`, verified: false, reason: 'CampaignResultFormatError', message: 'junk', receivedAt: i });
    const kept = store.refusals(id);
    expect(kept).toHaveLength(MAX_REFUSALS_KEPT);
    expect([kept[0].peerId, kept.at(-1)!.peerId]).toEqual(['p5', `p${MAX_REFUSALS_KEPT + 4}`]);
    expect(store.counts(id).refused).toBe(MAX_REFUSALS_KEPT + 5);
  });

  it('opens a campaigns file of the first schema: its runs and refusals kept, with no GFLOP/s', async () => {
    await stop();
    const old = join(await tempDir(), 'campaigns.sqlite');
    const db = new DatabaseSync(old);
    db.exec(CAMPAIGN_MIGRATIONS[0]);
    db.exec('PRAGMA user_version = 1');
    db.prepare('INSERT INTO campaigns (id, spec, created_at) VALUES (?, ?, ?)').run('cmp_old', JSON.stringify(SPEC), 1);
    db.prepare(
      `INSERT INTO runs (campaign_id, peer_id, device_signature, provider, adapter, workload, repetition, layers_start, layers_end, prompt_ms, decode_ms, tokens_per_second, ms_per_layer, fingerprint, finished_at, correct, received_at, signature)
       VALUES ('cmp_old', 'p', 'd', 'wasm', 'a', 'decode', 0, 0, 2, 1, 2, 3, 4, 'ab', 5, NULL, 6, 'sig')`,
    ).run();
    db.exec(`INSERT INTO refusals (campaign_id, peer_id, reason, message, received_at) VALUES ('cmp_old', 'p', 'ReplayedResultError', 'a replay', 7), ('cmp_old', 'q', 'CampaignResultSignatureError', 'forged', 8)`);
    db.close();
    file = old;
    await start();
    const status = (await (await get('/api/campaigns/cmp_old')).json()) as { campaign: { refused: number }; runs: { deviceGflops: number | null; tokensPerSecond: number }[]; reports: unknown[]; refusals: { peerId: string; verified: boolean }[] };
    expect(status.runs).toEqual([expect.objectContaining({ tokensPerSecond: 3, deviceGflops: null })]);
    expect(status.reports).toEqual([]);
    // Its refusals counted, and a forged one marked as only a claim of its tab.
    expect(status.campaign.refused).toBe(2);
    expect(status.refusals.map((r) => [r.peerId, r.verified])).toEqual([['p', true], ['q', false]]);
  });

  it("takes the grid's API keys to create and stop campaigns where it requires them, and none to read them or post to them", async () => {
    await stop();
    const keyStore = openKeyStore(join(await tempDir(), 'keys.sqlite'));
    const { secret } = keyStore.create('researcher', {});
    const keys = createGatewayKeys({ required: true }, { keys: keyStore });
    await start({ admit: (headers) => void keys.admit(headers) });
    try {
      expect(await errorOf(await post('/api/campaigns', SPEC))).toMatchObject({ status: 401, code: 'missing_api_key' });
      const withKey = (path: string, body?: unknown) => fetch(new URL(path, http.url), { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${secret}` }, body: body === undefined ? undefined : JSON.stringify(body) });
      const res = await withKey('/api/campaigns', SPEC);
      expect(res.status).toBe(201);
      const { id } = ((await res.json()) as { campaign: { id: string } }).campaign;
      const a = await measuredTab();
      expect((await post(`/api/campaigns/${id}/results`, await signCampaignResult(run(id, a.peerId), a.key))).status).toBe(201);
      expect((await get(`/api/campaigns/${id}`)).status).toBe(200);
      expect(await errorOf(await post(`/api/campaigns/${id}/stop`))).toMatchObject({ status: 401, code: 'missing_api_key' });
      expect((await withKey(`/api/campaigns/${id}/stop`)).status).toBe(200);
    } finally {
      keyStore.close();
    }
  });

  it('takes no results once stopped, and answers an unknown campaign with 404', async () => {
    const id = await created();
    const a = await measuredTab();
    expect((await post(`/api/campaigns/${id}/stop`)).status).toBe(200);
    expect(await errorOf(await post(`/api/campaigns/${id}/results`, await signCampaignResult(run(id, a.peerId), a.key)))).toMatchObject({ status: 409, code: 'OutsideCampaignError' });
    expect(await errorOf(await get('/api/campaigns/cmp_nope'))).toMatchObject({ status: 404, code: 'campaign_not_found' });
  });

  it('keeps campaigns, runs and refusals across a restart', async () => {
    const id = await created();
    const a = await measuredTab();
    const good = await signCampaignResult(run(id, a.peerId), a.key);
    expect((await post(`/api/campaigns/${id}/results`, good)).status).toBe(201);
    expect((await post(`/api/campaigns/${id}/results`, good)).status).toBe(409);
    await stop();
    await start();
    const status = (await (await get(`/api/campaigns/${id}`)).json()) as { campaign: { runs: number; refused: number }; runs: CampaignResult[] };
    expect(status.campaign).toMatchObject({ runs: 1, refused: 1 });
    expect(status.runs[0]).toMatchObject({ peerId: a.peerId, decodeMs: 310, deviceGflops: 42 });
    // Still a replay after the restart.
    expect(await errorOf(await post(`/api/campaigns/${id}/results`, good))).toMatchObject({ status: 409, code: 'ReplayedResultError' });
  });
});
