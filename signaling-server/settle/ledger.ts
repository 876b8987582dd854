/**
 * The coordinator's settlement memory, in its own SQLite file (node:sqlite) next to the grid
 * store: the latest accepted voucher per client (and the newest rejected ones with their reasons), the
 * receipts of verified work, what of them each payout batch releases (rewards vest over time,
 * vesting.ts; what has not vested when a stage is convicted is forfeited), and the slashes. The settler
 * (settler.ts) writes here *before* it sends a transaction, so after a crash it knows what may
 * already be on chain and checks there before sending again.
 *
 * Amounts are wei, stored as decimal TEXT (SQLite integers stop at 2^63). Timestamps are ms since
 * the epoch. Schema migrations follow store.ts: numbered by `user_version`, append only.
 */
import { createHash } from 'node:crypto';
import { getAddress, type Address, type Hash, type Hex } from 'viem';
import { InfermeshError } from '../../shared/errors.ts';
import { openSqlite } from '../sqlite.ts';
import type { Payout } from '../../shared/settle/settlement-client.ts';
import type { SignedVoucher } from '../../shared/settle/voucher.ts';
import { vestedAmount } from './vesting.ts';

/** A ledger file that cannot be opened or used, or a write that contradicts what it holds. */
export class LedgerError extends InfermeshError {
  override name = 'LedgerError';
}

export interface AcceptedVoucher extends SignedVoucher {
  acceptedAt: number;
  /** the cumulative amount redeemed on chain so far */
  redeemed: bigint;
}

export interface RejectedVoucher extends SignedVoucher {
  id: number;
  /** the error's name: VoucherSignatureError, VoucherAmountError, VoucherEscrowError */
  reason: string;
  message: string;
  rejectedAt: number;
}

/** Verified work of one stage on one request, as the validator reports it. */
export interface HeldWork {
  peerId: string;
  requestId: string;
  layers: number;
  tokens: number;
}

export interface WorkReceipt {
  id: number;
  provider: Address;
  requestId: string;
  layers: number;
  tokens: number;
  amount: bigint;
  recordedAt: number;
  /** what batches have released of `amount` so far (rewards vest: vesting.ts) */
  released: bigint;
  /** what its stage lost of it, unvested, when it was convicted (returned to the payer's budget) */
  forfeited: bigint;
  /** the batch that released the last of it; null while some is still to be paid or it was forfeited */
  batchId: Hex | null;
}

/** One provider's earnings as the ledger holds them. */
export interface ProviderEarnings {
  provider: Address;
  /** layers × tokens of its receipts */
  verifiedWork: number;
  /** what its receipts are worth */
  earned: bigint;
  /** released in confirmed batches */
  paid: bigint;
  /** forfeited when it was convicted */
  forfeited: bigint;
}

export type BatchState = 'pending' | 'submitted' | 'confirmed';

export interface PayoutBatch {
  id: Hex;
  /** one entry per provider, sorted by address */
  payouts: Payout[];
  total: bigint;
  receipts: number;
  state: BatchState;
  txHash: Hash | null;
  /** why the batch ended as it did when it was not simply mined (found paid after a restart, ...) */
  note: string | null;
  /** the last failure to submit, kept while the batch waits for another try */
  lastError: string | null;
  createdAt: number;
  submittedAt: number | null;
  confirmedAt: number | null;
}

export interface SlashRecord {
  id: number;
  provider: Address;
  amount: bigint;
  evidenceHash: Hex;
  peerId: string | null;
  txHash: Hash;
  slashedAt: number;
}

