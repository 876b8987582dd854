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
import { signCampaignResult } from '../../shared/campaign/result.ts';
import type { CampaignResult } from '../../shared/campaign/result.ts';
import type { DeviceSummary } from '../../shared/grid/protocol.ts';
import { removeTempDirs, tempDir } from '../../testkit/model-fixtures.ts';
import { startHttpServer } from '../http/server.ts';
import type { HttpServer } from '../http/server.ts';
import { campaignHandlers } from './campaign-api.ts';
import { openCampaignStore } from './campaign-store.ts';
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

async function start(): Promise<void> {
  store = openCampaignStore(file);
  const api = campaignHandlers({
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
  devices.set(peerId, { executionProvider: 'wasm', msPerLayer: 1, memoryBytes: 1 << 30, signature: `dev-${peerId.slice(-6)}`, label: 'wasm, 2 threads' });
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
  });

  it('exports exactly one row per run, as CSV and JSON Lines', async () => {
    const id = await created();
    const a = await measuredTab();
    for (const [workload, repetition] of [['prefill', 0], ['prefill', 1], ['decode', 0]] as const) {
      expect((await post(`/api/campaigns/${id}/results`, await signCampaignResult(run(id, a.peerId, { workload, repetition }), a.key))).status).toBe(201);
    }
    const csv = await get(`/api/campaigns/${id}/export?format=csv`);
    expect(csv.headers.get('content-type')).toBe('text/csv; charset=utf-8');
    const lines = (await csv.text()).trimEnd().split('\r\n');
    expect(lines[0]).toBe('campaign,peer_id,device_signature,provider,adapter,workload,repetition,layers,prompt_ms,decode_ms,tokens_per_second,ms_per_layer,correct,finished_at,received_at');
    expect(lines).toHaveLength(4);
    expect(lines[1]).toContain(`${id},${a.peerId},`);
    // The adapter has a comma and quotes: quoted, quotes doubled.
    expect(lines[1]).toContain('"wasm, 2 threads, ""fast"", really"');
    const jsonl = (await (await get(`/api/campaigns/${id}/export?format=jsonl`)).text()).trimEnd().split('\n').map((l) => JSON.parse(l));
    expect(jsonl.map((r) => [r.workload, r.repetition])).toEqual([['prefill', 0], ['prefill', 1], ['decode', 0]]);
    expect(await errorOf(await get(`/api/campaigns/${id}/export?format=xlsx`))).toMatchObject({ status: 400, param: 'format' });
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
    expect(status.runs[0]).toMatchObject({ peerId: a.peerId, decodeMs: 310 });
    // Still a replay after the restart.
    expect(await errorOf(await post(`/api/campaigns/${id}/results`, good))).toMatchObject({ status: 409, code: 'ReplayedResultError' });
  });
});
