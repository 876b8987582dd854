/**
 * Typed viem wrappers for every Settlement.sol operation, used by the coordinator
 * (signaling-server/settle/), the validator and tests; browser SDK clients can use deposit and
 * withdraw too (nothing here is Node-only). Each write is simulated first, so a revert is reported
 * before gas is spent and decoded into a SettlementRevertError carrying the contract's custom error
 * name; then it is sent and its receipt awaited.
 */
import {
  BaseError,
  ContractFunctionRevertedError,
  parseEventLogs,
  type Account,
  type Address,
  type Chain,
  type Client,
  type Hash,
  type Hex,
  type TransactionReceipt,
  type Transport,
} from 'viem';
import { deployContract, getLogs, readContract, simulateContract, waitForTransactionReceipt, writeContract } from 'viem/actions';
import { settlementAbi } from './abi.ts';
import { SettlementRevertError, SettlementTransactionError } from './errors.ts';
import type { SignedVoucher } from './voucher.ts';

/** A client that signs and sends: viem's WalletClient with an account and a chain. */
export type SettlementWallet = Client<Transport, Chain, Account>;
/** Any client that can read (a PublicClient or a WalletClient). */
export type SettlementReader = Client<Transport, Chain | undefined>;

export interface DeploySettlementParameters {
  coordinator: Address;
  validator: Address;
  treasury: Address;
  /** seconds between requesting and taking out stake or escrow */
  withdrawDelay: bigint | number;
  /** creation bytecode from compileSettlement() (Node: signaling-server/settle/solidity-compile.ts) */
  bytecode: Hex;
}

export interface DeploySettlementReturnType {
  address: Address;
  receipt: TransactionReceipt;
}

export async function deploySettlement(wallet: SettlementWallet, p: DeploySettlementParameters): Promise<DeploySettlementReturnType> {
  try {
    const hash = await deployContract(wallet, {
      abi: settlementAbi,
      bytecode: p.bytecode,
      args: [p.coordinator, p.validator, p.treasury, BigInt(p.withdrawDelay)],
    });
    const receipt = await waitForTransactionReceipt(wallet, { hash });
    if (receipt.status !== 'success' || !receipt.contractAddress) {
      throw new SettlementTransactionError(`deployment ${hash} reverted`);
    }
    return { address: receipt.contractAddress, receipt };
  } catch (err) {
    throw settlementError('constructor', err);
  }
}

interface Target {
  /** the Settlement contract's address */
  settlement: Address;
}

/** Called with the hash once the transaction is sent, before it is mined (the ledger records it). */
export type OnSubmitted = (hash: Hash) => void;

export const stake = (w: SettlementWallet, p: Target & { amount: bigint }) => send(w, p.settlement, 'stake', [], p.amount);
/** Stake for `provider` that becomes the provider's own (a visitor staking for their tab's payout address from their wallet). */
export const stakeFor = (w: SettlementWallet, p: Target & { provider: Address; amount: bigint }) => send(w, p.settlement, 'stakeFor', [p.provider], p.amount);
/** A sponsor's bond for `provider` (a tab with no ETH): it backs the provider, slashable, and stays the sponsor's. */
export const sponsor = (w: SettlementWallet, p: Target & { provider: Address; amount: bigint }) => send(w, p.settlement, 'sponsor', [p.provider], p.amount);
/** The sponsor asks `amount` of a provider's bond back (paid by returnBond after the delay). */
export const requestBondReturn = (w: SettlementWallet, p: Target & { provider: Address; amount: bigint }) => send(w, p.settlement, 'requestBondReturn', [p.provider, p.amount]);
export const returnBond = (w: SettlementWallet, p: Target & { provider: Address }) => send(w, p.settlement, 'returnBond', [p.provider]);
export const requestUnstake = (w: SettlementWallet, p: Target & { amount: bigint }) => send(w, p.settlement, 'requestUnstake', [p.amount]);
export const unstake = (w: SettlementWallet, p: Target) => send(w, p.settlement, 'unstake', []);
export const withdrawEarnings = (w: SettlementWallet, p: Target) => send(w, p.settlement, 'withdrawEarnings', []);
export const deposit = (w: SettlementWallet, p: Target & { amount: bigint }) => send(w, p.settlement, 'deposit', [], p.amount);
export const requestWithdrawal = (w: SettlementWallet, p: Target & { amount: bigint }) => send(w, p.settlement, 'requestWithdrawal', [p.amount]);
export const withdraw = (w: SettlementWallet, p: Target) => send(w, p.settlement, 'withdraw', []);

/** Coordinator only: moves the voucher's new amount from the client's escrow into the pool. */
export const redeem = (w: SettlementWallet, p: Target & { voucher: SignedVoucher; onSubmitted?: OnSubmitted }) =>
  send(w, p.settlement, 'redeem', [{ client: p.voucher.client, cumulativeAmount: p.voucher.cumulativeAmount }, p.voucher.signature], undefined, p.onSubmitted);

export interface Payout {
  provider: Address;
  amount: bigint;
}

/** Coordinator only: credits each provider's earnings from the pool; reverts BatchAlreadyPaid on a replay. */
export const payoutBatch = (w: SettlementWallet, p: Target & { batchId: Hex; payouts: readonly Payout[]; onSubmitted?: OnSubmitted }) =>
  send(w, p.settlement, 'payoutBatch', [p.batchId, p.payouts.map((x) => x.provider), p.payouts.map((x) => x.amount)], undefined, p.onSubmitted);

