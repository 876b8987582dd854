/**
 * Settlement as the grid server runs it: a chain (by default a local anvil it starts, with a
 * Settlement it deploys; `--rpc-url` and a key select any EVM chain), the settler with its
 * ledger, and the grid's money events:
 *
 * - a donor that says hello with a payout address gets a sponsored stake (the operator's bond
 *   for a tab that holds no ETH), once: a stake already on chain is left as it is; the bond
 *   comes back to the operator when the donor has been gone an hour (bond-returns.ts);
 * - the OpenAI gateway pays for its requests as a client: escrow deposited once, one voucher
 *   with the cumulative amount signed after every request;
 * - SDK clients pay with vouchers of their own (settle/voucher-api.ts, `clientVoucher`);
 * - a verdict that a stage's work on a paid request is honest becomes a work receipt
 *   (layers × tokens at the price), paid in batches every `settleIntervalMs`. What a client's
 *   vouchers added is that client's budget: receipts for its requests draw on it and stop (or are
 *   cut short) when it is spent, so a client that names request ids it did not pay for cannot
 *   make the pool pay for them. A verdict that comes before its request's voucher waits for it
 *   (the last `UNPAID_WORK_KEPT` such verdicts are kept). Payout addresses, payers, budgets and
 *   waiting work are kept in the ledger, so a restart pays what arrives after it;
 * - rewards vest (vesting.ts): each round pays what vested since the last, so a stage's payouts
 *   follow its verified work smoothed over `rewardHalfLifeMs`;
 * - a failed verdict slashes the stage's whole stake to the treasury with the evidence hash, and
 *   what its receipts have not paid yet is forfeited, back to the budgets of the clients who paid.
 *
 * Who is who: on anvil, dev accounts 0 (coordinator, deployer), 1 (validator), 2 (treasury),
 * 3 (stake sponsor) and 4 (the gateway's payer); on another chain the given key plays every
 * role and the treasury is `treasury` or that key's address.
 */
import { renameSync } from 'node:fs';
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex } from '@noble/hashes/utils.js';
import { createPublicClient, createWalletClient, hexToBytes, http, parseEther, type Address, type Chain, type Hex, type PublicClient } from 'viem';
import { privateKeyToAccount, type PrivateKeyAccount } from 'viem/accounts';
import { getChainId } from 'viem/actions';
import { InfermeshError } from '../../shared/errors.ts';
import { balances, deploySettlement, deposit, sponsor, type SettlementWallet } from '../../shared/settle/settlement-client.ts';
import { createBondReturns } from './bond-returns.ts';
import { DEFAULT_SPONSORSHIP, sponsorshipRefusal } from './sponsorship.ts';
import type { SponsoredDonor, SponsorshipLimits } from './sponsorship.ts';
import { signVoucher, type SignedVoucher } from '../../shared/settle/voucher.ts';
import { startAnvil, type Anvil } from '../chain/anvil.ts';
import { settlementArtifact } from './contract.ts';
import { openSettlementLedger, type HeldWork, type SettlementLedger } from './ledger.ts';
import { createSettler, type Settler } from './settler.ts';

/** The chain could not be reached or set up (RPC down, no key, deployment failed). */
export class ChainSetupError extends InfermeshError {
  override name = 'ChainSetupError';
}

