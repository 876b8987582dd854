/**
 * The coordinator's side of settlement: takes clients' vouchers (recording every rejection and
 * why), records verified work as receipts, redeems vouchers into the contract's pool and pays
 * providers in batches. Every batch is written to the ledger before its transaction is sent, and
 * every send is preceded by `isBatchPaid` on chain, so a coordinator that crashes anywhere and
 * restarts (`resume()`) finishes what it started and never pays a batch twice; the contract's
 * BatchAlreadyPaid revert is the last line of defence.
 */
import { type Address, type Hash, type Hex } from 'viem';
import { InfermeshError } from '../../shared/errors.ts';
import { SettlementRevertError, VoucherEscrowError } from '../../shared/settle/errors.ts';
import {
  balances,
  findBatchPayment,
  isBatchPaid,
  payoutBatch,
  redeem,
  settlementEvents,
  slash,
  type SettlementWallet,
} from '../../shared/settle/settlement-client.ts';
import { checkVoucher, voucherDomain, type SignedVoucher, type VoucherDomain } from '../../shared/settle/voucher.ts';
import type { AcceptedVoucher, PayoutBatch, SettlementLedger, SlashRecord, WorkReceipt } from './ledger.ts';

export interface SettlerOptions {
  ledger: SettlementLedger;
  /** the coordinator's wallet (its account is the contract's coordinator role) */
  wallet: SettlementWallet;
  settlement: Address;
  /** wei per layer per token when work is recorded without an explicit amount */
  pricePerLayerToken?: bigint;
  /** refuse vouchers the client's escrow cannot pay (one chain read per voucher); default true */
  checkEscrow?: boolean;
  /** the half-life over which receipts vest (vesting.ts); default 0: a receipt is paid whole in the next batch */
  rewardHalfLifeMs?: number;
}

export interface SettlerDeps {
  /** the validator's wallet, needed only by slash() */
  validatorWallet?: SettlementWallet;
  log?: (line: string) => void;
}

export interface Settler {
  readonly domain: VoucherDomain;
  /** Checks and keeps a client's voucher; throws its Voucher*Error after recording the rejection. */
  acceptVoucher(voucher: SignedVoucher): Promise<AcceptedVoucher>;
  recordWork(work: { provider: Address; requestId: string; layers: number; tokens: number; amount?: bigint }): WorkReceipt;
  /** Redeems every voucher above what was redeemed; returns the wei moved into the pool. */
  redeemVouchers(): Promise<bigint>;
  /** Releases what vested of unpaid receipts into a pending batch (in the ledger only). */
  prepareBatch(): PayoutBatch | undefined;
  /** Pays one batch unless the chain says it is paid already; returns it confirmed. */
  submitBatch(id: Hex): Promise<PayoutBatch>;
  /** Finishes every pending or submitted batch left by an earlier run. */
  resume(): Promise<PayoutBatch[]>;
  /** resume, redeem, prepare, submit: one full round; returns the new batch if there was work. */
  settle(): Promise<PayoutBatch | undefined>;
  slash(s: { provider: Address; amount: bigint; evidenceHash: Hex; peerId?: string }): Promise<SlashRecord>;
}

/** The settler was asked to do something its setup does not allow (no validator wallet, no chain). */
export class SettlerError extends InfermeshError {
  override name = 'SettlerError';
}

