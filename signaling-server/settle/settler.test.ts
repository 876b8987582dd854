/**
 * The coordinator's settler against a real anvil chain and a real ledger file: vouchers accepted
 * and rejected with reasons, work paid in batches, and restarts at every point of a payout
 * (close the ledger, reopen it, build a new settler) never paying a batch twice.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { keccak256, parseEther, toHex, type Address } from 'viem';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SettlementRevertError, VoucherAmountError, VoucherEscrowError, VoucherSignatureError } from '../../shared/settle/errors.ts';
import { balances, deposit, payoutBatch, stake, type SettlementWallet } from '../../shared/settle/settlement-client.ts';
import { signVoucher, voucherTypes } from '../../shared/settle/voucher.ts';
import { openSettlementLedger, type SettlementLedger } from './ledger.ts';
import { createSettler, type Settler } from './settler.ts';
import { startSettlementChain, type SettlementChain } from '../../testkit/settlement-chain.ts';

let chain: SettlementChain;
const dir = mkdtempSync(join(tmpdir(), 'infermesh-settler-'));
const opened: SettlementLedger[] = [];

beforeAll(async () => {
  chain = await startSettlementChain();
});
afterAll(async () => {
  for (const l of opened) l.close();
  await chain?.anvil.stop();
  rmSync(dir, { recursive: true, force: true });
});

const GWEI = 1_000_000_000n;

/** A settler over a fresh contract with every client's escrow funded; `reopen` simulates a restart. */
async function setup(name: string) {
  const settlement = await chain.deploy();
  for (const c of chain.clients) await deposit(c, { settlement, amount: parseEther('1') });
  const path = join(dir, `${name}.sqlite`);
  const open = (): { ledger: SettlementLedger; settler: Settler } => {
    const ledger = openSettlementLedger(path);
    opened.push(ledger);
    const settler = createSettler({ ledger, wallet: chain.coordinator, settlement, pricePerLayerToken: GWEI }, { validatorWallet: chain.validator });
    return { ledger, settler };
  };
  return { settlement, open, ...open() };
}

/**
 * Where the crash tests start: one client's 500 gwei voucher redeemed, one request of the first
 * provider's work recorded and prepared as a payout batch, not yet sent.
 */
async function preparedPayout(name: string, work: { layers: number; tokens: number }) {
  const fixture = await setup(name);
  const { settler } = fixture;
  const [c1] = chain.clients;
  const [p1] = chain.providers;
  await settler.acceptVoucher(await sign(c1, settler, 500n * GWEI));
  await settler.redeemVouchers();
  settler.recordWork({ provider: p1.account.address, requestId: 'req-1', ...work });
  return { ...fixture, p1, pending: settler.prepareBatch()! };
}

const sign = (client: SettlementWallet, settler: Settler, cumulativeAmount: bigint) =>
  signVoucher(client.account as Parameters<typeof signVoucher>[0], settler.domain, { cumulativeAmount });
const earnings = async (settlement: Address, p: SettlementWallet) => (await balances(chain.publicClient, { settlement, account: p.account.address })).earnings;

