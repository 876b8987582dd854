/**
 * Settlement with real tabs, a real server and a real chain (a local anvil the settlement
 * starts): donor tabs get a sponsored stake, commit to every request they serve and answer the
 * validator's challenges; the OpenAI gateway pays for its requests with vouchers; honest
 * verified work is paid out in one batch, shown on each tab's page; money is conserved on
 * chain. Cheating tabs are e2e/donor-faults.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { parseEther, type Address } from 'viem';
import { openCheckpoint } from '../cli/open-checkpoint.ts';
import { compileTo, removeTempDirs, STORIES_260K, tempDir, TOK_512 } from '../cli/test-support.ts';
import { openDonorTabs } from '../cli/donor-tabs.ts';
import type { DonorTab, DonorTabs } from '../cli/donor-tabs.ts';
import { startGridServer } from '../signaling-server/grid-server.ts';
import type { GridServer } from '../signaling-server/grid-server.ts';
import { openGridStore } from '../signaling-server/store.ts';
import type { GridStore } from '../signaling-server/store.ts';
import { startGridSettlement } from '../signaling-server/settle/grid-settlement.ts';
import type { GridSettlement } from '../signaling-server/settle/grid-settlement.ts';
import { settlementTotals } from '../shared/settle/settlement-client.ts';

/** What the gateway test asks for: a short greedy completion. */
const CHAT = { model: '', messages: [{ role: 'user', content: 'Once upon a time' }], max_tokens: 12, temperature: 0 };

let server: GridServer;
let settlement: GridSettlement;
let store: GridStore;
let tabs: DonorTabs;
const log: string[] = [];

async function serving(tab: DonorTab): Promise<string> {
  await tab.page.waitForFunction(() => (window as unknown as { donor?: { state(): { status: string } } }).donor?.state().status === 'serving', null, { timeout: 120_000 });
  return ((await tab.state()) as { peerId: string }).peerId;
}

async function chat(): Promise<Response> {
  return fetch(new URL('v1/chat/completions', server.url), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...CHAT, model: server.manifest.id }) });
}

/** Waits until every stage of every request so far has its verdict (commitments arrive just after a request ends). */
async function verdictsFor(peerIds: string[], atLeast: number, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    await server.validator.idle();
    if (peerIds.every((id) => store.verdicts({ peerId: id }).length >= atLeast)) return;
    if (Date.now() > deadline) throw new Error(`verdicts not in after ${timeoutMs} ms: ${peerIds.map((id) => `${id}: ${store.verdicts({ peerId: id }).length}`).join(', ')}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The contract's ETH equals what it owes (stakes, escrows, pool, earnings): nothing created or lost. */
async function conserved(): Promise<void> {
  const totals = await settlementTotals(settlement.reader, { settlement: settlement.chain.contract });
  const balance = await settlement.reader.getBalance({ address: settlement.chain.contract });
  expect(totals.liabilities).toBe(balance);
}

beforeAll(async () => {
  const { dir } = await compileTo(await openCheckpoint(STORIES_260K, { tokenizer: TOK_512, seed: 0 }), 'f32');
  // Batches are paid when the test says so, not on a timer.
  settlement = await startGridSettlement({ ledgerPath: join(await tempDir(), 'ledger.sqlite'), settleIntervalMs: 3_600_000 }, { log: (l) => log.push(l) });
  store = openGridStore(':memory:');
  server = await startGridServer({ host: '127.0.0.1', port: 0, relayPort: 0, modelDir: dir, maxLayersPerNode: 3 }, { store, settlement, log: (l) => log.push(l) });
  tabs = await openDonorTabs(server.url, 0);
});

afterAll(async () => {
  await tabs?.close();
  await server?.close();
  await settlement?.close();
  store?.close();
  await removeTempDirs();
});

describe('honest tabs on a paid grid', () => {
  let honest: string[];

  it('stakes for each tab, verifies every stage of the gateway’s requests, and pays the work out in one batch', async () => {
    const opened = [await tabs.open(), await tabs.open()];
    honest = [await serving(opened[0]), await serving(opened[1])];
    await server.coordinator.waitForCoverage(1, 60_000);
    for (let i = 0; i < 3; i++) expect((await chat()).status).toBe(200);
    await verdictsFor(honest, 3);
    for (const id of honest) expect(store.verdicts({ peerId: id }).every((v) => v.ok)).toBe(true);

    await settlement.settleNow();
    const ledger = (await (await fetch(new URL('v1/ledger', server.url))).json()) as { providers: { address: Address; stake: string; earnings: string; paid: string; verifiedWork: number }[]; batches: { state: string }[] };
    expect(ledger.batches.map((b) => b.state)).toEqual(['confirmed']);
    expect(ledger.providers).toHaveLength(2);
    for (const p of ledger.providers) {
      expect(p.stake).toBe(parseEther('0.1').toString());
      expect(BigInt(p.paid)).toBeGreaterThan(0n);
      expect(p.earnings).toBe(p.paid); // credited on chain, not yet withdrawn
      expect(p.verifiedWork).toBeGreaterThan(0);
    }
    await conserved();
  });

  it('shows each tab its stake, verified work and paid earnings', async () => {
    const tab = tabs.tabs[0];
    await tab.page.waitForFunction(() => Number(document.querySelector('[data-testid="ledger-paid"]')?.getAttribute('data-wei') ?? 0) > 0, null, { timeout: 15_000 });
    expect(await tab.page.textContent('[data-testid="ledger-stake"]')).toBe('0.1 ETH');
    expect(Number(await tab.page.textContent('[data-testid="trust-committed"]'))).toBeGreaterThanOrEqual(3);
    expect(await tab.page.textContent('[data-testid="trust-verdict"]')).toBe('no verdict against this tab');
  });
});
