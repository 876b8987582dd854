/**
 * A server restart on the default local chain: the anvil state file and the ledger carry the
 * contract, stakes, escrows and payouts into the next run, the contract is not deployed again,
 * a paid batch is not paid again, work verified after the restart on requests paid before it is
 * paid (payout addresses, payers, budgets and waiting work are in the ledger), and a ledger
 * whose chain is gone is refused by name. Also: rewards vest over rounds, and a slashed stage
 * forfeits what has not vested.
 */
import { existsSync, readdirSync } from 'node:fs';
import { DatabaseSync } from 'node:sqlite';
import { join } from 'node:path';
import { parseEther } from 'viem';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { afterAll, describe, expect, it } from 'vitest';
import { removeTempDirs, tempDir } from '../../testkit/model-fixtures.ts';
import { balances } from '../../shared/settle/settlement-client.ts';
import { ANVIL_DEV_KEYS } from '../chain/anvil.ts';
import { ChainSetupError, startGridSettlement, type GridSettlement } from './grid-settlement.ts';

const running: GridSettlement[] = [];
afterAll(async () => {
  await Promise.all(running.map((s) => s.close()));
  await removeTempDirs();
});

// Rewards paid whole in the next round unless a test says otherwise: amounts stay exact.
const start = async (dir: string, ledger = 'ledger.sqlite', state = 'anvil-state.json', rewardHalfLifeMs = 0) => {
  const s = await startGridSettlement({ ledgerPath: join(dir, ledger), anvilStateFile: join(dir, state), settleIntervalMs: 3_600_000, rewardHalfLifeMs });
  running.push(s);
  return s;
};

