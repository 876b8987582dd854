/**
 * A script that says hello as 1,000 fresh donors, each with its own payout address and device
 * signature, against a real chain (a local anvil): the operator's bonds stop at the cap, stay the
 * operator's (none of it is any donor's own stake), and the hourly limit and one bond per device
 * hold too.
 */
import { join } from 'node:path';
import { parseEther, type Address } from 'viem';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { afterAll, describe, expect, it } from 'vitest';
import { removeTempDirs, tempDir } from '../../testkit/model-fixtures.ts';
import { balances } from '../../shared/settle/settlement-client.ts';
import { ANVIL_DEV_KEYS } from '../chain/anvil.ts';
import { startGridSettlement, type GridSettlement } from './grid-settlement.ts';

const running: GridSettlement[] = [];
afterAll(async () => {
  await Promise.all(running.map((s) => s.close()));
  await removeTempDirs();
});

/** The local chain's sponsor role (grid-settlement.ts: dev account 3). */
const SPONSOR = privateKeyToAccount(ANVIL_DEV_KEYS[3]).address;
const STAKE = parseEther('0.1');

describe('sponsored bonds against a script of many identities', () => {
  it('1,000 fresh donors cost the operator at most the cap, and no bond becomes a donor’s own', { timeout: 120_000 }, async () => {
    const cap = parseEther('0.5');
    const log: string[] = [];
    const s = await startGridSettlement({ ledgerPath: join(await tempDir(), 'ledger.sqlite'), settleIntervalMs: 3_600_000, sponsorStake: STAKE, sponsorCap: cap, sponsorsPerHour: 10_000 }, { log: (l) => log.push(l) });
    running.push(s);
    const before = await s.reader.getBalance({ address: SPONSOR });
    const donors: Address[] = [];
    for (let i = 0; i < 1000; i++) {
      const address = privateKeyToAccount(generatePrivateKey()).address;
      donors.push(address);
      await s.donorJoined(`sybil-${i}`, address, { deviceSignature: `device-${i}` });
    }
    const spent = before - (await s.reader.getBalance({ address: SPONSOR }));
    // Five bonds of 0.1 ETH, and the gas of five transactions.
    expect(spent).toBeGreaterThanOrEqual(cap);
    expect(spent).toBeLessThan(cap + parseEther('0.01'));
    expect(s.ledger.sponsorships()).toMatchObject({ total: cap, count: 5 });
    expect(log.filter((l) => l.includes('sponsorship cap'))).toHaveLength(995);

    const held = await Promise.all(donors.slice(0, 6).map((account) => balances(s.reader, { settlement: s.chain.contract, account })));
    expect(held.slice(0, 5).map((b) => [b.stake, b.bond, b.sponsor])).toEqual(Array(5).fill([0n, STAKE, SPONSOR]));
    expect(held[5]).toMatchObject({ stake: 0n, bond: 0n });
    // Not a wei of it reached a donor's wallet.
    for (const account of donors.slice(0, 5)) expect(await s.reader.getBalance({ address: account })).toBe(0n);
  });

  it('bonds one donor per device signature, and no more than the hourly limit, and none for a look-alike of a banned device', { timeout: 60_000 }, async () => {
    const log: string[] = [];
    const s = await startGridSettlement({ ledgerPath: join(await tempDir(), 'ledger.sqlite'), settleIntervalMs: 3_600_000, sponsorStake: STAKE, sponsorsPerHour: 2 }, { log: (l) => log.push(l) });
    running.push(s);
    const fresh = () => privateKeyToAccount(generatePrivateKey()).address;
    await s.donorJoined('a', fresh(), { deviceSignature: 'device-x' });
    await s.donorJoined('b', fresh(), { deviceSignature: 'device-x' });
    await s.donorJoined('c', fresh(), { deviceSignature: 'device-y' });
    await s.donorJoined('d', fresh(), { deviceSignature: 'device-z' });
    await s.donorJoined('e', fresh(), { deviceSignature: 'device-w', resemblesBanned: true });
    expect(s.ledger.sponsorships().count).toBe(2);
    expect(log.filter((l) => l.startsWith('settlement: no bond'))).toEqual([
      expect.stringMatching(/^settlement: no bond for donor b .*its device had a bond already/),
      expect.stringMatching(/^settlement: no bond for donor d .*2 donors were bonded in the last hour/),
      expect.stringMatching(/^settlement: no bond for donor e .*looks like one banned for cheating/),
    ]);
  });
});
