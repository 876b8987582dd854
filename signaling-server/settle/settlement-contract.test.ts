/**
 * Settlement.sol on a real anvil chain through the viem wrappers: every operation's happy path,
 * the delays, access control and voucher checks by the contract's own error names, and money
 * conservation across a run with several clients and providers.
 */
import { getAddress, keccak256, parseEther, toHex, type Address, type Hash } from 'viem';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { settlementAbi } from '../../shared/settle/abi.ts';
import { SettlementRevertError } from '../../shared/settle/errors.ts';
import {
  balances,
  deposit,
  isBatchPaid,
  payoutBatch,
  redeem,
  requestBondReturn,
  requestUnstake,
  requestWithdrawal,
  returnBond,
  settlementEvents,
  settlementTotals,
  slash,
  sponsor,
  stake,
  stakeFor,
  unstake,
  withdraw,
  withdrawEarnings,
  type SettlementWallet,
} from '../../shared/settle/settlement-client.ts';
import { signVoucher, voucherDomain, voucherTypes, type VoucherDomain } from '../../shared/settle/voucher.ts';
import { startSettlementChain, WITHDRAW_DELAY, type SettlementChain } from '../../testkit/settlement-chain.ts';

let chain: SettlementChain;
let deployMs = 0;

beforeAll(async () => {
  const started = performance.now();
  chain = await startSettlementChain();
  await chain.deploy();
  deployMs = performance.now() - started;
});
afterAll(() => chain?.anvil.stop());

const evidence = keccak256(toHex('replay of request r1 disagreed at layer 7'));
const id = (s: string) => keccak256(toHex(s));

/** Expects the promise to reject with the contract's custom error of that name. */
async function revertsWith(promise: Promise<unknown>, errorName: string): Promise<SettlementRevertError> {
  const err = await promise.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(SettlementRevertError);
  expect((err as SettlementRevertError).errorName).toBe(errorName);
  return err as SettlementRevertError;
}

/** Moves the chain's clock past the delay; a mined block makes calls see the new time. */
async function passWithdrawDelay(): Promise<void> {
  await chain.testClient.increaseTime({ seconds: WITHDRAW_DELAY });
  await chain.testClient.mine({ blocks: 1 });
}

async function fresh(): Promise<{ settlement: Address; domain: VoucherDomain }> {
  const settlement = await chain.deploy();
  return { settlement, domain: voucherDomain({ chainId: chain.anvil.chainId, verifyingContract: settlement }) };
}

const sign = (client: SettlementWallet, domain: VoucherDomain, cumulativeAmount: bigint) =>
  signVoucher(client.account as Parameters<typeof signVoucher>[0], domain, { cumulativeAmount });