export interface GridSettlementOptions {
  /** an EVM JSON-RPC URL; without one a local anvil is started */
  rpcUrl?: string;
  /** the operator's key on that chain (coordinator, validator, sponsor and payer); required with rpcUrl */
  privateKey?: Hex;
  /** a Settlement already deployed there; without one it is deployed */
  contract?: Address;
  /** where slashed stake goes on a chain given by rpcUrl (default: the key's address) */
  treasury?: Address;
  ledgerPath: string;
  /**
   * Without rpcUrl: where the local anvil keeps its chain between runs (anvil --state), so a
   * restarted server finds its contract, stakes, escrows and payouts again. Absent: a new chain
   * each run, gone when the process ends.
   */
  anvilStateFile?: string;
  /** wei per layer per token (default 1 gwei) */
  pricePerLayerToken?: bigint;
  /** wei bonded for each donor with a payout address (default 0.1 ETH; 0 = none): the operator's bond, not the donor's (sponsorship.ts) */
  sponsorStake?: bigint;
  /** wei bonded for donors in all (default DEFAULT_SPONSORSHIP.cap) */
  sponsorCap?: bigint;
  /** donors bonded in any hour at most (default DEFAULT_SPONSORSHIP.perHour) */
  sponsorsPerHour?: number;
  /** one bond per device signature (default true; a test's tabs on one machine share one) */
  sponsorOncePerDevice?: boolean;
  /** the gateway's escrow, topped up to this (default 1 ETH) */
  gatewayEscrow?: bigint;
  /** how often verified work is paid out (default 10 s): at most one payout transaction per round */
  settleIntervalMs?: number;
  /** the half-life over which a receipt's reward vests (default REWARD_HALF_LIFE_MS; 0 pays it whole in the next round) */
  rewardHalfLifeMs?: number;
  /** seconds stake and escrow wait before they can leave (a deployment's setting; default 1 hour) */
  withdrawDelay?: number;
  /** how long a bonded donor is gone before its bond is asked back (default BOND_RETURN_AFTER_MS, an hour) */
  bondReturnAfterMs?: number;
}

/** One hour: a stage convicted within an hour of some work loses at least half of its reward for it. */
export const REWARD_HALF_LIFE_MS = 60 * 60_000;

/** Verdicts of verified work on requests no voucher named yet, kept for a voucher that may still come (the oldest go first). */
export const UNPAID_WORK_KEPT = 4096;

export interface ChainInfo {
  chainId: number;
  rpcUrl: string;
  contract: Address;
  /** true when the server runs the chain itself (anvil) */
  local: boolean;
  treasury: Address;
  pricePerLayerToken: string;
}

export interface GridSettlement {
  readonly chain: ChainInfo;
  readonly settler: Settler;
  readonly ledger: SettlementLedger;
  readonly reader: PublicClient;
  /**
   * A donor's payout address: later verdicts pay it or slash it. It gets the operator's bond
   * if sponsorship.ts allows (one per address and per device signature, within the cap and the
   * hourly limit, and not for a look-alike of a banned device); a refusal is logged, not thrown.
   */
  donorJoined(peerId: string, payTo: Address, device?: Omit<SponsoredDonor, 'address'>): Promise<void>;
  /** A donor left (no other connected peer pays to its address): its bond's return clock starts (bond-returns.ts). */
  donorLeft(peerId: string): void;
  payoutAddress(peerId: string): Address | undefined;
  /** The gateway served a request (the ids its stages saw): sign and hand in its voucher (cumulative amount). */
  gatewayRequest(stageRequestIds: string[], tokens: number, layers: number): Promise<void>;
  /**
   * An SDK client's voucher: the settler checks and keeps it (its Voucher*Error otherwise), and
   * what it adds to the client's cumulative amount pays for verified work on `requestIds` (the
   * ids its stages saw); returns that amount. An id another client paid for first stays theirs.
   * Vouchers are taken one at a time with the chain's other operations, so "above the last
   * accepted" and the amount added are read and written with nothing slipping in between.
   */
  clientVoucher(voucher: SignedVoucher, requestIds: readonly string[]): Promise<bigint>;
  /** An honest verdict on a stage's work: a receipt when a paying client was behind the request. */
  workVerified(work: HeldWork): void;
  /**
   * A failed verdict: the stage's whole stake goes to the treasury (the transaction, when it had
   * stake) and its unpaid rewards are forfeited; undefined for a stage with no payout address.
   */
  slash(peerId: string, evidenceHash: Hex): Promise<{ txHash?: Hex; amount: bigint; forfeited: bigint } | undefined>;
  /** A stage that did not answer for a request it served (trust/no-shows.ts) loses its unvested rewards: the wei forfeited. */
  forfeit(peerId: string): bigint;
  /** One settlement round now (tests; the timer runs them otherwise). */
  settleNow(): Promise<void>;
  close(): Promise<void>;
}