/** Validator only: sends up to `amount` of the provider's stake to the treasury. */
export const slash = (
  w: SettlementWallet,
  p: Target & { provider: Address; amount: bigint; evidenceHash: Hex; peerId?: Hex; onSubmitted?: OnSubmitted },
) => send(w, p.settlement, 'slash', [p.provider, p.amount, p.evidenceHash, p.peerId ?? '0x'], undefined, p.onSubmitted);

export interface AccountBalances {
  stake: bigint;
  unstakeRequested: bigint;
  unstakeReadyAt: bigint;
  escrow: bigint;
  withdrawalRequested: bigint;
  withdrawalReadyAt: bigint;
  redeemed: bigint;
  earnings: bigint;
  /** a sponsor's bond backing this account as a provider: the sponsor's, not the account's */
  bond: bigint;
  /** whose bond it is (the zero address when none) */
  sponsor: Address;
}

export async function balances(r: SettlementReader, p: Target & { account: Address }): Promise<AccountBalances> {
  return read('balances', () => readContract(r, { address: p.settlement, abi: settlementAbi, functionName: 'balances', args: [p.account] }));
}

/** The sponsor's pending request for a provider's bond: amount 0 when none; readyAt in seconds since the epoch (chain time). */
export async function bondReturnRequest(r: SettlementReader, p: Target & { provider: Address }): Promise<{ amount: bigint; readyAt: bigint }> {
  const [amount, readyAt] = await read('bondReturnRequestOf', () => readContract(r, { address: p.settlement, abi: settlementAbi, functionName: 'bondReturnRequestOf', args: [p.provider] }));
  return { amount, readyAt };
}

export async function isBatchPaid(r: SettlementReader, p: Target & { batchId: Hex }): Promise<boolean> {
  return read('isBatchPaid', () => readContract(r, { address: p.settlement, abi: settlementAbi, functionName: 'isBatchPaid', args: [p.batchId] }));
}

export interface SettlementTotals {
  totalStaked: bigint;
  totalEscrowed: bigint;
  pool: bigint;
  totalEarnings: bigint;
  totalSlashed: bigint;
  /** totalStaked + totalEscrowed + pool + totalEarnings: equals the contract's balance */
  liabilities: bigint;
}

export async function settlementTotals(r: SettlementReader, p: Target): Promise<SettlementTotals> {
  const get = (functionName: 'totalStaked' | 'totalEscrowed' | 'pool' | 'totalEarnings' | 'totalSlashed' | 'liabilities') =>
    read(functionName, () => readContract(r, { address: p.settlement, abi: settlementAbi, functionName }));
  const [totalStaked, totalEscrowed, pool, totalEarnings, totalSlashed, liabilities] = await Promise.all([
    get('totalStaked'), get('totalEscrowed'), get('pool'), get('totalEarnings'), get('totalSlashed'), get('liabilities'),
  ]);
  return { totalStaked, totalEscrowed, pool, totalEarnings, totalSlashed, liabilities };
}

/** The transaction that paid a batch, from its BatchPaid event; undefined when it was never paid. */
export async function findBatchPayment(r: SettlementReader, p: Target & { batchId: Hex }): Promise<Hash | undefined> {
  const logs = await read('BatchPaid', () =>
    getLogs(r, { address: p.settlement, event: batchPaidEvent, args: { batchId: p.batchId }, fromBlock: 'earliest', toBlock: 'latest' }),
  );
  return logs[0]?.transactionHash ?? undefined;
}

const batchPaidEvent = settlementAbi.find((e) => e.type === 'event' && e.name === 'BatchPaid') as Extract<
  (typeof settlementAbi)[number],
  { type: 'event'; name: 'BatchPaid' }
>;

/** The Settlement events a receipt carries, decoded (for logs and tests). */
export function settlementEvents(receipt: TransactionReceipt) {
  return parseEventLogs({ abi: settlementAbi, logs: receipt.logs });
}

async function send(
  wallet: SettlementWallet,
  address: Address,
  functionName: string,
  args: readonly unknown[],
  value?: bigint,
  onSubmitted?: OnSubmitted,
): Promise<TransactionReceipt> {
  try {
    // The ABI is literal, but a name chosen at run time defeats viem's per-function inference; the
    // exported wrappers above carry the types.
    const { request } = await simulateContract(wallet, {
      address,
      abi: settlementAbi,
      functionName,
      args,
      value,
      account: wallet.account,
      chain: wallet.chain,
    } as Parameters<typeof simulateContract>[1]);
    const hash = await writeContract(wallet, request as Parameters<typeof writeContract>[1]);
    onSubmitted?.(hash);
    const receipt = await waitForTransactionReceipt(wallet, { hash });
    if (receipt.status !== 'success') throw new SettlementTransactionError(`${functionName} transaction ${hash} reverted on chain`);
    return receipt;
  } catch (err) {
    throw settlementError(functionName, err);
  }
}

async function read<T>(what: string, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (err) {
    throw settlementError(what, err);
  }
}

/** Turns viem's error chain into ours: the contract's custom error when there is one, else the one line viem gives. */
export function settlementError(functionName: string, err: unknown): Error {
  if (err instanceof SettlementRevertError || err instanceof SettlementTransactionError) return err;
  if (err instanceof BaseError) {
    const reverted = err.walk((e) => e instanceof ContractFunctionRevertedError) as ContractFunctionRevertedError | null;
    if (reverted?.data?.errorName) {
      return new SettlementRevertError(functionName, reverted.data.errorName, reverted.data.args ?? [], { cause: err });
    }
    return new SettlementTransactionError(`${functionName} failed: ${err.shortMessage}`, { cause: err, details: err.details });
  }
  return new SettlementTransactionError(`${functionName} failed: ${(err as Error)?.message ?? String(err)}`, { cause: err });
}