describe('Settlement contract', () => {
  it('deploys with its roles and delay, anvil start + compile + deploy in well under 10 s', async () => {
    const { settlement } = await fresh();
    const read = (functionName: 'coordinator' | 'validator' | 'treasury' | 'withdrawDelay') =>
      chain.publicClient.readContract({ address: settlement, abi: settlementAbi, functionName });
    expect(await read('coordinator')).toBe(chain.coordinator.account.address);
    expect(await read('validator')).toBe(chain.validator.account.address);
    expect(await read('treasury')).toBe(chain.treasury.address);
    expect(await read('withdrawDelay')).toBe(BigInt(WITHDRAW_DELAY));
    console.log(`anvil start + compile (disk cache after the first run) + deploy: ${deployMs.toFixed(0)} ms`);
    expect(deployMs).toBeLessThan(10_000);
  });

  it('takes stake, and pays it back only after the withdraw delay', async () => {
    const { settlement } = await fresh();
    const [provider] = chain.providers;
    await stake(provider, { settlement, amount: parseEther('2') });
    await requestUnstake(provider, { settlement, amount: parseEther('0.5') });
    await revertsWith(unstake(provider, { settlement }), 'WithdrawalNotReady');
    await passWithdrawDelay();
    const receipt = await unstake(provider, { settlement });
    expect(settlementEvents(receipt).map((e) => e.eventName)).toEqual(['Unstaked']);
    expect((await balances(chain.publicClient, { settlement, account: provider.account.address })).stake).toBe(parseEther('1.5'));
    await revertsWith(unstake(provider, { settlement }), 'NothingRequested');
    await revertsWith(requestUnstake(provider, { settlement, amount: parseEther('9') }), 'InsufficientStake');
  });

  it('takes a sponsor’s stake for a provider: the provider’s to withdraw, not the sponsor’s', async () => {
    const { settlement } = await fresh();
    const [provider, sponsor] = chain.providers;
    await stakeFor(sponsor, { settlement, provider: provider.account.address, amount: parseEther('0.25') });
    expect((await balances(chain.publicClient, { settlement, account: provider.account.address })).stake).toBe(parseEther('0.25'));
    expect((await balances(chain.publicClient, { settlement, account: sponsor.account.address })).stake).toBe(0n);
    await revertsWith(requestUnstake(sponsor, { settlement, amount: parseEther('0.25') }), 'InsufficientStake');
    await revertsWith(stakeFor(sponsor, { settlement, provider: '0x0000000000000000000000000000000000000000', amount: 1n }), 'ZeroAddress');
  });

  it('takes a sponsor’s bond for a provider: it backs the provider, slashable after its own stake, and only the sponsor takes it back', async () => {
    const { settlement } = await fresh();
    const [provider, operator, other] = chain.providers;
    const of = async (a: SettlementWallet) => balances(chain.publicClient, { settlement, account: a.account.address });
    await sponsor(operator, { settlement, provider: provider.account.address, amount: parseEther('0.3') });
    expect(await of(provider)).toMatchObject({ stake: 0n, bond: parseEther('0.3'), sponsor: getAddress(operator.account.address) });
    // Not the provider's: it cannot unstake it, and another sponsor cannot claim the provider.
    await revertsWith(requestUnstake(provider, { settlement, amount: 1n }), 'InsufficientStake');
    await revertsWith(requestBondReturn(provider, { settlement, provider: provider.account.address, amount: 1n }), 'NotSponsor');
    await revertsWith(sponsor(other, { settlement, provider: provider.account.address, amount: 1n }), 'NotSponsor');
    // Slashable: the provider's own stake goes first, then the bond.
    await stake(provider, { settlement, amount: parseEther('0.1') });
    await slash(chain.validator, { settlement, provider: provider.account.address, amount: parseEther('0.15'), evidenceHash: evidence });
    expect(await of(provider)).toMatchObject({ stake: 0n, bond: parseEther('0.25') });
    // Back to the sponsor after the delay, never to the provider.
    await requestBondReturn(operator, { settlement, provider: provider.account.address, amount: parseEther('0.25') });
    await revertsWith(returnBond(operator, { settlement, provider: provider.account.address }), 'WithdrawalNotReady');
    await passWithdrawDelay();
    const before = await chain.publicClient.getBalance({ address: operator.account.address });
    const r = await returnBond(operator, { settlement, provider: provider.account.address });
    expect(settlementEvents(r).map((e) => e.eventName)).toEqual(['BondReturned']);
    expect((await chain.publicClient.getBalance({ address: operator.account.address })) - before + r.gasUsed * r.effectiveGasPrice).toBe(parseEther('0.25'));
    expect((await of(provider)).bond).toBe(0n);
    const totals = await settlementTotals(chain.publicClient, { settlement });
    expect(totals.liabilities).toBe(await chain.publicClient.getBalance({ address: settlement }));
  });

  it('escrows a deposit, redeems cumulative vouchers into the pool, pays a batch, and pays out earnings', async () => {
    const { settlement, domain } = await fresh();
    const [client] = chain.clients;
    const [p1, p2] = chain.providers;
    await deposit(client, { settlement, amount: parseEther('1') });
    await redeem(chain.coordinator, { settlement, voucher: await sign(client, domain, parseEther('0.3')) });
    await redeem(chain.coordinator, { settlement, voucher: await sign(client, domain, parseEther('0.5')) });
    const c = await balances(chain.publicClient, { settlement, account: client.account.address });
    expect([c.escrow, c.redeemed]).toEqual([parseEther('0.5'), parseEther('0.5')]);
    expect((await settlementTotals(chain.publicClient, { settlement })).pool).toBe(parseEther('0.5'));

    const payouts = [{ provider: p1.account.address, amount: parseEther('0.2') }, { provider: p2.account.address, amount: parseEther('0.3') }];
    const receipt = await payoutBatch(chain.coordinator, { settlement, batchId: id('batch-1'), payouts });
    expect(settlementEvents(receipt).map((e) => e.eventName)).toEqual(['EarningsCredited', 'EarningsCredited', 'BatchPaid']);
    expect(await isBatchPaid(chain.publicClient, { settlement, batchId: id('batch-1') })).toBe(true);
    expect(await isBatchPaid(chain.publicClient, { settlement, batchId: id('batch-2') })).toBe(false);

    const before = await chain.publicClient.getBalance({ address: p2.account.address });
    const w = await withdrawEarnings(p2, { settlement });
    const after = await chain.publicClient.getBalance({ address: p2.account.address });
    expect(after - before + w.gasUsed * w.effectiveGasPrice).toBe(parseEther('0.3'));
    await revertsWith(withdrawEarnings(p2, { settlement }), 'NoEarnings');
  });

  it('refuses to pay a batch id twice, or more than the pool holds', async () => {
    const { settlement, domain } = await fresh();
    const [client] = chain.clients;
    const provider = chain.providers[0].account.address;
    await deposit(client, { settlement, amount: parseEther('1') });
    await redeem(chain.coordinator, { settlement, voucher: await sign(client, domain, parseEther('0.4')) });
    await payoutBatch(chain.coordinator, { settlement, batchId: id('b'), payouts: [{ provider, amount: parseEther('0.1') }] });
    const err = await revertsWith(payoutBatch(chain.coordinator, { settlement, batchId: id('b'), payouts: [{ provider, amount: parseEther('0.1') }] }), 'BatchAlreadyPaid');
    expect(err.args).toEqual([id('b')]);
    expect(err.name).toBe('SettlementRevertError');
    await revertsWith(payoutBatch(chain.coordinator, { settlement, batchId: id('c'), payouts: [{ provider, amount: parseEther('0.5') }] }), 'PoolShort');
    expect((await balances(chain.publicClient, { settlement, account: provider })).earnings).toBe(parseEther('0.1'));
  });

  it('refuses a forged voucher, a voucher not above what was redeemed, and one escrow cannot cover', async () => {
    const { settlement, domain } = await fresh();
    const [alice, mallory] = chain.clients;
    await deposit(alice, { settlement, amount: parseEther('1') });
    const message = { client: alice.account.address, cumulativeAmount: parseEther('0.5') };
    const signature = await mallory.account.signTypedData!({ domain, types: voucherTypes, primaryType: 'Voucher', message });
    const forged = await revertsWith(redeem(chain.coordinator, { settlement, voucher: { ...message, signature } }), 'VoucherSignerMismatch');
    expect(forged.args).toEqual([alice.account.address, mallory.account.address]);

    await redeem(chain.coordinator, { settlement, voucher: await sign(alice, domain, parseEther('0.5')) });
    await revertsWith(redeem(chain.coordinator, { settlement, voucher: await sign(alice, domain, parseEther('0.4')) }), 'VoucherNotAboveRedeemed');
    await revertsWith(redeem(chain.coordinator, { settlement, voucher: await sign(alice, domain, parseEther('0.5')) }), 'VoucherNotAboveRedeemed');
    await revertsWith(redeem(chain.coordinator, { settlement, voucher: await sign(alice, domain, parseEther('1.2')) }), 'InsufficientEscrow');
    expect((await balances(chain.publicClient, { settlement, account: alice.account.address })).escrow).toBe(parseEther('0.5'));
  });

  it('lets the coordinator redeem while a withdrawal waits, then pays the client what is left', async () => {
    const { settlement, domain } = await fresh();
    const [client] = chain.clients;
    await deposit(client, { settlement, amount: parseEther('1') });
    await requestWithdrawal(client, { settlement, amount: parseEther('1') });
    await revertsWith(withdraw(client, { settlement }), 'WithdrawalNotReady');
    await redeem(chain.coordinator, { settlement, voucher: await sign(client, domain, parseEther('0.25')) });
    await passWithdrawDelay();
    const receipt = await withdraw(client, { settlement });
    const [event] = settlementEvents(receipt);
    expect(event.eventName === 'Withdrawn' && event.args.amount).toBe(parseEther('0.75'));
  });

  it('slashes stake to the treasury with the evidence hash, reaching stake that waits to leave', async () => {
    const { settlement } = await fresh();
    const [provider] = chain.providers;
    await stake(provider, { settlement, amount: parseEther('1') });
    await requestUnstake(provider, { settlement, amount: parseEther('1') });
    const before = await chain.publicClient.getBalance({ address: chain.treasury.address });
    const receipt = await slash(chain.validator, { settlement, provider: provider.account.address, amount: parseEther('0.4'), evidenceHash: evidence, peerId: toHex('12D3KooWPeer') });
    const [event] = settlementEvents(receipt);
    expect(event.eventName).toBe('Slashed');
    expect(event.eventName === 'Slashed' && [event.args.amount, event.args.evidenceHash, event.args.peerId]).toEqual([parseEther('0.4'), evidence, toHex('12D3KooWPeer')]);
    expect((await chain.publicClient.getBalance({ address: chain.treasury.address })) - before).toBe(parseEther('0.4'));
    await passWithdrawDelay();
    const out = settlementEvents(await unstake(provider, { settlement }))[0];
    expect(out.eventName === 'Unstaked' && out.args.amount).toBe(parseEther('0.6'));
  });

  it('lets only the coordinator redeem and pay batches, and only the validator slash', async () => {
    const { settlement, domain } = await fresh();
    const [client] = chain.clients;
    const [provider] = chain.providers;
    await stake(provider, { settlement, amount: parseEther('1') });
    await deposit(client, { settlement, amount: parseEther('1') });
    const notCoordinator = await revertsWith(
      payoutBatch(provider, { settlement, batchId: id('x'), payouts: [{ provider: provider.account.address, amount: 1n }] }),
      'NotCoordinator',
    );
    expect(notCoordinator.args).toEqual([provider.account.address]);
    await revertsWith(redeem(client, { settlement, voucher: await sign(client, domain, 1n) }), 'NotCoordinator');
    await revertsWith(slash(chain.coordinator, { settlement, provider: provider.account.address, amount: 1n, evidenceHash: evidence }), 'NotValidator');
    await revertsWith(slash(provider, { settlement, provider: provider.account.address, amount: 1n, evidenceHash: evidence }), 'NotValidator');
    expect((await balances(chain.publicClient, { settlement, account: provider.account.address })).stake).toBe(parseEther('1'));
  });

  it('conserves money: every wei that left the contract reached a provider, a client or the treasury', async () => {
    const { settlement, domain } = await fresh();
    const startBlock = await chain.publicClient.getBlockNumber();
    const everyone = [chain.coordinator, chain.validator, ...chain.providers, ...chain.clients].map((w) => w.account.address);
    everyone.push(chain.treasury.address);
    const before = new Map(await Promise.all(everyone.map(async (a) => [a, await chain.publicClient.getBalance({ address: a })] as const)));

    const [p1, p2, p3] = chain.providers;
    const [c1, c2, c3] = chain.clients;
    for (const [p, amount] of [[p1, '3'], [p2, '2'], [p3, '1']] as const) await stake(p, { settlement, amount: parseEther(amount) });
    for (const [c, amount] of [[c1, '2'], [c2, '1'], [c3, '0.5']] as const) await deposit(c, { settlement, amount: parseEther(amount) });
    // Each client pays per request with growing cumulative vouchers; the coordinator redeems the latest.
    for (const [c, amounts] of [[c1, ['0.1', '0.4', '0.9']], [c2, ['0.2', '0.3']], [c3, ['0.05']]] as const) {
      let latest;
      for (const a of amounts) latest = await sign(c, domain, parseEther(a));
      await redeem(chain.coordinator, { settlement, voucher: latest! });
    }
    const pay = (p: SettlementWallet, eth: string) => ({ provider: p.account.address, amount: parseEther(eth) });
    await payoutBatch(chain.coordinator, { settlement, batchId: id('c-1'), payouts: [pay(p1, '0.5'), pay(p2, '0.3')] });
    await payoutBatch(chain.coordinator, { settlement, batchId: id('c-2'), payouts: [pay(p1, '0.2'), pay(p3, '0.1')] });
    await slash(chain.validator, { settlement, provider: p2.account.address, amount: parseEther('0.7'), evidenceHash: evidence });
    await slash(chain.validator, { settlement, provider: p3.account.address, amount: parseEther('5'), evidenceHash: evidence }); // takes all 1 ETH
    await withdrawEarnings(p1, { settlement });
    await requestUnstake(p1, { settlement, amount: parseEther('1') });
    await requestWithdrawal(c2, { settlement, amount: parseEther('0.7') });
    await passWithdrawDelay();
    await unstake(p1, { settlement });
    await withdraw(c2, { settlement });

    // Gas is the only other way ETH moved: add back what each sender paid, from the receipts.
    const gas = new Map<Address, bigint>();
    const latest = await chain.publicClient.getBlockNumber();
    for (let n = startBlock + 1n; n <= latest; n++) {
      const block = await chain.publicClient.getBlock({ blockNumber: n });
      for (const hash of block.transactions as Hash[]) {
        const r = await chain.publicClient.getTransactionReceipt({ hash });
        gas.set(getAddress(r.from), (gas.get(getAddress(r.from)) ?? 0n) + r.gasUsed * r.effectiveGasPrice);
      }
    }
    const netFlow = new Map<Address, bigint>();
    for (const a of everyone) {
      const after = await chain.publicClient.getBalance({ address: a });
      netFlow.set(a, after - before.get(a)! + (gas.get(a) ?? 0n));
    }
    const contractBalance = await chain.publicClient.getBalance({ address: settlement });
    const sumOfFlows = [...netFlow.values()].reduce((s, v) => s + v, 0n);
    expect(sumOfFlows + contractBalance).toBe(0n);

    const totals = await settlementTotals(chain.publicClient, { settlement });
    expect(totals.liabilities).toBe(contractBalance);
    expect(netFlow.get(chain.treasury.address)).toBe(parseEther('1.7'));
    expect(totals.totalSlashed).toBe(parseEther('1.7'));
    expect(netFlow.get(p1.account.address)).toBe(parseEther('-3') + parseEther('0.7') + parseEther('1'));
    expect(netFlow.get(c2.account.address)).toBe(parseEther('-1') + parseEther('0.7'));
    // Staked 6, slashed 1.7, unstaked 1; escrowed 3.5, redeemed 1.25, withdrawn 0.7; pool 1.25 - 1.1; earnings 1.1 - 0.7.
    expect(totals).toMatchObject({
      totalStaked: parseEther('3.3'),
      totalEscrowed: parseEther('1.55'),
      pool: parseEther('0.15'),
      totalEarnings: parseEther('0.4'),
    });
  });
});
