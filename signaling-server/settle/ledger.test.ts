import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { afterAll, describe, expect, it } from 'vitest';
import { batchId, LEDGER_SCHEMA_VERSION, LedgerError, openSettlementLedger } from './ledger.ts';

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