export function createSettler(options: SettlerOptions, deps: SettlerDeps = {}): Settler {
  const { ledger, wallet, settlement } = options;
  const price = options.pricePerLayerToken ?? 1_000_000_000n; // 1 gwei per layer-token: a placeholder until pricing exists
  const checkEscrow = options.checkEscrow ?? true;
  const log = deps.log ?? (() => {});
  const domain = voucherDomain({ chainId: wallet.chain.id, verifyingContract: settlement });
  const scope = `${wallet.chain.id}:${settlement.toLowerCase()}`;

  async function acceptVoucher(voucher: SignedVoucher): Promise<AcceptedVoucher> {
    try {
      await checkVoucher(domain, ledger.latestVoucher(voucher.client), voucher);
      if (checkEscrow) {
        // What the voucher can still draw is escrow plus what was already redeemed from it.
        const b = await balances(wallet, { settlement, account: voucher.client });
        if (voucher.cumulativeAmount > b.escrow + b.redeemed) {
          throw new VoucherEscrowError(
            `voucher for ${voucher.client} asks ${voucher.cumulativeAmount} wei in all; escrow covers ${b.escrow + b.redeemed}`,
          );
        }
      }
    } catch (err) {
      const e = err as Error;
      ledger.rejectVoucher(voucher, e.name, e.message);
      throw err;
    }
    return ledger.acceptVoucher(voucher);
  }

  async function redeemVouchers(): Promise<bigint> {
    let moved = 0n;
    for (const v of ledger.unredeemedVouchers()) {
      try {
        await redeem(wallet, { settlement, voucher: v });
        moved += v.cumulativeAmount - v.redeemed;
      } catch (err) {
        // Redeemed before a crash, after the ledger last heard: adopt the chain's figure.
        if (!(err instanceof SettlementRevertError && err.errorName === 'VoucherNotAboveRedeemed')) throw err;
      }
      const onChain = await balances(wallet, { settlement, account: v.client });
      ledger.markRedeemed(v.client, onChain.redeemed);
    }
    return moved;
  }

  async function submitBatch(id: Hex): Promise<PayoutBatch> {
    const batch = ledger.batch(id);
    if (!batch) throw new SettlerError(`no batch ${id} in the ledger`);
    if (batch.state === 'confirmed') return batch;
    if (await isBatchPaid(wallet, { settlement, batchId: id })) {
      const txHash = batch.txHash ?? (await findBatchPayment(wallet, { settlement, batchId: id })) ?? null;
      ledger.markConfirmed(id, { txHash, note: `already paid on chain (tx ${txHash ?? 'unknown'}) when the ${batch.state} batch was resumed; not sent again` });
      log(`batch ${id} was already paid on chain; marked confirmed without sending`);
      return ledger.batch(id)!;
    }
    try {
      const receipt = await payoutBatch(wallet, { settlement, batchId: id, payouts: batch.payouts, onSubmitted: (hash: Hash) => ledger.markSubmitted(id, hash) });
      ledger.markConfirmed(id, { txHash: receipt.transactionHash });
    } catch (err) {
      if (err instanceof SettlementRevertError && err.errorName === 'BatchAlreadyPaid') {
        // Another submit of the same batch won the race; the contract refused to pay it twice.
        ledger.markConfirmed(id, { txHash: ledger.batch(id)!.txHash, note: 'the contract refused a second payment (BatchAlreadyPaid)' });
      } else {
        ledger.markFailed(id, `${(err as Error).name}: ${(err as Error).message}`);
        throw err;
      }
    }
    return ledger.batch(id)!;
  }

  async function resume(): Promise<PayoutBatch[]> {
    const open = ledger.batches({ states: ['pending', 'submitted'] });
    const done: PayoutBatch[] = [];
    for (const b of open) done.push(await submitBatch(b.id));
    return done;
  }

  return {
    domain,
    acceptVoucher,
    recordWork(work) {
      if (!Number.isInteger(work.layers) || !Number.isInteger(work.tokens) || work.layers < 0 || work.tokens < 0) {
        throw new SettlerError(`layers and tokens must be whole numbers ≥ 0 (got ${work.layers} × ${work.tokens})`);
      }
      return ledger.recordWork({ ...work, amount: work.amount ?? BigInt(work.layers) * BigInt(work.tokens) * price });
    },
    redeemVouchers,
    prepareBatch: () => ledger.createBatch(scope, options.rewardHalfLifeMs),
    submitBatch,
    resume,
    async settle() {
      await resume();
      await redeemVouchers();
      const batch = ledger.createBatch(scope, options.rewardHalfLifeMs);
      return batch ? submitBatch(batch.id) : undefined;
    },
    async slash(s) {
      if (!deps.validatorWallet) throw new SettlerError('slash needs the validator wallet (deps.validatorWallet)');
      const peerId = s.peerId ? (`0x${Buffer.from(s.peerId, 'utf8').toString('hex')}` as Hex) : undefined;
      const receipt = await slash(deps.validatorWallet, { settlement, provider: s.provider, amount: s.amount, evidenceHash: s.evidenceHash, peerId });
      // The contract takes at most the stake there is: record what its Slashed event says it took.
      const event = settlementEvents(receipt).find((e) => e.eventName === 'Slashed');
      const amount = event?.eventName === 'Slashed' ? event.args.amount : s.amount;
      return ledger.recordSlash({ provider: s.provider, amount, evidenceHash: s.evidenceHash, peerId: s.peerId ?? null, txHash: receipt.transactionHash });
    },
  };
}