export interface SettlementLedger {
  readonly path: string;
  latestVoucher(client: Address): AcceptedVoucher | undefined;
  acceptVoucher(voucher: SignedVoucher): AcceptedVoucher;
  rejectVoucher(voucher: SignedVoucher, reason: string, message: string): RejectedVoucher;
  /** A client's refused vouchers (or everyone's), oldest first; `limit`: only the newest that many. */
  rejectedVouchers(client?: Address, limit?: number): RejectedVoucher[];
  /** vouchers whose cumulative amount is above what was redeemed */
  unredeemedVouchers(): AcceptedVoucher[];
  markRedeemed(client: Address, cumulativeAmount: bigint): void;
  /** Idempotent on (provider, requestId): recording the same work again returns the first receipt. */
  recordWork(work: { provider: Address; requestId: string; layers: number; tokens: number; amount: bigint }): WorkReceipt;
  /** All receipts; with `batchId`, those the batch released some of; with null, those still being paid. */
  receipts(filter?: { batchId?: Hex | null }): WorkReceipt[];
  /**
   * Releases what has vested of every receipt still being paid (all of it with a half-life of 0,
   * the default) into a new pending batch (one transaction), or returns undefined when nothing
   * is due. `scope` (chain id and contract) goes into the id.
   */
  createBatch(scope: string, halfLifeMs?: number): PayoutBatch | undefined;
  /**
   * A convicted provider loses what its receipts have not released yet: each receipt's rest is
   * marked forfeited and returned to its request's payer's budget (the money stays in the pool).
   * Returns the wei forfeited.
   */
  forfeit(provider: Address): bigint;
  /** Every provider's (or one's) earned, paid and forfeited wei, in one query. */
  earnings(provider?: Address): ProviderEarnings[];
  batch(id: Hex): PayoutBatch | undefined;
  batches(filter?: { states?: BatchState[] }): PayoutBatch[];
  markSubmitted(id: Hex, txHash: Hash): void;
  markConfirmed(id: Hex, result: { txHash: Hash | null; note?: string }): void;
  markFailed(id: Hex, error: string): void;
  recordSlash(slash: Omit<SlashRecord, 'id' | 'slashedAt'>): SlashRecord;
  slashes(provider?: Address): SlashRecord[];
  /** Where a stage's earnings go, as its tab said when it joined. */
  setPayTo(peerId: string, address: Address): void;
  payTo(peerId: string): Address | undefined;
  /**
   * A client's voucher added `amount`: its budget grows by that, and it becomes the payer of
   * the request ids no one paid for yet. Returns those ids (their held work can now be paid).
   */
  creditClient(client: Address, requestIds: readonly string[], amount: bigint): string[];
  payerOf(requestId: string): Address | undefined;
  /**
   * In one transaction: a receipt for the work, worth at most what is left of the client's
   * budget, and the budget lowered by it. Undefined (nothing written) when the budget is spent.
   */
  payFromBudget(client: Address, work: { provider: Address; requestId: string; layers: number; tokens: number; worth: bigint }): WorkReceipt | undefined;
  /** Verified work on a request no client paid for yet, kept (the oldest beyond `keep` dropped) for a voucher that may still name it. */
  holdWork(work: HeldWork, keep: number): void;
  /** Takes the work held for a request. */
  releaseWork(requestId: string): HeldWork[];
  /** Records a bond the operator put up for a donor (sponsorship.ts decides whether it may). */
  recordSponsorship(s: { address: Address; peerId: string; deviceSignature?: string; amount: bigint }): void;
  /** Bonds out now (not returned): in all, how many, and whether an address or a device has one; and bonds made since a time. */
  sponsorships(): { total: bigint; count: number; since(at: number): number; hasAddress(address: Address): boolean; hasDevice(signature: string): boolean };
  /**
   * The life of a bond after it is made (bond-returns.ts): its donor left (`left`: the clock
   * starts, unless it already runs), came back (`back`: the clock stops), every bond out is taken
   * as left (`allLeft`, when the server starts: no donor is connected yet); the addresses whose
   * donor left before a time and whose return is not asked yet; the return asked; the bond back.
   */
  bonds: {
    left(address: Address, at: number): void;
    back(address: Address): void;
    allLeft(at: number): void;
    toReturn(leftBefore: number): Address[];
    requested(): Address[];
    returnRequested(address: Address, at: number): void;
    returned(address: Address, amount: bigint, at: number): void;
  };
  /** The Settlement contract this ledger settles on, on a chain; recorded once deployed. */
  /** The contract recorded for a chain, with the hash of the code it was deployed from (none for deployments recorded before that was kept). */
  deployment(chainId: number): { contract: Address; codeHash?: string } | undefined;
  recordDeployment(chainId: number, contract: Address, codeHash: string): void;
  close(): void;
}