/** The ledger's contract was deployed from other Settlement code (an older infermesh): its functions may not be this one's. */
export class OutdatedContractError extends ChainSetupError {
  override name = 'OutdatedContractError';
}

/**
 * The contract this ledger settles on: the one it recorded for the chain, or a new deployment
 * (recorded with the hash of the code it came from). A recorded contract the chain no longer
 * holds means the ledger's receipts, batches and vouchers belong to a chain that is gone (a
 * local chain whose state file was removed): refused, rather than mixing the two. So is one
 * deployed from other code (OutdatedContractError): reading it with this version's ABI fails
 * (a balances() of fewer fields), and every bond and voucher with it.
 */
async function settlementContract(ledger: SettlementLedger, reader: PublicClient, chainId: number, rpcUrl: string, codeHash: string, deploy: () => Promise<Address>): Promise<Address> {
  const known = ledger.deployment(chainId);
  if (known) {
    const code = await reader.getCode({ address: known.contract });
    if (!code || code === '0x') {
      throw new ChainSetupError(
        `the settlement ledger settles on contract ${known.contract} on chain ${chainId}, which the chain at ${rpcUrl} does not hold (was its state removed?): move the ledger aside to start a new one, or point --rpc-url at that chain`,
      );
    }
    if (known.codeHash === codeHash) return known.contract;
    throw new OutdatedContractError(
      `the settlement ledger settles on contract ${known.contract} on chain ${chainId}, deployed by another version of infermesh (its Settlement code differs from this one's): move the ledger aside to deploy this version's contract, or run the version that deployed it`,
    );
  }
  const contract = await deploy();
  ledger.recordDeployment(chainId, contract, codeHash);
  return contract;
}

