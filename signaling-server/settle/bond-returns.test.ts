/**
 * The operator's bonds come back (bond-returns.ts), on a real chain (a local anvil): a donor
 * gone long enough has its bond asked back and, after the contract's delay, taken back by the
 * sponsor; one that comes back in time keeps it; one whose bond came back is bonded anew.
 */
import { join } from 'node:path';
import { parseEther } from 'viem';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { afterAll, describe, expect, it } from 'vitest';
import { removeTempDirs, tempDir } from '../../testkit/model-fixtures.ts';
import { balances } from '../../shared/settle/settlement-client.ts';
import { ANVIL_DEV_KEYS } from '../chain/anvil.ts';
import { startGridSettlement, type GridSettlement } from './grid-settlement.ts';

const SPONSOR = privateKeyToAccount(ANVIL_DEV_KEYS[3]).address;
const STAKE = parseEther('0.1');
let s: GridSettlement;
afterAll(async () => {
  await s?.close();
  await removeTempDirs();
});

async function until(check: () => Promise<boolean> | boolean, what: string, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`not within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('a sponsored bond', () => {
  it('goes back to the sponsor when its donor has left, not while it serves, and a donor back later is bonded again', { timeout: 90_000 }, async () => {
    const log: string[] = [];
    s = await startGridSettlement({ ledgerPath: join(await tempDir(), 'ledger.sqlite'), settleIntervalMs: 200, sponsorStake: STAKE, withdrawDelay: 1, bondReturnAfterMs: 1_000 }, { log: (l) => log.push(l) });
    const bondOf = async (account: `0x${string}`) => (await balances(s.reader, { settlement: s.chain.contract, account })).bond;
    const gone = privateKeyToAccount(generatePrivateKey()).address;
    const stays = privateKeyToAccount(generatePrivateKey()).address;
    await s.donorJoined('gone', gone);
    await s.donorJoined('stays', stays);
    expect([await bondOf(gone), await bondOf(stays)]).toEqual([STAKE, STAKE]);
    const before = await s.reader.getBalance({ address: SPONSOR });

    s.donorLeft('gone');
    s.donorLeft('stays');
    await s.donorJoined('stays', stays); // a reload: back within the second
    await until(async () => (await bondOf(gone)) === 0n, 'the bond of the donor that left is taken back');
    const back = (await s.reader.getBalance({ address: SPONSOR })) - before;
    // The bond, less the gas of two transactions.
    expect(back).toBeGreaterThan(STAKE - parseEther('0.01'));
    expect(back).toBeLessThanOrEqual(STAKE);
    expect(await s.reader.getBalance({ address: gone })).toBe(0n);
    expect(log).toContainEqual(expect.stringMatching(/asked back the bond of 0x\w+ \(100000000000000000 wei\): its donor has been gone 1 s or more/));
    expect(log).toContainEqual(`settlement: the bond of ${gone} is back with the operator (${STAKE} wei)`);
    await new Promise((r) => setTimeout(r, 1_500));
    expect(await bondOf(stays)).toBe(STAKE);
    expect(s.ledger.sponsorships()).toMatchObject({ total: STAKE, count: 1 });

    await s.donorJoined('gone', gone);
    expect(await bondOf(gone)).toBe(STAKE);
    expect(s.ledger.sponsorships()).toMatchObject({ total: 2n * STAKE, count: 2 });
  });
});