describe('the local chain across a server restart', () => {
  it('keeps the contract, the stake, the escrow and the payouts, and pays nothing twice', async () => {
    const dir = await tempDir();
    const provider = privateKeyToAccount(generatePrivateKey()).address;
    const first = await start(dir);
    await first.donorJoined('stage-a', provider);
    await first.gatewayRequest(['req-1'], 10, 3);
    first.workVerified({ peerId: 'stage-a', requestId: 'req-1', layers: 3, tokens: 10 });
    await first.settleNow();
    const before = await balances(first.reader, { settlement: first.chain.contract, account: provider });
    // The operator's bond backs it; none of it is the stage's own.
    expect([before.stake, before.bond]).toEqual([0n, parseEther('0.1')]);
    expect(before.earnings).toBe(30n * 1_000_000_000n);
    const contract = first.chain.contract;
    // Left open at the restart: a paid request whose verdict has not come, and a verdict whose voucher has not.
    await first.gatewayRequest(['req-2'], 5, 3);
    first.workVerified({ peerId: 'stage-a', requestId: 'req-3', layers: 3, tokens: 4 });
    await first.close();
    running.pop();
    expect(existsSync(join(dir, 'anvil-state.json'))).toBe(true);

    const second = await start(dir);
    expect(second.chain.contract).toBe(contract);
    const after = await balances(second.reader, { settlement: contract, account: provider });
    expect(after).toEqual(before);
    // The confirmed batch stays paid once.
    await second.settleNow();
    expect((await balances(second.reader, { settlement: contract, account: provider })).earnings).toBe(30n * 1_000_000_000n);
    expect(second.ledger.batches({ states: ['confirmed'] })).toHaveLength(1);
    // Before the stage says hello again: its payout address, the payer and the waiting work come from the ledger.
    second.workVerified({ peerId: 'stage-a', requestId: 'req-2', layers: 3, tokens: 5 });
    await second.gatewayRequest(['req-3'], 4, 3);
    await second.settleNow();
    expect((await balances(second.reader, { settlement: contract, account: provider })).earnings).toBe((30n + 15n + 12n) * 1_000_000_000n);
    expect(second.ledger.batches({ states: ['confirmed'] })).toHaveLength(2);
    // The stage joins again: its bond is already there, so none is added.
    await second.donorJoined('stage-a', provider);
    expect((await balances(second.reader, { settlement: contract, account: provider })).bond).toBe(parseEther('0.1'));
  });

  it('refuses a ledger whose contract the chain no longer holds, naming the contract and the way out', async () => {
    const dir = await tempDir();
    const first = await start(dir, 'ledger.sqlite', 'first-chain.json');
    const contract = first.chain.contract;
    await first.close();
    running.pop();
    // Same ledger, a new chain (its state file elsewhere): the recorded contract is not there.
    const refused = start(dir, 'ledger.sqlite', 'other-chain.json');
    await expect(refused).rejects.toBeInstanceOf(ChainSetupError);
    await expect(refused).rejects.toThrow(`settles on contract ${contract} on chain 31337, which the chain at`);
  });

  it('moves aside a ledger whose contract another version deployed, and deploys this one; on a chain of its own it refuses by name', async () => {
    const dir = await tempDir();
    const first = await start(dir);
    const { contract } = first.chain;
    await first.close();
    running.pop();
    // As an older infermesh left it: a deployment recorded without this version's code hash.
    const db = new DatabaseSync(join(dir, 'ledger.sqlite'));
    db.exec('UPDATE deployments SET code_hash = NULL');
    db.close();

    const log: string[] = [];
    const second = await startGridSettlement({ ledgerPath: join(dir, 'ledger.sqlite'), anvilStateFile: join(dir, 'anvil-state.json'), settleIntervalMs: 3_600_000 }, { log: (l) => log.push(l) });
    running.push(second);
    expect(second.chain.contract).not.toBe(contract);
    expect(log).toContainEqual(expect.stringMatching(/the local chain's contract was deployed by another version of infermesh; its ledger is kept at .*ledger\.sqlite\.outdated-\d+/));
    expect(readdirSync(dir).filter((f) => f.startsWith('ledger.sqlite.outdated-'))).toHaveLength(1);
    // The new contract is read with this version's ABI: a bond works again.
    const provider = privateKeyToAccount(generatePrivateKey()).address;
    await second.donorJoined('stage-b', provider);
    expect((await balances(second.reader, { settlement: second.chain.contract, account: provider })).bond).toBe(parseEther('0.1'));

    // A chain given by --rpc-url (here the same anvil, while it runs) is not the server's to reset: refused by name.
    const external = join(dir, 'external.sqlite');
    const key = ANVIL_DEV_KEYS[0];
    const own = await startGridSettlement({ rpcUrl: second.chain.rpcUrl, privateKey: key, ledgerPath: external, settleIntervalMs: 3_600_000 });
    await own.close();
    const db2 = new DatabaseSync(external);
    db2.exec('UPDATE deployments SET code_hash = NULL');
    db2.close();
    const refused = startGridSettlement({ rpcUrl: second.chain.rpcUrl, privateKey: key, ledgerPath: external, settleIntervalMs: 3_600_000 });
    await expect(refused).rejects.toMatchObject({ name: 'OutdatedContractError', message: expect.stringMatching(/deployed by another version of infermesh/) });
  });
});

describe('vesting rewards on the local chain', () => {
  it('pays a stage its rewards as they vest, and a slash forfeits the rest', async () => {
    const gwei = 1_000_000_000n;
    const dir = await tempDir();
    const provider = privateKeyToAccount(generatePrivateKey()).address;
    const s = await start(dir, 'ledger.sqlite', 'anvil-state.json', 1_000);
    await s.donorJoined('stage-v', provider);
    await s.gatewayRequest(['v-1'], 100, 4);
    s.workVerified({ peerId: 'stage-v', requestId: 'v-1', layers: 4, tokens: 100 });
    const earned = 400n * gwei;
    await new Promise((r) => setTimeout(r, 1_100));
    await s.settleNow();
    const paid = (await balances(s.reader, { settlement: s.chain.contract, account: provider })).earnings;
    // More than one half-life has passed, fewer than eight: some, not all.
    expect(paid).toBeGreaterThanOrEqual(earned / 2n);
    expect(paid).toBeLessThan(earned);
    const slashed = await s.slash('stage-v', `0x${'ee'.repeat(32)}`);
    expect(slashed).toMatchObject({ amount: parseEther('0.1') });
    expect(slashed!.forfeited).toBeGreaterThan(0n);
    expect(paid + slashed!.forfeited).toBeLessThanOrEqual(earned);
    await new Promise((r) => setTimeout(r, 200));
    const batches = s.ledger.batches().length;
    await s.settleNow();
    // Nothing more for it: what had not gone out in a batch is forfeited.
    expect(s.ledger.receipts({ batchId: null })).toEqual([]);
    expect(s.ledger.batches().length).toBe(batches);
    const [e] = s.ledger.earnings();
    expect(e.paid + e.forfeited).toBe(earned);
    expect((await balances(s.reader, { settlement: s.chain.contract, account: provider })).earnings).toBe(e.paid);
  });
});