describe('settler', () => {
  it('keeps the latest good voucher per client and records each rejection with its reason', async () => {
    const { ledger, settler } = await setup('vouchers');
    const [alice, mallory] = chain.clients;
    await settler.acceptVoucher(await sign(alice, settler, 100n * GWEI));
    await settler.acceptVoucher(await sign(alice, settler, 250n * GWEI));

    const message = { client: alice.account.address, cumulativeAmount: 900n * GWEI };
    const forged = { ...message, signature: await mallory.account.signTypedData!({ domain: settler.domain, types: voucherTypes, primaryType: 'Voucher', message }) };
    await expect(settler.acceptVoucher(forged)).rejects.toBeInstanceOf(VoucherSignatureError);
    await expect(settler.acceptVoucher(await sign(alice, settler, 200n * GWEI))).rejects.toBeInstanceOf(VoucherAmountError);
    await expect(settler.acceptVoucher(await sign(alice, settler, parseEther('2')))).rejects.toBeInstanceOf(VoucherEscrowError);

    expect(ledger.latestVoucher(alice.account.address)!.cumulativeAmount).toBe(250n * GWEI);
    const rejected = ledger.rejectedVouchers(alice.account.address);
    expect(rejected.map((r) => r.reason)).toEqual(['VoucherSignatureError', 'VoucherAmountError', 'VoucherEscrowError']);
    expect(rejected[0].message).toContain(`signed by ${mallory.account.address}`);
    expect(rejected[1].message).toMatch(/not above the 250000000000 already accepted/);
  });

  it('pays verified work: redeems vouchers, batches receipts per provider, confirms on chain', async () => {
    const { settlement, ledger, settler } = await setup('happy');
    const [c1, c2] = chain.clients;
    const [p1, p2] = chain.providers;
    await settler.acceptVoucher(await sign(c1, settler, 300n * GWEI));
    await settler.acceptVoucher(await sign(c2, settler, 200n * GWEI));
    settler.recordWork({ provider: p1.account.address, requestId: 'req-1', layers: 10, tokens: 20 }); // 200 gwei
    settler.recordWork({ provider: p2.account.address, requestId: 'req-1', layers: 5, tokens: 20 }); // 100 gwei
    settler.recordWork({ provider: p1.account.address, requestId: 'req-2', layers: 10, tokens: 5 }); // 50 gwei

    const batch = (await settler.settle())!;
    expect(batch).toMatchObject({ state: 'confirmed', total: 350n * GWEI, receipts: 3, note: null });
    expect(batch.txHash).toMatch(/^0x[0-9a-f]{64}$/);
    expect(await earnings(settlement, p1)).toBe(250n * GWEI);
    expect(await earnings(settlement, p2)).toBe(100n * GWEI);
    expect(ledger.unredeemedVouchers()).toEqual([]);
    expect(await settler.settle()).toBeUndefined(); // nothing new: no batch, no transaction
  });

  it('after a crash between sending a payout and hearing back, resumes without paying again and says why', async () => {
    const { settlement, ledger, open, p1, pending } = await preparedPayout('crash-submitted', { layers: 8, tokens: 25 }); // 200 gwei
    // The process sends the batch and records the hash, then dies before the receipt comes back.
    await payoutBatch(chain.coordinator, { settlement, batchId: pending.id, payouts: pending.payouts, onSubmitted: (h) => ledger.markSubmitted(pending.id, h) });
    const sentHash = ledger.batch(pending.id)!.txHash;
    ledger.close();

    const restarted = open();
    expect(restarted.ledger.batch(pending.id)!.state).toBe('submitted');
    const [resumed] = await restarted.settler.resume();
    expect(resumed).toMatchObject({ id: pending.id, state: 'confirmed', txHash: sentHash });
    expect(resumed.note).toMatch(/already paid on chain.*not sent again/);
    expect(await earnings(settlement, p1)).toBe(200n * GWEI);

    // Asking again, or replaying the same batch straight at the contract, pays nothing more.
    expect((await restarted.settler.submitBatch(pending.id)).state).toBe('confirmed');
    const replay = await payoutBatch(chain.coordinator, { settlement, batchId: pending.id, payouts: pending.payouts }).catch((e: unknown) => e);
    expect(replay).toBeInstanceOf(SettlementRevertError);
    expect((replay as SettlementRevertError).errorName).toBe('BatchAlreadyPaid');
    expect(await earnings(settlement, p1)).toBe(200n * GWEI);
  });

  it('after a crash before the hash was recorded, finds the paying transaction in the chain logs', async () => {
    const { settlement, ledger, open, p1, pending } = await preparedPayout('crash-pending', { layers: 1, tokens: 100 });
    const receipt = await payoutBatch(chain.coordinator, { settlement, batchId: pending.id, payouts: pending.payouts });
    ledger.close(); // the ledger never heard of the transaction

    const restarted = open();
    const [resumed] = await restarted.settler.resume();
    expect(resumed).toMatchObject({ state: 'confirmed', txHash: receipt.transactionHash });
    expect(await earnings(settlement, p1)).toBe(100n * GWEI);
  });

  it('after a crash before sending, resumes by paying the pending batch exactly once', async () => {
    const { settlement, ledger, settler, open } = await setup('crash-unsent');
    const [c1] = chain.clients;
    const [p1, p2] = chain.providers;
    await settler.acceptVoucher(await sign(c1, settler, 500n * GWEI));
    settler.recordWork({ provider: p1.account.address, requestId: 'req-1', layers: 3, tokens: 10 });
    settler.recordWork({ provider: p2.account.address, requestId: 'req-1', layers: 3, tokens: 10 });
    await settler.redeemVouchers();
    const pending = settler.prepareBatch()!;
    ledger.close();

    const restarted = open();
    const done = await restarted.settler.resume();
    expect(done.map((b) => [b.id, b.state, b.note])).toEqual([[pending.id, 'confirmed', null]]);
    expect(await restarted.settler.resume()).toEqual([]);
    expect(await restarted.settler.settle()).toBeUndefined();
    expect([await earnings(settlement, p1), await earnings(settlement, p2)]).toEqual([30n * GWEI, 30n * GWEI]);
  });

  it('slashes through the validator and records what the contract actually took', async () => {
    const { settlement, ledger, settler } = await setup('slash');
    const [p1] = chain.providers;
    await stake(p1, { settlement, amount: parseEther('0.5') });
    const evidenceHash = keccak256(toHex('fingerprint mismatch, request r9, layers 4-8'));
    const record = await settler.slash({ provider: p1.account.address, amount: parseEther('1'), evidenceHash, peerId: '12D3KooWBad' });
    expect(record).toMatchObject({ amount: parseEther('0.5'), evidenceHash, peerId: '12D3KooWBad' });
    expect(ledger.slashes(p1.account.address)).toHaveLength(1);
    expect((await balances(chain.publicClient, { settlement, account: p1.account.address })).stake).toBe(0n);
  });
});