const MIGRATIONS: readonly string[] = [
  `CREATE TABLE vouchers (
     client             TEXT PRIMARY KEY,
     cumulative_amount  TEXT NOT NULL,
     signature          TEXT NOT NULL,
     accepted_at        INTEGER NOT NULL,
     redeemed           TEXT NOT NULL DEFAULT '0'
   );
   CREATE TABLE rejected_vouchers (
     id                 INTEGER PRIMARY KEY AUTOINCREMENT,
     client             TEXT NOT NULL,
     cumulative_amount  TEXT NOT NULL,
     signature          TEXT NOT NULL,
     reason             TEXT NOT NULL,
     message            TEXT NOT NULL,
     rejected_at        INTEGER NOT NULL
   );
   CREATE INDEX rejected_vouchers_client ON rejected_vouchers (client, id);
   CREATE TABLE batches (
     batch_id      TEXT PRIMARY KEY,
     payouts       TEXT NOT NULL,
     total         TEXT NOT NULL,
     receipts      INTEGER NOT NULL,
     state         TEXT NOT NULL CHECK (state IN ('pending', 'submitted', 'confirmed')),
     tx_hash       TEXT,
     note          TEXT,
     last_error    TEXT,
     created_at    INTEGER NOT NULL,
     submitted_at  INTEGER,
     confirmed_at  INTEGER
   );
   CREATE INDEX batches_state ON batches (state, created_at);
   CREATE TABLE receipts (
     id           INTEGER PRIMARY KEY AUTOINCREMENT,
     provider     TEXT NOT NULL,
     request_id   TEXT NOT NULL,
     layers       INTEGER NOT NULL,
     tokens       INTEGER NOT NULL,
     amount       TEXT NOT NULL,
     recorded_at  INTEGER NOT NULL,
     batch_id     TEXT REFERENCES batches (batch_id),
     UNIQUE (provider, request_id)
   );
   CREATE INDEX receipts_batch ON receipts (batch_id);
   CREATE TABLE slashes (
     id             INTEGER PRIMARY KEY AUTOINCREMENT,
     provider       TEXT NOT NULL,
     amount         TEXT NOT NULL,
     evidence_hash  TEXT NOT NULL,
     peer_id        TEXT,
     tx_hash        TEXT NOT NULL,
     slashed_at     INTEGER NOT NULL
   );`,
  // 2: the contract the coordinator deployed on each chain, so a restart settles on it again.
  `CREATE TABLE deployments (
     chain_id INTEGER PRIMARY KEY,
     contract TEXT NOT NULL,
     deployed_at INTEGER NOT NULL
   );`,
  // 3: who pays for what, so verified work that arrives after a restart is still paid.
  `CREATE TABLE pay_to (
     peer_id  TEXT PRIMARY KEY,
     address  TEXT NOT NULL
   );
   CREATE TABLE request_payers (
     request_id  TEXT PRIMARY KEY,
     client      TEXT NOT NULL
   );
   CREATE TABLE budgets (
     client     TEXT PRIMARY KEY,
     remaining  TEXT NOT NULL
   );
   CREATE TABLE held_work (
     id          INTEGER PRIMARY KEY AUTOINCREMENT,
     request_id  TEXT NOT NULL,
     peer_id     TEXT NOT NULL,
     layers      INTEGER NOT NULL,
     tokens      INTEGER NOT NULL
   );
   CREATE INDEX held_work_request ON held_work (request_id);`,
  // 4: rewards vest (vesting.ts): a receipt is released over several batches, and forfeited in part on a conviction.
  `ALTER TABLE receipts ADD COLUMN released TEXT NOT NULL DEFAULT '0';
   ALTER TABLE receipts ADD COLUMN forfeited TEXT NOT NULL DEFAULT '0';
   CREATE TABLE releases (
     batch_id    TEXT NOT NULL REFERENCES batches (batch_id),
     receipt_id  INTEGER NOT NULL REFERENCES receipts (id),
     amount      TEXT NOT NULL,
     PRIMARY KEY (batch_id, receipt_id)
   );
   CREATE INDEX releases_receipt ON releases (receipt_id);
   UPDATE receipts SET released = amount WHERE batch_id IS NOT NULL;
   INSERT INTO releases (batch_id, receipt_id, amount) SELECT batch_id, id, amount FROM receipts WHERE batch_id IS NOT NULL;`,
  // 5: the operator's sponsored bonds (sponsorship.ts), one per payout address and per device.
  `CREATE TABLE sponsorships (
     address           TEXT PRIMARY KEY,
     peer_id           TEXT NOT NULL,
     device_signature  TEXT,
     amount            TEXT NOT NULL,
     sponsored_at      INTEGER NOT NULL
   );
   CREATE INDEX sponsorships_device ON sponsorships (device_signature);
   CREATE INDEX sponsorships_time ON sponsorships (sponsored_at);`,
  // 6: bonds go back to the operator when their donor has left (bond-returns.ts): a row per
  // bond, not per address, so an address whose bond came back may be bonded again.
  `CREATE TABLE bonds (
     id                   INTEGER PRIMARY KEY,
     address              TEXT NOT NULL,
     peer_id              TEXT NOT NULL,
     device_signature     TEXT,
     amount               TEXT NOT NULL,
     sponsored_at         INTEGER NOT NULL,
     left_at              INTEGER,
     return_requested_at  INTEGER,
     returned_at          INTEGER,
     returned_amount      TEXT
   );
   INSERT INTO bonds (address, peer_id, device_signature, amount, sponsored_at) SELECT address, peer_id, device_signature, amount, sponsored_at FROM sponsorships;
   DROP TABLE sponsorships;
   CREATE INDEX bonds_address ON bonds (address);
   CREATE INDEX bonds_device ON bonds (device_signature);
   CREATE INDEX bonds_time ON bonds (sponsored_at);`,
  // 7: which Settlement code each deployment runs (a hash of its creation code), so a ledger of
  // a contract an older infermesh deployed, whose functions differ, is known for one.
  `ALTER TABLE deployments ADD COLUMN code_hash TEXT;`,
];

