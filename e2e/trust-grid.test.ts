/**
 * Settlement with real tabs, a real server and a real chain (a local anvil the settlement
 * starts): donor tabs get a sponsored stake, commit to every request they serve and answer the
 * validator's challenges; the OpenAI gateway pays for its requests with vouchers, and so does a
 * Node SDK client with its own funded key; honest verified work is paid out in batches, shown on
 * each tab's page; money is conserved on chain. A request whose route loses a stage (a closed
 * tab) is committed, checked and paid route by route, and no one is convicted for the swap.
 * Cheating tabs are e2e/donor-faults.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { getAddress, parseEther, type Address } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { openCheckpoint } from '../cli/open-checkpoint.ts';
import { compileTo, removeTempDirs, STORIES_260K, tempDir, TOK_512 } from '../testkit/model-fixtures.ts';
import { openDonorTabs } from '../signaling-server/local-grid/donor-tabs.ts';
import { waitForLinks } from '../signaling-server/local-grid/demo-grid.ts';
import type { DonorTab, DonorTabs } from '../signaling-server/local-grid/donor-tabs.ts';
import { startGridServer } from '../signaling-server/grid-server.ts';
import type { GridServer } from '../signaling-server/grid-server.ts';
import { openGridStore } from '../signaling-server/store.ts';
import type { GridStore, VerdictRecord } from '../signaling-server/store.ts';
import { startGridSettlement } from '../signaling-server/settle/grid-settlement.ts';
import type { GridSettlement } from '../signaling-server/settle/grid-settlement.ts';
import { balances, deposit, settlementTotals } from '../shared/settle/settlement-client.ts';
import type { RequestPayment } from '../shared/settle/request-payer.ts';
import type { GridInfo } from '../shared/grid/client.ts';
import type { RouteHop } from '../shared/grid/protocol.ts';
import { ANVIL_DEV_KEYS } from '../signaling-server/chain/anvil.ts';
import { walletOn } from '../testkit/settlement-chain.ts';
import { connect } from '../packages/sdk/src/node.ts';

/** What the gateway test asks for: a short greedy completion. */
const CHAT = { model: '', messages: [{ role: 'user', content: 'Once upon a time' }], max_tokens: 12, temperature: 0 };

let server: GridServer;
let settlement: GridSettlement;
let store: GridStore;
let tabs: DonorTabs;
const log: string[] = [];
/** the peer ids of the two honest tabs the first test opens (the later tests use them) */
let honest: string[];

async function serving(tab: DonorTab): Promise<string> {
  await tab.page.waitForFunction(() => (window as unknown as { donor?: { state(): { status: string } } }).donor?.state().status === 'serving', null, { timeout: 120_000 });
  return ((await tab.state()) as { peerId: string }).peerId;
}

async function chat(): Promise<Response> {
  return fetch(new URL('v1/chat/completions', server.url), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...CHAT, model: server.manifest.id }) });
}

