import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { afterAll, describe, expect, it } from 'vitest';
import { batchId, LEDGER_SCHEMA_VERSION, LedgerError, openSettlementLedger } from './ledger.ts';
import { VESTED_AFTER_HALF_LIVES, vestedAmount } from './vesting.ts';

const dir = mkdtempSync(join(tmpdir(), 'infermesh-ledger-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const P1 = '0x70997970C51812dc3A010C7d01b50e0d17dc79C8';
const P2 = '0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC';

describe('settlement ledger', () => {
  it('migrates a new file to the current schema version', () => {
    const path = join(dir, 'new.sqlite');
    openSettlementLedger(path).close();
    const db = new DatabaseSync(path);
    expect((db.prepare('PRAGMA user_version').get() as { user_version: number }).user_version).toBe(LEDGER_SCHEMA_VERSION);
    db.close();
  });

  it('refuses a file from a newer infermesh', () => {
    const path = join(dir, 'future.sqlite');
    const db = new DatabaseSync(path);
    db.exec(`PRAGMA user_version = ${LEDGER_SCHEMA_VERSION + 1}`);
    db.close();
    expect(() => openSettlementLedger(path)).toThrow(LedgerError);
  });

  it('records the same work once, and refuses the same request with different work', () => {
    const ledger = openSettlementLedger(':memory:');
    const first = ledger.recordWork({ provider: P1, requestId: 'r1', layers: 4, tokens: 10, amount: 40n });
    expect(ledger.recordWork({ provider: P1, requestId: 'r1', layers: 4, tokens: 10, amount: 40n }).id).toBe(first.id);
    expect(() => ledger.recordWork({ provider: P1, requestId: 'r1', layers: 4, tokens: 11, amount: 44n })).toThrow(/different work/);
    expect(ledger.receipts()).toHaveLength(1);
  });

  it('keeps a window of the newest refused vouchers: anyone can post forged ones by the thousand', () => {
    const ledger = openSettlementLedger(':memory:', { maxRejectedVouchers: 3 });
    const forged = (amount: bigint) => ({ client: P1 as `0x${string}`, cumulativeAmount: amount, signature: `0x${'ab'.repeat(65)}` as const });
    for (let i = 1n; i <= 5n; i++) expect(ledger.rejectVoucher(forged(i), 'VoucherSignatureError', `forgery ${i}`).cumulativeAmount).toBe(i);
    expect(ledger.rejectedVouchers().map((v) => v.cumulativeAmount)).toEqual([3n, 4n, 5n]);
    expect(ledger.rejectedVouchers(P1, 2).map((v) => v.cumulativeAmount)).toEqual([4n, 5n]);
    expect(ledger.rejectedVouchers(P2)).toEqual([]);
  });

  it('batches unpaid receipts per provider under an id that depends only on the work', () => {
    const ledger = openSettlementLedger(':memory:');
    ledger.recordWork({ provider: P2, requestId: 'r1', layers: 2, tokens: 5, amount: 10n });
    ledger.recordWork({ provider: P1, requestId: 'r1', layers: 2, tokens: 5, amount: 10n });
    ledger.recordWork({ provider: P2, requestId: 'r2', layers: 2, tokens: 1, amount: 2n });
    const batch = ledger.createBatch('31337:0xabc')!;
    expect(batch.payouts).toEqual([{ provider: P2, amount: 12n }, { provider: P1, amount: 10n }]); // by address
    expect([batch.total, batch.receipts, batch.state]).toEqual([22n, 3, 'pending']);
    expect(ledger.receipts({ batchId: null })).toEqual([]);
    expect(ledger.createBatch('31337:0xabc')).toBeUndefined();
    // Same work in another order gives the same id; other work or another contract does not.
    const work = ledger.receipts();
    expect(batchId('31337:0xabc', [...work].reverse())).toBe(batch.id);
    expect(batchId('31337:0xdef', work)).not.toBe(batch.id);
    expect(batchId('31337:0xabc', work.slice(1))).not.toBe(batch.id);
  });

  it('moves a batch from pending to submitted to confirmed, and keeps the last failure', () => {
    const ledger = openSettlementLedger(':memory:');
    ledger.recordWork({ provider: P1, requestId: 'r1', layers: 1, tokens: 1, amount: 1n });
    const { id } = ledger.createBatch('s')!;
    ledger.markFailed(id, 'SettlementTransactionError: RPC down');
    expect(ledger.batch(id)!.lastError).toMatch(/RPC down/);
    ledger.markSubmitted(id, '0x01');
    ledger.markConfirmed(id, { txHash: null });
    expect(ledger.batch(id)).toMatchObject({ state: 'confirmed', txHash: '0x01', lastError: null });
    expect(() => ledger.markSubmitted(id, '0x02')).toThrow(LedgerError);
  });
});

describe('vesting rewards', () => {
  const HOUR = 3_600_000;
  const C = '0x90F79bf6EB2c4f870365E785982E1f101E93b906';

  it('vests half of what is unpaid each half-life, all of it after eight, rounding down', () => {
    expect(vestedAmount(1000n, 0, HOUR)).toBe(0n);
    expect(vestedAmount(1000n, HOUR, HOUR)).toBe(500n);
    expect(vestedAmount(1000n, 2 * HOUR, HOUR)).toBe(750n);
    expect(vestedAmount(1000n, 7.9 * HOUR, HOUR)).toBe(995n);
    expect(vestedAmount(1000n, VESTED_AFTER_HALF_LIVES * HOUR, HOUR)).toBe(1000n);
    expect(vestedAmount(1000n, 5, 0)).toBe(1000n); // no smoothing: paid whole
    expect(vestedAmount(10n ** 24n, HOUR, HOUR)).toBe(5n * 10n ** 23n); // wei beyond 2^63
  });

  it('releases a receipt over several batches, each paying what vested since the last', () => {
    let clock = 1_000_000;
    const ledger = openSettlementLedger(':memory:', { now: () => clock });
    ledger.recordWork({ provider: P1, requestId: 'r1', layers: 4, tokens: 100, amount: 4000n });
    expect(ledger.createBatch('s', HOUR)).toBeUndefined(); // nothing vested yet
    clock += HOUR;
    const first = ledger.createBatch('s', HOUR)!;
    expect(first.payouts).toEqual([{ provider: P1, amount: 2000n }]);
    ledger.recordWork({ provider: P2, requestId: 'r2', layers: 1, tokens: 10, amount: 100n });
    clock += HOUR;
    const second = ledger.createBatch('s', HOUR)!;
    expect(second.payouts).toEqual([{ provider: P2, amount: 50n }, { provider: P1, amount: 1000n }]);
    expect(second.id).not.toBe(first.id);
    expect(ledger.receipts({ batchId: second.id }).map((r) => r.requestId)).toEqual(['r1', 'r2']);
    clock += VESTED_AFTER_HALF_LIVES * HOUR;
    const last = ledger.createBatch('s', HOUR)!;
    expect(last.payouts).toEqual([{ provider: P2, amount: 50n }, { provider: P1, amount: 1000n }]);
    // Every wei of every receipt released exactly once, the last batch closing each.
    expect(ledger.receipts().map((r) => [r.released, r.batchId])).toEqual([[4000n, last.id], [100n, last.id]]);
    expect(ledger.receipts({ batchId: null })).toEqual([]);
    expect(ledger.createBatch('s', HOUR)).toBeUndefined();
  });

  it('forfeits what a convicted provider has not been paid, back to its payers\' budgets', () => {
    let clock = 0;
    const ledger = openSettlementLedger(':memory:', { now: () => clock });
    ledger.creditClient(C, ['r1', 'r2'], 10_000n);
    ledger.payFromBudget(C, { provider: P1, requestId: 'r1', layers: 2, tokens: 1000, worth: 2000n });
    ledger.payFromBudget(C, { provider: P2, requestId: 'r1', layers: 2, tokens: 1000, worth: 2000n });
    clock += HOUR;
    const batch = ledger.createBatch('s', HOUR)!;
    expect(batch.total).toBe(2000n);
    ledger.markConfirmed(batch.id, { txHash: '0x01' });
    expect(ledger.forfeit(P1)).toBe(1000n);
    expect(ledger.forfeit(P1)).toBe(0n); // once
    // The client can spend it again: 10,000 − 4,000 + 1,000.
    expect(ledger.payFromBudget(C, { provider: P2, requestId: 'r2', layers: 1, tokens: 1, worth: 1_000_000n })!.amount).toBe(7000n);
    clock += 100 * HOUR;
    const rest = ledger.createBatch('s', HOUR)!;
    expect(rest.payouts.map((p) => p.provider)).toEqual([P2]); // nothing more for P1
    const earnings = Object.fromEntries(ledger.earnings().map((e) => [e.provider, e]));
    expect(earnings[P1]).toEqual({ provider: P1, verifiedWork: 2000, earned: 2000n, paid: 1000n, forfeited: 1000n });
    expect(earnings[P2]).toMatchObject({ earned: 9000n, paid: 1000n, forfeited: 0n }); // the second batch is not confirmed yet
  });

  it('migrates receipts paid before vesting existed as wholly released by their batch', () => {
    const path = join(dir, 'v3.sqlite');
    const ledger = openSettlementLedger(path);
    ledger.recordWork({ provider: P1, requestId: 'old', layers: 1, tokens: 1, amount: 7n });
    const { id } = ledger.createBatch('s')!;
    ledger.close();
    // As a version-3 file held it: released and releases not yet there.
    const db = new DatabaseSync(path);
    db.exec(`DROP TABLE releases; DROP TABLE bonds; ALTER TABLE receipts DROP COLUMN released; ALTER TABLE receipts DROP COLUMN forfeited; ALTER TABLE deployments DROP COLUMN code_hash; PRAGMA user_version = 3`);
    db.close();
    const again = openSettlementLedger(path);
    expect(again.receipts()).toEqual([expect.objectContaining({ requestId: 'old', released: 7n, forfeited: 0n, batchId: id })]);
    expect(again.receipts({ batchId: id })).toHaveLength(1);
    expect(again.createBatch('s', 3_600_000)).toBeUndefined();
    again.close();
  });
});