export const LEDGER_SCHEMA_VERSION = MIGRATIONS.length;

/**
 * Refused vouchers kept, the newest: they explain a client's refusals, and anyone can post a
 * forged voucher, so the table is a window, not a history (accepted ones are all kept).
 */
export const MAX_REJECTED_VOUCHERS = 10_000;

export function openSettlementLedger(path: string, deps: { now?: () => number; maxRejectedVouchers?: number } = {}): SettlementLedger {
  const now = deps.now ?? Date.now;
  const maxRejected = deps.maxRejectedVouchers ?? MAX_REJECTED_VOUCHERS;
  const { db, transaction } = openSqlite({ path, migrations: MIGRATIONS, what: 'the settlement ledger', error: LedgerError });

  const budgetOf = (client: Address): bigint => BigInt((q.budget.get(client) as { remaining: string } | undefined)?.remaining ?? '0');
  const setBudget = (client: Address, remaining: bigint) => q.setBudget.run(client, remaining.toString());
  const q = {
    setPayTo: db.prepare('INSERT INTO pay_to (peer_id, address) VALUES (?, ?) ON CONFLICT (peer_id) DO UPDATE SET address = excluded.address'),
    payTo: db.prepare('SELECT address FROM pay_to WHERE peer_id = ?'),
    payer: db.prepare('SELECT client FROM request_payers WHERE request_id = ?'),
    insertPayer: db.prepare('INSERT INTO request_payers (request_id, client) VALUES (?, ?) ON CONFLICT DO NOTHING'),
    budget: db.prepare('SELECT remaining FROM budgets WHERE client = ?'),
    setBudget: db.prepare('INSERT INTO budgets (client, remaining) VALUES (?, ?) ON CONFLICT (client) DO UPDATE SET remaining = excluded.remaining'),
    holdWork: db.prepare('INSERT INTO held_work (request_id, peer_id, layers, tokens) VALUES (?, ?, ?, ?)'),
    heldWork: db.prepare('SELECT * FROM held_work WHERE request_id = ? ORDER BY id'),
    releaseWork: db.prepare('DELETE FROM held_work WHERE request_id = ?'),
    trimHeldWork: db.prepare('DELETE FROM held_work WHERE id <= (SELECT MAX(id) FROM held_work) - ?'),
    deployment: db.prepare('SELECT contract, code_hash FROM deployments WHERE chain_id = ?'),
    recordDeployment: db.prepare(
      'INSERT INTO deployments (chain_id, contract, deployed_at, code_hash) VALUES (?, ?, ?, ?) ON CONFLICT (chain_id) DO UPDATE SET contract = excluded.contract, deployed_at = excluded.deployed_at, code_hash = excluded.code_hash',
    ),
    voucher: db.prepare('SELECT * FROM vouchers WHERE client = ?'),
    upsertVoucher: db.prepare(
      `INSERT INTO vouchers (client, cumulative_amount, signature, accepted_at) VALUES (?, ?, ?, ?)
       ON CONFLICT (client) DO UPDATE SET cumulative_amount = excluded.cumulative_amount, signature = excluded.signature, accepted_at = excluded.accepted_at`,
    ),
    // Cumulative amounts are compared as numbers in JS: TEXT would sort "9" above "10".
    allVouchers: db.prepare('SELECT * FROM vouchers ORDER BY client'),
    setRedeemed: db.prepare('UPDATE vouchers SET redeemed = ? WHERE client = ?'),
    insertRejected: db.prepare('INSERT INTO rejected_vouchers (client, cumulative_amount, signature, reason, message, rejected_at) VALUES (?, ?, ?, ?, ?, ?)'),
    rejected: db.prepare('SELECT * FROM (SELECT * FROM rejected_vouchers WHERE (?1 IS NULL OR client = ?1) ORDER BY id DESC LIMIT ?2) ORDER BY id'),
    rejectedById: db.prepare('SELECT * FROM rejected_vouchers WHERE id = ?'),
    trimRejected: db.prepare('DELETE FROM rejected_vouchers WHERE id <= ?'),
    insertReceipt: db.prepare('INSERT INTO receipts (provider, request_id, layers, tokens, amount, recorded_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING'),
    receipt: db.prepare('SELECT * FROM receipts WHERE provider = ? AND request_id = ?'),
    receiptsAll: db.prepare('SELECT * FROM receipts ORDER BY id'),
    receiptsOpen: db.prepare(`SELECT * FROM receipts WHERE batch_id IS NULL AND forfeited = '0' ORDER BY id`),
    receiptsOfProvider: db.prepare(`SELECT * FROM receipts WHERE provider = ? AND batch_id IS NULL AND forfeited = '0' ORDER BY id`),
    receiptsOfBatch: db.prepare('SELECT receipts.* FROM receipts JOIN releases ON releases.receipt_id = receipts.id WHERE releases.batch_id = ? ORDER BY receipts.id'),
    release: db.prepare('UPDATE receipts SET released = ?, batch_id = ? WHERE id = ?'),
    insertRelease: db.prepare('INSERT INTO releases (batch_id, receipt_id, amount) VALUES (?, ?, ?)'),
    forfeitReceipt: db.prepare('UPDATE receipts SET forfeited = ? WHERE id = ?'),
    // Amounts are TEXT (wei beyond 2^63): summed per row in JS, the rows grouped here.
    earnings: db.prepare(
      `SELECT receipts.provider, receipts.layers, receipts.tokens, receipts.amount, receipts.forfeited,
              (SELECT group_concat(releases.amount) FROM releases JOIN batches ON batches.batch_id = releases.batch_id
                WHERE releases.receipt_id = receipts.id AND batches.state = 'confirmed') AS paid
       FROM receipts WHERE (?1 IS NULL OR receipts.provider = ?1) ORDER BY receipts.provider, receipts.id`,
    ),
    insertBatch: db.prepare(`INSERT INTO batches (batch_id, payouts, total, receipts, state, created_at) VALUES (?, ?, ?, ?, 'pending', ?)`),
    batch: db.prepare('SELECT * FROM batches WHERE batch_id = ?'),
    batches: db.prepare('SELECT * FROM batches ORDER BY created_at, rowid'),
    submitted: db.prepare(`UPDATE batches SET state = 'submitted', tx_hash = ?, submitted_at = ?, last_error = NULL WHERE batch_id = ? AND state != 'confirmed'`),
    confirmed: db.prepare(`UPDATE batches SET state = 'confirmed', tx_hash = COALESCE(?, tx_hash), note = ?, confirmed_at = ?, last_error = NULL WHERE batch_id = ?`),
    failed: db.prepare('UPDATE batches SET last_error = ? WHERE batch_id = ?'),
    insertSlash: db.prepare('INSERT INTO slashes (provider, amount, evidence_hash, peer_id, tx_hash, slashed_at) VALUES (?, ?, ?, ?, ?, ?)'),
    slash: db.prepare('SELECT * FROM slashes WHERE id = ?'),
    slashes: db.prepare('SELECT * FROM slashes WHERE (?1 IS NULL OR provider = ?1) ORDER BY id'),
    insertSponsorship: db.prepare('INSERT INTO bonds (address, peer_id, device_signature, amount, sponsored_at) VALUES (?, ?, ?, ?, ?)'),
    sponsorshipAmounts: db.prepare('SELECT amount FROM bonds WHERE returned_at IS NULL'),
    sponsorshipsSince: db.prepare('SELECT COUNT(*) AS n FROM bonds WHERE sponsored_at >= ?'),
    sponsoredAddress: db.prepare('SELECT 1 FROM bonds WHERE address = ? AND returned_at IS NULL'),
    sponsoredDevice: db.prepare('SELECT 1 FROM bonds WHERE device_signature = ? AND returned_at IS NULL'),
    bondLeft: db.prepare('UPDATE bonds SET left_at = ? WHERE address = ? AND returned_at IS NULL AND return_requested_at IS NULL AND left_at IS NULL'),
    bondBack: db.prepare('UPDATE bonds SET left_at = NULL WHERE address = ? AND returned_at IS NULL AND return_requested_at IS NULL'),
    bondsAbsent: db.prepare('UPDATE bonds SET left_at = ? WHERE returned_at IS NULL AND return_requested_at IS NULL AND left_at IS NULL'),
    bondsToReturn: db.prepare('SELECT address FROM bonds WHERE returned_at IS NULL AND return_requested_at IS NULL AND left_at <= ? ORDER BY id'),
    bondsRequested: db.prepare('SELECT address FROM bonds WHERE returned_at IS NULL AND return_requested_at IS NOT NULL ORDER BY id'),
    bondReturnRequested: db.prepare('UPDATE bonds SET return_requested_at = ? WHERE address = ? AND returned_at IS NULL'),
    bondReturned: db.prepare('UPDATE bonds SET returned_at = ?, returned_amount = ? WHERE address = ? AND returned_at IS NULL'),
  };

  const batch = (id: Hex) => {
    const row = q.batch.get(id);
    return row ? batchOf(row) : undefined;
  };
  const must = (id: Hex, changes: number | bigint) => {
    if (Number(changes) === 0) throw new LedgerError(`no batch ${id} in the ledger (or it is already confirmed)`, { source: path });
  };

  const ledger: SettlementLedger = {
    path,
    latestVoucher(client) {
      const row = q.voucher.get(getAddress(client));
      return row ? voucherOf(row) : undefined;
    },
    acceptVoucher(v) {
      const client = getAddress(v.client);
      q.upsertVoucher.run(client, v.cumulativeAmount.toString(), v.signature, now());
      return voucherOf(q.voucher.get(client)!);
    },
    rejectVoucher(v, reason, message) {
      const { lastInsertRowid } = q.insertRejected.run(getAddress(v.client), v.cumulativeAmount.toString(), v.signature, reason, message, now());
      q.trimRejected.run(Number(lastInsertRowid) - maxRejected);
      return rejectedOf(q.rejectedById.get(lastInsertRowid)!);
    },
    rejectedVouchers(client, limit = -1) {
      // SQLite reads a negative LIMIT as none.
      return q.rejected.all(client ? getAddress(client) : null, limit).map(rejectedOf);
    },
    unredeemedVouchers() {
      return q.allVouchers.all().map(voucherOf).filter((v) => v.cumulativeAmount > v.redeemed);
    },
    markRedeemed(client, cumulativeAmount) {
      q.setRedeemed.run(cumulativeAmount.toString(), getAddress(client));
    },
    recordWork(work) {
      const provider = getAddress(work.provider);
      q.insertReceipt.run(provider, work.requestId, work.layers, work.tokens, work.amount.toString(), now());
      const receipt = receiptOf(q.receipt.get(provider, work.requestId)!);
      if (receipt.amount !== work.amount || receipt.layers !== work.layers || receipt.tokens !== work.tokens) {
        throw new LedgerError(`request ${work.requestId} of ${provider} is already recorded with different work`, { source: path });
      }
      return receipt;
    },
    receipts(filter = {}) {
      if (filter.batchId === undefined) return q.receiptsAll.all().map(receiptOf);
      return (filter.batchId === null ? q.receiptsOpen.all() : q.receiptsOfBatch.all(filter.batchId)).map(receiptOf);
    },
    createBatch(scope, halfLifeMs = 0) {
      return transaction(() => {
        const at = now();
        const due = q.receiptsOpen
          .all()
          .map(receiptOf)
          .map((receipt) => ({ receipt, amount: vestedAmount(receipt.amount, at - receipt.recordedAt, halfLifeMs) - receipt.released }))
          .filter((d) => d.amount > 0n);
        if (due.length === 0) return undefined;
        const owed = new Map<Address, bigint>();
        for (const d of due) owed.set(d.receipt.provider, (owed.get(d.receipt.provider) ?? 0n) + d.amount);
        const payouts = [...owed].map(([provider, amount]) => ({ provider, amount })).sort((a, b) => compare(a.provider.toLowerCase(), b.provider.toLowerCase()));
        const total = payouts.reduce((sum, p) => sum + p.amount, 0n);
        const id = batchId(scope, due.map((d) => ({ provider: d.receipt.provider, requestId: d.receipt.requestId, amount: d.amount, releasedAfter: d.receipt.released + d.amount })));
        q.insertBatch.run(id, JSON.stringify(payouts, bigintJson), total.toString(), due.length, at);
        for (const { receipt, amount } of due) {
          const released = receipt.released + amount;
          q.insertRelease.run(id, receipt.id, amount.toString());
          q.release.run(released.toString(), released === receipt.amount ? id : null, receipt.id);
        }
        return batch(id)!;
      });
    },
    forfeit(provider) {
      const who = getAddress(provider);
      return transaction(() => {
        let total = 0n;
        for (const r of q.receiptsOfProvider.all(who).map(receiptOf)) {
          const rest = r.amount - r.released;
          if (rest <= 0n) continue;
          q.forfeitReceipt.run(rest.toString(), r.id);
          const payer = ledger.payerOf(r.requestId);
          if (payer) setBudget(payer, budgetOf(payer) + rest);
          total += rest;
        }
        return total;
      });
    },
    earnings(provider) {
      const byProvider = new Map<string, ProviderEarnings>();
      for (const r of q.earnings.all(provider ? getAddress(provider) : null) as { provider: string; layers: number; tokens: number; amount: string; forfeited: string; paid: string | null }[]) {
        const provider = r.provider as Address;
        const e = byProvider.get(provider) ?? { provider, verifiedWork: 0, earned: 0n, paid: 0n, forfeited: 0n };
        e.verifiedWork += Number(r.layers) * Number(r.tokens);
        e.earned += BigInt(r.amount);
        e.forfeited += BigInt(r.forfeited);
        for (const part of r.paid?.split(',') ?? []) e.paid += BigInt(part);
        byProvider.set(provider, e);
      }
      return [...byProvider.values()];
    },
    batch,
    batches(filter = {}) {
      const all = q.batches.all().map(batchOf);
      return filter.states ? all.filter((b) => filter.states!.includes(b.state)) : all;
    },
    markSubmitted(id, txHash) {
      must(id, q.submitted.run(txHash, now(), id).changes);
    },
    markConfirmed(id, result) {
      must(id, q.confirmed.run(result.txHash, result.note ?? null, now(), id).changes);
    },
    markFailed(id, error) {
      must(id, q.failed.run(error, id).changes);
    },
    recordSlash(s) {
      const { lastInsertRowid } = q.insertSlash.run(getAddress(s.provider), s.amount.toString(), s.evidenceHash, s.peerId, s.txHash, now());
      return slashOf(q.slash.get(lastInsertRowid)!);
    },
    slashes(provider) {
      return q.slashes.all(provider ? getAddress(provider) : null).map(slashOf);
    },
    recordSponsorship(sp) {
      q.insertSponsorship.run(getAddress(sp.address), sp.peerId, sp.deviceSignature ?? null, sp.amount.toString(), now());
    },
    sponsorships() {
      const amounts = (q.sponsorshipAmounts.all() as { amount: string }[]).map((r) => BigInt(r.amount));
      return {
        total: amounts.reduce((a, b) => a + b, 0n),
        count: amounts.length,
        since: (at) => Number((q.sponsorshipsSince.get(at) as { n: number }).n),
        hasAddress: (address) => q.sponsoredAddress.get(getAddress(address)) !== undefined,
        hasDevice: (signature) => q.sponsoredDevice.get(signature) !== undefined,
      };
    },
    bonds: {
      left: (address, at) => void q.bondLeft.run(at, getAddress(address)),
      back: (address) => void q.bondBack.run(getAddress(address)),
      allLeft: (at) => void q.bondsAbsent.run(at),
      toReturn: (before) => (q.bondsToReturn.all(before) as { address: Address }[]).map((r) => r.address),
      requested: () => (q.bondsRequested.all() as { address: Address }[]).map((r) => r.address),
      returnRequested: (address, at) => void q.bondReturnRequested.run(at, getAddress(address)),
      returned: (address, amount, at) => void q.bondReturned.run(at, amount.toString(), getAddress(address)),
    },
    setPayTo(peerId, address) {
      q.setPayTo.run(peerId, getAddress(address));
    },
    payTo(peerId) {
      const row = q.payTo.get(peerId) as { address: string } | undefined;
      return row ? getAddress(row.address) : undefined;
    },
    creditClient(client, requestIds, amount) {
      const who = getAddress(client);
      return transaction(() => {
        setBudget(who, budgetOf(who) + amount);
        return requestIds.filter((id) => q.insertPayer.run(id, who).changes > 0);
      });
    },
    payerOf(requestId) {
      const row = q.payer.get(requestId) as { client: string } | undefined;
      return row ? getAddress(row.client) : undefined;
    },
    payFromBudget(client, work) {
      const who = getAddress(client);
      return transaction(() => {
        const left = budgetOf(who);
        const amount = work.worth < left ? work.worth : left;
        if (amount <= 0n) return undefined;
        const receipt = ledger.recordWork({ provider: work.provider, requestId: work.requestId, layers: work.layers, tokens: work.tokens, amount });
        setBudget(who, left - amount);
        return receipt;
      });
    },
    holdWork(work, keep) {
      q.holdWork.run(work.requestId, work.peerId, work.layers, work.tokens);
      q.trimHeldWork.run(keep);
    },
    releaseWork(requestId) {
      return transaction(() => {
        const rows = q.heldWork.all(requestId) as { request_id: string; peer_id: string; layers: number; tokens: number }[];
        q.releaseWork.run(requestId);
        return rows.map((r) => ({ requestId: r.request_id, peerId: r.peer_id, layers: r.layers, tokens: r.tokens }));
      });
    },
    deployment(chainId) {
      const row = q.deployment.get(chainId) as { contract: string; code_hash: string | null } | undefined;
      return row ? { contract: row.contract as Address, ...(row.code_hash !== null && { codeHash: row.code_hash }) } : undefined;
    },
    recordDeployment(chainId, contract, codeHash) {
      // As given (deployments report lower case): the next run reports the same string.
      getAddress(contract);
      q.recordDeployment.run(chainId, contract, now(), codeHash);
    },
    close() {
      if (db.isOpen) db.close();
    },
  };
  return ledger;
}