/** Polls until `missing()` names nothing, the validator idle at each look (commitments arrive just after a request ends); throws naming what is missing. */
async function untilJudged(missing: () => string[], timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    await server.validator.idle();
    const left = missing();
    if (left.length === 0) return;
    if (Date.now() > deadline) throw new Error(`verdicts not in after ${timeoutMs} ms: ${left.join(', ')}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Waits until each of `peerIds` has at least `atLeast` verdicts. */
const verdictsFor = (peerIds: string[], atLeast: number) =>
  untilJudged(() => peerIds.map((id) => [id, store.verdicts({ peerId: id }).length] as const).filter(([, n]) => n < atLeast).map(([id, n]) => `${id}: ${n}`));

/**
 * Waits until each of `peerIds` has a verdict on each request of `requests` (a request's stage-request
 * ids: more than one where a step was hedged). A count of verdicts cannot say this: a hedged step
 * earlier is one verdict more, so the count is reached before the last request is judged.
 */
const verdictsOn = (peerIds: string[], requests: string[][]) =>
  untilJudged(() =>
    peerIds.flatMap((id) => {
      const judged = new Set(store.verdicts({ peerId: id }).map((v) => v.requestId));
      return requests.filter((ids) => !ids.some((r) => judged.has(r))).map((ids) => `${id} on ${ids.join('/')}`);
    }),
  );

/** The contract's ETH equals what it owes (stakes, escrows, pool, earnings): nothing created or lost. */
async function conserved(): Promise<void> {
  const totals = await settlementTotals(settlement.reader, { settlement: settlement.chain.contract });
  const balance = await settlement.reader.getBalance({ address: settlement.chain.contract });
  expect(totals.liabilities).toBe(balance);
}

beforeAll(async () => {
  const { dir } = await compileTo(await openCheckpoint(STORIES_260K, { tokenizer: TOK_512, seed: 0 }), 'f32');
  // Batches are paid when the test says so, not on a timer.
  // Rewards paid whole in the next round: this test counts each batch's receipts (vesting is ledger.test.ts).
  // Every tab here runs on one machine, one device signature: each is bonded all the same.
  settlement = await startGridSettlement({ ledgerPath: join(await tempDir(), 'ledger.sqlite'), settleIntervalMs: 3_600_000, rewardHalfLifeMs: 0, sponsorOncePerDevice: false }, { log: (l) => log.push(l) });
  store = openGridStore(':memory:');
  server = await startGridServer({ host: '127.0.0.1', port: 0, modelDir: dir, maxLayersPerNode: 3 }, { store, settlement, log: (l) => log.push(l) });
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
    // Each tab's reputation: its verified work, all of it recent, and a sampling rate below a new peer's.
    for (const id of honest) {
      const entry = (await (await fetch(new URL(`v1/ledger/peers/${id}`, server.url))).json()) as { reputation: { verifiedWork: number; recentWork: number; failedChecks: number; samplingRate: number } };
      expect(entry.reputation.verifiedWork).toBeGreaterThan(0);
      expect(entry.reputation.recentWork).toBeCloseTo(entry.reputation.verifiedWork, 0);
      expect(entry.reputation.failedChecks).toBe(0);
      expect(entry.reputation.samplingRate).toBeLessThan(0.5);
      expect(entry.reputation.samplingRate).toBeGreaterThanOrEqual(0.05);
    }
    await conserved();
  });

  it('shows each tab its stake, verified work and paid earnings', async () => {
    const tab = tabs.tabs[0];
    await tab.page.waitForFunction(() => Number(document.querySelector('[data-testid="ledger-paid"]')?.getAttribute('data-wei') ?? 0) > 0, null, { timeout: 15_000 });
    expect(await tab.page.textContent('[data-testid="ledger-stake"]')).toBe("0.1 ETH (0.1 ETH of it the grid's bond)");
    expect(Number(await tab.page.textContent('[data-testid="trust-committed"]'))).toBeGreaterThanOrEqual(3);
    expect(await tab.page.textContent('[data-testid="trust-verdict"]')).toBe('no verdict against this tab');
  });
});

describe('a visitor staking for its tab from its own wallet', () => {
  // Dev account 6: a visitor's wallet with ETH of its own (5 is the SDK client below).
  const visitor = privateKeyToAccount(ANVIL_DEV_KEYS[6]);

  it('stakes for the tab\'s payout address through the page\'s wallet, and says why when it cannot', async () => {
    const tab = tabs.tabs[0];
    const payTo = getAddress(((await tab.state()) as { trust: { payTo: string } }).trust.payTo);
    const error = () => tab.page.textContent('[data-testid="error"]');
    // No wallet in this browser yet.
    await tab.page.click('[data-testid="stake-button"]');
    await tab.page.waitForFunction(() => document.querySelector('[data-testid="error"]')?.textContent?.includes('WalletStakeError'));
    expect(await error()).toMatch(/WalletStakeError: there is no wallet in this browser/);
    // A wallet as an extension injects it (EIP-1193): it holds the visitor's account, and the
    // chain (anvil) signs for it; the page only ever sees the account's address.
    await tab.page.exposeFunction('walletRpc', async (method: string, params: unknown[]) => {
      const response = await fetch(settlement.chain.rpcUrl, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }) });
      const body = (await response.json()) as { result?: unknown; error?: { message: string } };
      if (body.error) throw new Error(body.error.message);
      return body.result;
    });
    await tab.page.evaluate((account) => {
      const w = window as unknown as { ethereum: unknown; walletRpc: (method: string, params: unknown[]) => Promise<unknown> };
      w.ethereum = {
        request: ({ method, params }: { method: string; params?: unknown[] }) =>
          method === 'eth_requestAccounts' || method === 'eth_accounts' ? Promise.resolve([account]) : w.walletRpc(method, params ?? []),
      };
    }, visitor.address);
    await tab.page.fill('[data-testid="stake-amount"]', 'lots');
    await tab.page.click('[data-testid="stake-button"]');
    await tab.page.waitForFunction(() => document.querySelector('[data-testid="error"]')?.textContent?.includes('lots'));
    expect(await error()).toBe('WalletStakeError: the stake must be an amount of ETH above 0, got "lots"');

    const contract = settlement.chain.contract;
    const before = await balances(settlement.reader, { settlement: contract, account: payTo });
    const spentBefore = await settlement.reader.getBalance({ address: visitor.address });
    await tab.page.fill('[data-testid="stake-amount"]', '0.05');
    await tab.page.click('[data-testid="stake-button"]');
    await tab.page.waitForFunction(() => (document.querySelector('[data-testid="stake-result"]')?.textContent ?? '') !== '', null, { timeout: 30_000 });
    expect(await tab.page.textContent('[data-testid="stake-result"]')).toMatch(new RegExp(`^staked 0\\.05 ETH from ${visitor.address} \\(transaction 0x[0-9a-f]{64}\\)$`));
    const after = await balances(settlement.reader, { settlement: contract, account: payTo });
    expect(after.stake - before.stake).toBe(parseEther('0.05'));
    // The visitor paid the stake (and gas) from its own account.
    expect(spentBefore - (await settlement.reader.getBalance({ address: visitor.address }))).toBeGreaterThanOrEqual(parseEther('0.05'));
    // The page shows the new stake once it reads the ledger again.
    // Its own stake and the grid's bond back it; the bond is named as the grid's.
    const shown = `${Number(after.stake + after.bond) / 1e18} ETH (${Number(after.bond) / 1e18} ETH of it the grid's bond)`;
    await tab.page.waitForFunction((text) => document.querySelector('[data-testid="ledger-stake"]')?.textContent === text, shown, { timeout: 15_000 });
    await conserved();
  });
});

