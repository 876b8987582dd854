/**
 * The stage faults in real donor tabs on a paid grid (a local anvil with the Settlement
 * contract): `?fault=` makes one headless Chromium tab serve the whole of stories260K f32
 * dishonestly from its engine worker (testkit/engine/stage-faults.ts, WASM or WebGPU), requests go through it
 * by the OpenAI gateway, and the server's validator gives that tab a failing verdict, confirmed
 * by a second replay. Then the tab's sponsored stake is slashed on chain to the treasury with
 * the evidence hash, the tab is told and banned (peer id and device signature), and no route
 * goes through it any more. A fault that does not parse stops the tab with the typed error on
 * the page instead of letting it serve honestly. Detection latency (requests until the failing
 * verdict) is printed per fault.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openCheckpoint } from '../cli/open-checkpoint.ts';
import { compileTo, removeTempDirs, STORIES_260K, TOK_512 } from '../testkit/model-fixtures.ts';
import { openDonorTabs } from '../signaling-server/local-grid/donor-tabs.ts';
import type { DonorTab, DonorTabs } from '../signaling-server/local-grid/donor-tabs.ts';
import { startGridServer } from '../signaling-server/grid-server.ts';
import type { GridServer } from '../signaling-server/grid-server.ts';
import { openGridStore } from '../signaling-server/store.ts';
import type { GridStore } from '../signaling-server/store.ts';
import { join } from 'node:path';
import { parseEther } from 'viem';
import { tempDir } from '../testkit/model-fixtures.ts';
import { startGridSettlement } from '../signaling-server/settle/grid-settlement.ts';
import type { GridSettlement } from '../signaling-server/settle/grid-settlement.ts';
import { settlementTotals } from '../shared/settle/settlement-client.ts';
import { FAULTY_DONOR, TEST_PAGE_ROUTES } from '../testkit/pages/paths.ts';

const FAULTS = ['other-model', 'q4-weights', 'skip-layer', 'noise:0.01', 'replay-old-output'];
const MAX_REQUESTS = 3;

let server: GridServer;
let store: GridStore;
let settlement: GridSettlement;
let tabs: DonorTabs;
const latency: Record<string, { requests: number | null; executionProvider: unknown; slashedEth: string | null }> = {};

async function serving(tab: DonorTab): Promise<string> {
  await tab.page.waitForFunction(() => (window as unknown as { donor?: { state(): { status: string } } }).donor?.state().status === 'serving', null, { timeout: 120_000 });
  return ((await tab.state()) as { peerId: string }).peerId;
}

async function complete(): Promise<number> {
  const body = { model: server.manifest.id, prompt: 'Once upon a time', max_tokens: 12, temperature: 0 };
  const response = await fetch(new URL('v1/completions', server.url), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  await response.arrayBuffer();
  return response.status;
}

/** Waits until the peer has at least `count` verdicts. */
async function verdictsOf(peerId: string, count: number) {
  const deadline = Date.now() + 30_000;
  for (;;) {
    await server.validator.idle();
    const verdicts = store.verdicts({ peerId });
    if (verdicts.length >= count) return verdicts;
    if (Date.now() > deadline) throw new Error(`${peerId} has ${verdicts.length} verdicts after 30 s, expected ${count}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

let dir: string;

/** A fresh grid per tab: a caught tab's device signature is banned, and every tab here shares one device. */
async function startGrid(): Promise<void> {
  store = openGridStore(':memory:');
  // The tabs here share this machine's device signature: each is bonded all the same.
  settlement = await startGridSettlement({ ledgerPath: join(await tempDir(), 'ledger.sqlite'), settleIntervalMs: 3_600_000, sponsorOncePerDevice: false });
  // One tab covers the model, so every request's route is the tab under test.
  server = await startGridServer({ host: '127.0.0.1', port: 0, modelDir: dir, maxLayersPerNode: 5, staticRoutes: TEST_PAGE_ROUTES }, { store, settlement });
  tabs = await openDonorTabs(server.url, 0);
}

async function stopGrid(): Promise<void> {
  await tabs?.close();
  await server?.close();
  await settlement?.close();
  store?.close();
}

/** Waits until the chain holds the tab's sponsored stake (staked when it said hello). */
async function staked(peerId: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (!(await (await fetch(new URL(`v1/ledger/peers/${peerId}`, server.url))).json().then((e: { stake?: string }) => e.stake === parseEther('0.1').toString()))) {
    if (Date.now() > deadline) throw new Error(`no stake for ${peerId} after 15 s`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

beforeAll(async () => {
  ({ dir } = await compileTo(await openCheckpoint(STORIES_260K, { tokenizer: TOK_512, seed: 0 }), 'f32'));
});

afterAll(async () => {
  console.log('\ndetection latency in a real tab (stories260K f32, the tab serves all 5 layers, 12-token requests)');
  console.table(latency);
  await removeTempDirs();
});

describe('?fault= on the donor page', () => {
  it('a fault that does not parse stops the tab with a StageFaultError shown on the page', async () => {
    await startGrid();
    const tab = await tabs.open('fault=noise:lots', FAULTY_DONOR);
    await tab.page.waitForSelector('[data-testid="error"]:not([hidden])', { timeout: 30_000 });
    expect(await tab.page.textContent('[data-testid="error"]')).toMatch(/^StageFaultError: bad stage fault "noise:lots": noise size "lots" is not a positive number/);
    expect(await tab.donorErrors()).toEqual([expect.stringMatching(/^StageFaultError/)]);
    expect(await tab.state()).toBeNull();
    await stopGrid();
  });

  for (const fault of FAULTS) {
    it(`${fault}: the tab serves with it and the validator's verdict against it fails`, async () => {
      await startGrid();
      const tab = await tabs.open(`fault=${fault}`, FAULTY_DONOR);
      try {
        const peerId = await serving(tab);
        await server.coordinator.waitForCoverage(1, 60_000);
        await staked(peerId);
        const treasuryBefore = await settlement.reader.getBalance({ address: settlement.chain.treasury });
        let requests = 0;
        let failed = false;
        while (!failed && requests < MAX_REQUESTS) {
          requests++;
          expect(await complete()).toBe(200);
          failed = (await verdictsOf(peerId, requests)).some((v) => !v.ok);
        }
        const verdict = store.verdicts({ peerId }).find((v) => !v.ok);
        expect(verdict).toMatchObject({ ok: false, confirmed: true });

        // Slashed on chain: the whole stake to the treasury, the evidence hash on record; money conserved.
        await server.coordinator.waitFor((r) => r.isBanned(peerId), 'the cheat banned', 15_000);
        const slashed = (await settlement.reader.getBalance({ address: settlement.chain.treasury })) - treasuryBefore;
        expect(slashed).toBe(parseEther('0.1'));
        expect(settlement.ledger.slashes()).toEqual([expect.objectContaining({ peerId, evidenceHash: `0x${verdict!.evidenceHash}` })]);
        const totals = await settlementTotals(settlement.reader, { settlement: settlement.chain.contract });
        expect(totals.liabilities).toBe(await settlement.reader.getBalance({ address: settlement.chain.contract }));
        latency[fault] = {
          requests: failed ? requests : null,
          executionProvider: ((await tab.state()) as { device?: { executionProvider?: string } } | null)?.device?.executionProvider ?? null,
          slashedEth: `${Number(slashed) / 1e18}`,
        };

        // Told and banned, and routed around: no route goes through it from the next request on.
        await tab.page.waitForFunction(() => document.querySelector('[data-testid="trust-verdict"]')?.getAttribute('data-banned') === 'true', null, { timeout: 15_000 });
        const route = await fetch(new URL('api/route', server.url));
        expect(route.status === 503 || !((await route.json()) as { hops: { peerId: string }[] }).hops.some((h) => h.peerId === peerId)).toBe(true);
        // The device is banned too: another tab from it is refused by name.
        const again = await tabs.open();
        await again.page.waitForFunction(() => (window as unknown as { donorErrors?: string[] }).donorErrors?.some((e) => e.includes('BannedPeerError')), null, { timeout: 60_000 });
      } finally {
        await stopGrid();
      }
    });
  }
});