/**
 * sha256 over the sorted work a batch pays (provider, request, amount released, and, for a part
 * of a vesting receipt, what is released of it by then) and its scope. Keyed by the work rather
 * than by row ids, so the same work always gets the same id: rebuilt from a lost ledger it is
 * still recognised on chain as paid, and different work never collides.
 */
export function batchId(scope: string, releases: readonly { provider: Address; requestId: string; amount: bigint; releasedAfter?: bigint }[]): Hex {
  const lines = releases
    .map((r) => `${r.provider.toLowerCase()}\t${r.requestId}\t${r.amount}${r.releasedAfter !== undefined && r.releasedAfter !== r.amount ? `\t${r.releasedAfter}` : ''}`)
    .sort(compare);
  return `0x${createHash('sha256').update(`infermesh-batch-v1\n${scope}\n${lines.join('\n')}`).digest('hex')}`;
}

const compare = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
const bigintJson = (_key: string, value: unknown) => (typeof value === 'bigint' ? value.toString() : value);

type Row = Record<string, unknown>;

function voucherOf(r: Row): AcceptedVoucher {
  return {
    client: r.client as Address,
    cumulativeAmount: BigInt(r.cumulative_amount as string),
    signature: r.signature as Hex,
    acceptedAt: Number(r.accepted_at),
    redeemed: BigInt(r.redeemed as string),
  };
}