describe('an SDK client paying with its own vouchers', () => {
  // Dev accounts 0-4 play the settlement's roles (grid-settlement.ts); 5 is a client with ETH of its own.
  const payer = privateKeyToAccount(ANVIL_DEV_KEYS[5]);
  const ESCROW = parseEther('1');

  it('pays the stages for its requests out of its escrow: exactly what its last voucher says', async () => {
    const contract = settlement.chain.contract;
    // Work of the tests before judged after their batch (a gateway step that stalled on this
    // loaded machine was hedged: one more stage request, committed and judged later) is paid out
    // now, so the batch below holds only this client's work.
    await server.validator.idle();
    await settlement.settleNow();
    const info = (await (await fetch(new URL('api/info', server.url))).json()) as GridInfo;
    expect(info.settlement).toEqual({ chainId: settlement.chain.chainId, contract, pricePerLayerToken: settlement.chain.pricePerLayerToken, rpcUrl: settlement.chain.rpcUrl });
    await deposit(walletOn(settlement.chain, payer), { settlement: contract, amount: ESCROW });

    const paid: RequestPayment[] = [];
    const grid = await connect({ url: server.url, payer, onPayment: (p) => paid.push(p) });
    let last: bigint;
    try {
      for (let i = 0; i < 2; i++) {
        let text = '';
        for await (const t of grid.generate('Once upon a time', { maxTokens: 12, temperature: 0 })) text += t.text;
        expect(text.length).toBeGreaterThan(0);
      }
      last = (await grid.payments())!.cumulativeAmount;
    } finally {
      await grid.close();
    }
    // Two vouchers, each for what its request cost, the second cumulative over both.
    const nLayers = BigInt(server.manifest.config.nLayers);
    expect(paid.map((p) => p.amount % (BigInt(info.settlement!.pricePerLayerToken) * nLayers))).toEqual([0n, 0n]);
    expect(paid.map((p) => p.cumulativeAmount)).toEqual([paid[0].amount, paid[0].amount + paid[1].amount]);
    expect(last).toBe(paid[1].cumulativeAmount);

    await verdictsOn(honest, paid.map((p) => p.requestIds));
    for (const id of honest) expect(store.verdicts({ peerId: id }).every((v) => v.ok)).toBe(true);
    const providers = honest.map((id) => getAddress(settlement.payoutAddress(id)!));
    const earnings = async (a: Address) => (await balances(settlement.reader, { settlement: contract, account: a })).earnings;
    const before = await Promise.all(providers.map(earnings));
    const batchesBefore = settlement.ledger.batches().length;
    await settlement.settleNow();

    // One new batch, paying only work on the SDK's requests: every stage of both of them.
    const batches = settlement.ledger.batches().slice(batchesBefore);
    expect(batches.map((b) => b.state)).toEqual(['confirmed']);
    const receipts = settlement.ledger.receipts({ batchId: batches[0].id });
    const sdkRequests = new Set(paid.flatMap((p) => p.requestIds));
    expect(receipts.filter((r) => !sdkRequests.has(r.requestId)).map((r) => ({ requestId: r.requestId, payer: settlement.ledger.payerOf(r.requestId) }))).toEqual([]);
    // Every stage served both requests (a request whose step was hedged ran as two stage requests, both paid).
    for (const provider of providers) {
      for (const p of paid) expect(receipts.some((r) => r.provider === provider && p.requestIds.includes(r.requestId))).toBe(true);
    }
    // The vouchers covered all the work: no receipt was cut short by the client's budget.
    const price = BigInt(settlement.chain.pricePerLayerToken);
    for (const r of receipts) expect(r.amount).toBe(price * BigInt(r.layers) * BigInt(r.tokens));
    const total = receipts.reduce((sum, r) => sum + r.amount, 0n);
    expect(total).toBeGreaterThan(0n);
    expect(total).toBeLessThanOrEqual(last);
    const after = await Promise.all(providers.map(earnings));
    expect(after.map((e, i) => e - before[i])).toEqual(providers.map((p) => receipts.filter((r) => r.provider === p).reduce((sum, r) => sum + r.amount, 0n)));

    // On chain the client's escrow fell by exactly its last voucher, all of it redeemed into the pool.
    const onChain = await balances(settlement.reader, { settlement: contract, account: payer.address });
    expect(onChain.escrow).toBe(ESCROW - last);
    expect(onChain.redeemed).toBe(last);
    expect(settlement.ledger.rejectedVouchers(payer.address)).toEqual([]);
    await conserved();
  });

  it('throws the refusal of an unfunded client’s voucher from its next call, and pays nothing for that request', async () => {
    const unfunded = privateKeyToAccount(ANVIL_DEV_KEYS[6]); // ETH, but no escrow on the contract
    const grid = await connect({ url: server.url, payer: unfunded });
    try {
      for await (const t of grid.generate('Once upon a time', { maxTokens: 4, temperature: 0 })) void t;
      const err = await (async () => {
        for await (const t of grid.generate('Once upon a time', { maxTokens: 4, temperature: 0 })) void t;
      })().catch((e: unknown) => e);
      expect(err).toMatchObject({ name: 'PaymentRefusedError', code: 'VoucherEscrowError', status: 400 });
      expect(settlement.ledger.rejectedVouchers(unfunded.address).map((v) => v.reason)).toEqual(['VoucherEscrowError']);
      expect(settlement.ledger.latestVoucher(unfunded.address)).toBeUndefined();
    } finally {
      await grid.close();
    }
  });
});