export async function startGridSettlement(options: GridSettlementOptions, deps: { log?: (line: string) => void } = {}): Promise<GridSettlement> {
  const log = deps.log ?? (() => {});
  const price = options.pricePerLayerToken ?? 1_000_000_000n;
  const sponsorship: SponsorshipLimits = { stake: options.sponsorStake ?? DEFAULT_SPONSORSHIP.stake, cap: options.sponsorCap ?? DEFAULT_SPONSORSHIP.cap, perHour: options.sponsorsPerHour ?? DEFAULT_SPONSORSHIP.perHour, oncePerDevice: options.sponsorOncePerDevice };
  const gatewayEscrow = options.gatewayEscrow ?? parseEther('1');
  let anvil: Anvil | undefined;
  let rpcUrl: string;
  let roles: { coordinator: PrivateKeyAccount; validator: PrivateKeyAccount; sponsor: PrivateKeyAccount; payer: PrivateKeyAccount; treasury: Address };
  let chain: Chain;
  if (options.rpcUrl) {
    if (!options.privateKey) throw new ChainSetupError('a chain given by --rpc-url needs the operator key (--chain-key or INFERMESH_CHAIN_KEY)');
    rpcUrl = options.rpcUrl;
    const key = privateKeyToAccount(options.privateKey);
    let chainId: number;
    try {
      chainId = await getChainId(createPublicClient({ transport: http(rpcUrl) }));
    } catch (err) {
      throw new ChainSetupError(`cannot reach the chain at ${rpcUrl}: ${(err as Error).message.split('\n')[0]}`, { cause: err });
    }
    chain = { id: chainId, name: `chain ${chainId}`, nativeCurrency: { name: 'Ether', symbol: 'ETH', decimals: 18 }, rpcUrls: { default: { http: [rpcUrl] } } };
    roles = { coordinator: key, validator: key, sponsor: key, payer: key, treasury: options.treasury ?? key.address };
  } else {
    anvil = await startAnvil({ stateFile: options.anvilStateFile });
    rpcUrl = anvil.rpcUrl;
    chain = anvil.chain;
    const [coordinator, validator, treasury, sponsor, payer] = anvil.accounts;
    roles = { coordinator, validator, sponsor, payer, treasury: treasury.address };
  }
  // Anvil mines at once: poll receipts often rather than viem's default 4 s.
  const transport = http(rpcUrl);
  const pollingInterval = anvil ? 20 : 1000;
  const wallet = (account: PrivateKeyAccount): SettlementWallet => createWalletClient({ account, chain, transport, pollingInterval });
  const reader = createPublicClient({ chain, transport, pollingInterval }) as PublicClient;
  const coordinator = wallet(roles.coordinator);

  let ledger: SettlementLedger;
  try {
    ledger = openSettlementLedger(options.ledgerPath);
  } catch (err) {
    await anvil?.stop();
    throw err;
  }
  let contract = options.contract;
  const { bytecode } = settlementArtifact();
  const codeHash = bytesToHex(sha256(hexToBytes(bytecode)));
  const resolve = () =>
    settlementContract(ledger, reader, chain.id, rpcUrl, codeHash, () =>
      deploySettlement(coordinator, { coordinator: roles.coordinator.address, validator: roles.validator.address, treasury: roles.treasury, withdrawDelay: options.withdrawDelay ?? 3600, bytecode }).then((d) => d.address),
    );
  try {
    try {
      contract ??= await resolve();
    } catch (err) {
      // The local chain is the server's own test chain: its ledger goes aside (kept, renamed) and this version deploys anew.
      if (!(err instanceof OutdatedContractError) || !anvil) throw err;
      ledger.close();
      const aside = `${options.ledgerPath}.outdated-${Date.now()}`;
      renameSync(options.ledgerPath, aside);
      log(`settlement: the local chain's contract was deployed by another version of infermesh; its ledger is kept at ${aside}, and this version's contract is deployed`);
      ledger = openSettlementLedger(options.ledgerPath);
      contract = await resolve();
    }
  } catch (err) {
    ledger.close();
    await anvil?.stop();
    if (err instanceof ChainSetupError) throw err;
    throw new ChainSetupError(`cannot deploy the Settlement contract on ${rpcUrl}: ${(err as Error).message.split('\n')[0]}`, { cause: err });
  }

  const settler = createSettler(
    { ledger, wallet: coordinator, settlement: contract, pricePerLayerToken: price, rewardHalfLifeMs: options.rewardHalfLifeMs ?? REWARD_HALF_LIFE_MS },
    { validatorWallet: wallet(roles.validator), log },
  );
  const payer = wallet(roles.payer);
  const settlement = contract;
  let gatewaySpent = ledger.latestVoucher(roles.payer.address)?.cumulativeAmount ?? 0n;
  // One money operation at a time: transactions from one account need their nonces in order.
  let chainQueue: Promise<unknown> = Promise.resolve();
  const serially = <T>(task: () => Promise<T>): Promise<T> => {
    const run = chainQueue.then(task, task);
    chainQueue = run.catch(() => undefined);
    return run;
  };

  // Who pays for what (payout addresses, each request's payer, clients' budgets, work waiting
  // for a voucher) lives in the ledger: verified work that arrives after a restart is paid.
  function markPaid(client: Address, requestIds: readonly string[], amount: bigint): void {
    for (const id of ledger.creditClient(client, requestIds, amount)) {
      for (const work of ledger.releaseWork(id)) payWork(work);
    }
  }

  function payWork(work: HeldWork): void {
    const provider = ledger.payTo(work.peerId);
    if (!provider) return;
    const client = ledger.payerOf(work.requestId);
    if (!client) {
      ledger.holdWork(work, UNPAID_WORK_KEPT);
      return;
    }
    const worth = price * BigInt(work.layers) * BigInt(work.tokens);
    const receipt = ledger.payFromBudget(client, { provider, requestId: work.requestId, layers: work.layers, tokens: work.tokens, worth });
    if (!receipt) log(`settlement: ${work.peerId}'s work on ${work.requestId} is unpaid: its client's vouchers are spent`);
  }

  const bondReturns = createBondReturns(
    { returnAfterMs: options.bondReturnAfterMs },
    { ledger, reader, sponsor: wallet(roles.sponsor), settlement: contract, log, mine: anvil && (() => reader.request({ method: 'evm_mine' as 'eth_chainId' }).then(() => undefined)) },
  );
  const settleRound = () =>
    serially(async () => {
      const batch = await settler.settle();
      if (batch) log(`settlement: paid batch ${batch.id.slice(0, 10)}… (${batch.receipts} receipts, ${batch.total} wei)`);
      await bondReturns.round();
    }).catch((err: Error) => log(`settlement: round failed, retried next time: ${err.message.split('\n')[0]}`));
  const timer = setInterval(() => void settleRound(), options.settleIntervalMs ?? 10_000);

  const info: ChainInfo = { chainId: chain.id, rpcUrl, contract, local: anvil !== undefined, treasury: roles.treasury, pricePerLayerToken: price.toString() };
  log(`settlement: chain ${chain.id} at ${rpcUrl}${anvil ? ' (local anvil)' : ''}, contract ${contract}`);

  return {
    chain: info,
    settler,
    ledger,
    reader,
    async donorJoined(peerId, address, device = {}) {
      ledger.setPayTo(peerId, address);
      bondReturns.back(address);
      if (sponsorship.stake === 0n) return;
      const { deviceSignature } = device;
      await serially(async () => {
        const refusal = sponsorshipRefusal(ledger, { address, ...device }, sponsorship, Date.now());
        if (refusal) return log(`settlement: no bond for donor ${peerId} (${address}): ${refusal}`);
        // A donor that staked from its own wallet needs no bond of ours.
        const held = await balances(reader, { settlement, account: address });
        if (held.stake > 0n || held.bond > 0n) return;
        // Recorded first: a bond whose transaction failed is one fewer, never one more than the cap.
        ledger.recordSponsorship({ address, peerId, deviceSignature, amount: sponsorship.stake });
        await sponsor(wallet(roles.sponsor), { settlement, provider: address, amount: sponsorship.stake });
        log(`settlement: bonded ${sponsorship.stake} wei for donor ${peerId} (${address}); the bond stays the operator's`);
      });
    },
    donorLeft(peerId) {
      const address = ledger.payTo(peerId);
      if (address) bondReturns.left(address);
    },
    payoutAddress: (peerId) => ledger.payTo(peerId),
    async gatewayRequest(stageRequestIds, tokens, layers) {
      if (tokens <= 0) return;
      const cost = price * BigInt(tokens) * BigInt(layers);
      markPaid(roles.payer.address, stageRequestIds, cost);
      await serially(async () => {
        const escrow = (await balances(reader, { settlement, account: roles.payer.address })).escrow;
        if (escrow < cost) await deposit(payer, { settlement, amount: gatewayEscrow > cost ? gatewayEscrow : cost });
        gatewaySpent += cost;
        await settler.acceptVoucher(await signVoucher(roles.payer, settler.domain, { cumulativeAmount: gatewaySpent }));
      });
    },
    clientVoucher: (voucher, requestIds) =>
      serially(async () => {
        const before = ledger.latestVoucher(voucher.client)?.cumulativeAmount ?? 0n;
        await settler.acceptVoucher(voucher);
        const amount = voucher.cumulativeAmount - before;
        markPaid(voucher.client, requestIds, amount);
        return amount;
      }),
    workVerified: payWork,
    async slash(peerId, evidenceHash) {
      const provider = ledger.payTo(peerId);
      if (!provider) return undefined;
      return serially(async () => {
        const forfeited = ledger.forfeit(provider);
        // Everything that backs it: its own stake and the operator's bond.
        const { stake, bond } = await balances(reader, { settlement, account: provider });
        if (stake + bond === 0n) return { amount: 0n, forfeited };
        const record = await settler.slash({ provider, amount: stake + bond, evidenceHash, peerId });
        return { txHash: record.txHash, amount: record.amount, forfeited };
      });
    },
    forfeit(peerId) {
      const provider = ledger.payTo(peerId);
      return provider ? ledger.forfeit(provider) : 0n;
    },
    settleNow: () => settleRound(),
    async close() {
      clearInterval(timer);
      await chainQueue;
      ledger.close();
      await anvil?.stop();
    },
  };
}