function rejectedOf(r: Row): RejectedVoucher {
  return {
    id: Number(r.id),
    client: r.client as Address,
    cumulativeAmount: BigInt(r.cumulative_amount as string),
    signature: r.signature as Hex,
    reason: r.reason as string,
    message: r.message as string,
    rejectedAt: Number(r.rejected_at),
  };
}

function receiptOf(r: Row): WorkReceipt {
  return {
    id: Number(r.id),
    provider: r.provider as Address,
    requestId: r.request_id as string,
    layers: Number(r.layers),
    tokens: Number(r.tokens),
    amount: BigInt(r.amount as string),
    recordedAt: Number(r.recorded_at),
    released: BigInt(r.released as string),
    forfeited: BigInt(r.forfeited as string),
    batchId: (r.batch_id as Hex | null) ?? null,
  };
}

function batchOf(r: Row): PayoutBatch {
  const payouts = JSON.parse(r.payouts as string) as { provider: Address; amount: string }[];
  return {
    id: r.batch_id as Hex,
    payouts: payouts.map((p) => ({ provider: p.provider, amount: BigInt(p.amount) })),
    total: BigInt(r.total as string),
    receipts: Number(r.receipts),
    state: r.state as BatchState,
    txHash: (r.tx_hash as Hash | null) ?? null,
    note: (r.note as string | null) ?? null,
    lastError: (r.last_error as string | null) ?? null,
    createdAt: Number(r.created_at),
    submittedAt: r.submitted_at === null ? null : Number(r.submitted_at),
    confirmedAt: r.confirmed_at === null ? null : Number(r.confirmed_at),
  };
}

function slashOf(r: Row): SlashRecord {
  return {
    id: Number(r.id),
    provider: r.provider as Address,
    amount: BigInt(r.amount as string),
    evidenceHash: r.evidence_hash as Hex,
    peerId: (r.peer_id as string | null) ?? null,
    txHash: r.tx_hash as Hash,
    slashedAt: Number(r.slashed_at),
  };
}