describe('a generation whose route loses a stage on a paid grid', () => {
  // Dev account 7: a client of its own, so its budget holds only this test's vouchers.
  const payer = privateKeyToAccount(ANVIL_DEV_KEYS[7]);
  const GREEDY = { maxTokens: 16, temperature: 0 };
  /** the token after which a route stage's tab is closed (before the next step goes out) */
  const CLOSE_AT = 4;

  /** The verdict on `peerId`'s part of stage request `requestId`, once the validator gave it. */
  async function verdictOn(peerId: string, requestId: string): Promise<VerdictRecord> {
    const find = () => store.verdicts({ peerId, limit: 1000 }).find((v) => v.requestId === requestId);
    await untilJudged(() => (find() ? [] : [`${peerId}'s part of request ${requestId}`]));
    return find()!;
  }

  it('commits, checks and pays the replacement stage\'s replay and the survivors\' work, and convicts no one, whichever stage left', async () => {
    // Four tabs of at most three layers hold each of the five layers twice: a standby for every hop.
    const opened = await Promise.all(Array.from({ length: 4 - tabs.tabs.length }, () => tabs.open()));
    await Promise.all(opened.map(serving));
    await server.coordinator.waitForCoverage(2, 60_000);
    expect(await waitForLinks(server, 30_000)).toBe(true);
    const tabOf = new Map<string, DonorTab>();
    for (const tab of tabs.tabs) tabOf.set(((await tab.state()) as { peerId: string }).peerId, tab);

    const contract = settlement.chain.contract;
    await deposit(walletOn(settlement.chain, payer), { settlement: contract, amount: parseEther('1') });
    const paid: RequestPayment[] = [];
    const grid = await connect({ url: server.url, payer, onPayment: (p) => paid.push(p) });
    /** A greedy generation; with `close`, the tab serving that stage of the route is closed after CLOSE_AT tokens. */
    const generate = async (close?: 'first' | 'last') => {
      let text = '';
      let tokens = 0;
      let departed: RouteHop | undefined;
      let brokenRoute: string[] = [];
      for await (const t of grid.generate('Once upon a time', GREEDY)) {
        text += t.text;
        if (t.id !== null) tokens++;
        if (close && tokens === CLOSE_AT && !departed) {
          const hops = (await grid.route()).hops;
          expect(hops).toHaveLength(2);
          departed = close === 'first' ? hops[0] : hops[1];
          brokenRoute = hops.map((h) => h.peerId);
          await tabOf.get(departed.peerId)!.page.close();
        }
      }
      const hops = (await grid.route()).hops;
      // The stage that took the departed one's layers on the route the request finished on.
      const replacement = departed && hops.find((h) => h.layers.start === departed.layers.start)!.peerId;
      const { recoveries, stageRequests } = grid.routeReport()!;
      return { text, tokens, departed: departed?.peerId, brokenRoute, replacement, hops: hops.map((h) => h.peerId), recoveries, stageRequests };
    };
    let unbroken: Awaited<ReturnType<typeof generate>>;
    const swapped: Awaited<ReturnType<typeof generate>>[] = [];
    let spent: bigint;
    try {
      unbroken = await generate();
      // The first stage leaves: its downstream never gets its seal for the old route. Then the
      // last stage leaves: the first stage (its layers' last tab) survives and commits to the old route.
      for (const position of ['first', 'last'] as const) {
        const run = await generate(position);
        swapped.push(run);
        // Its stages answer for it before the next run closes one of them: a tab that leaves
        // before its commitment and reveal went out is neither judged nor paid for that request.
        const last = run.recoveries.at(-1);
        if (last) for (const peerId of run.hops) await verdictOn(peerId, last.stageRequestId);
      }
      spent = (await grid.payments())!.cumulativeAmount;
    } finally {
      await grid.close();
    }
    // One voucher per request, naming the ids its stages knew it by: one per route it ran on.
    expect(paid).toHaveLength(3);
    const stageIds = paid.map((p) => p.requestIds);
    for (const [i, run] of swapped.entries()) {
      expect(run.text).toBe(unbroken.text);
      expect(run.recoveries.length).toBeGreaterThanOrEqual(1);
      expect(run.recoveries.flatMap((r) => r.swapped)).toContain(run.departed);
      expect(run.replacement).not.toBe(run.departed);
      // Each route it moved to is a stage request of its own.
      expect(stageIds[i + 1].length).toBeGreaterThanOrEqual(1 + run.recoveries.length);
    }

    // The replacement's part of the new route's stage request is committed and checked: one
    // prefill replaying every row so far (step 0), then every later step, honest.
    for (const [i, run] of swapped.entries()) {
      const last = run.recoveries.at(-1)!;
      // The stage request the recovery moved to (a hedge that lost to it later would add one more id).
      expect(stageIds[i + 1]).toContain(last.stageRequestId);
      const verdict = await verdictOn(run.replacement!, last.stageRequestId);
      expect(verdict).toMatchObject({ kind: 'replay', ok: true, stepCount: run.tokens - last.step });
      expect(last.replayedRows).toBeGreaterThan(CLOSE_AT);
      // Paid for the replay's rows, then one token a step.
      expect(verdict.tokens).toBe(last.replayedRows + verdict.stepCount - 1);
      // The survivors on the route the request finished on are judged honest too.
      for (const peerId of run.hops) expect((await verdictOn(peerId, last.stageRequestId)).ok).toBe(true);
    }
    // The last stage's swap: the first stage survives it and commits to every stage request it
    // served, the route that broke and the one that replaced it among them (a hedge tried on
    // other stages is theirs to commit to).
    const survivor = swapped[1].brokenRoute[0];
    const served = swapped[1].stageRequests.filter((r) => r.stages.includes(survivor));
    expect(served.map((r) => r.stages)).toContainEqual(swapped[1].brokenRoute);
    expect(served.map((r) => r.id)).toContain(swapped[1].recoveries.at(-1)!.stageRequestId);
    expect(stageIds[2]).toEqual(swapped[1].stageRequests.map((r) => r.id));
    const survived = await Promise.all(served.map((r) => verdictOn(survivor, r.id)));
    expect(survived.every((v) => v.ok)).toBe(true);

    // No one is convicted for a swap: no failed verdict, slash or ban, the departed tabs' included.
    await server.validator.idle();
    expect(store.verdicts({ limit: 10_000 }).filter((v) => !v.ok)).toEqual([]);
    expect(settlement.ledger.slashes()).toEqual([]);
    for (const peerId of tabOf.keys()) {
      expect(server.coordinator.registry.isBanned(peerId)).toBe(false);
      expect(store.reputation(peerId).failedChecks).toBe(0);
    }

    // Paid: a receipt for exactly the honest verdicts on the swapped requests' stage requests (a
    // stage that committed to nothing, the departed ones', is unpaid), each out of the vouchers.
    await settlement.settleNow();
    const price = BigInt(settlement.chain.pricePerLayerToken);
    const swappedIds = new Set(stageIds.slice(1).flat());
    const receipts = settlement.ledger.receipts().filter((r) => swappedIds.has(r.requestId));
    const verdicts = store.verdicts({ limit: 10_000 }).filter((v) => swappedIds.has(v.requestId));
    const key = (provider: string, requestId: string) => `${getAddress(provider)} ${requestId}`;
    expect(new Set(receipts.map((r) => key(r.provider, r.requestId)))).toEqual(new Set(verdicts.map((v) => key(settlement.payoutAddress(v.peerId)!, v.requestId))));
    for (const r of receipts) {
      const v = verdicts.find((v) => key(settlement.payoutAddress(v.peerId)!, v.requestId) === key(r.provider, r.requestId))!;
      expect([r.layers, r.tokens]).toEqual([v.layers.end - v.layers.start, v.tokens]);
      // The vouchers paid for the replays too: no stage's work was cut short by the swap.
      expect(r.amount).toBe(price * BigInt(r.layers) * BigInt(r.tokens));
      expect(r.batchId).not.toBeNull();
    }
    for (const [i, run] of swapped.entries()) {
      const replaced = receipts.find((r) => r.requestId === run.recoveries.at(-1)!.stageRequestId && r.provider === getAddress(settlement.payoutAddress(run.replacement!)!));
      expect(replaced).toBeDefined();
      // The departed stage never ended the stage request it left (the last it was on): nothing to pay it for.
      const left = run.stageRequests.findLast((r) => r.stages.includes(run.departed!))!;
      expect(receipts.some((r) => r.requestId === left.id && r.provider === getAddress(settlement.payoutAddress(run.departed!)!))).toBe(false);
    }
    const batches = new Set(receipts.map((r) => r.batchId!));
    expect([...batches].map((id) => settlement.ledger.batch(id)!.state)).toEqual([...batches].map(() => 'confirmed'));
    const all = new Set(stageIds.flat());
    expect(settlement.ledger.receipts().filter((r) => all.has(r.requestId)).reduce((sum, r) => sum + r.amount, 0n)).toBeLessThanOrEqual(spent);
    expect(settlement.ledger.rejectedVouchers(payer.address)).toEqual([]);
    await conserved();
  });
});
