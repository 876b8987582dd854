/**
 * SDK clients' vouchers over HTTP against a real grid settlement (its own anvil, a deployed
 * Settlement, a ledger file): good vouchers pay verified work on the request ids they name, up to
 * what they added; forged, stale, unfunded and malformed ones are answered 400 with their names;
 * the SDK's payer (shared/settle/request-payer.ts) continues the sequence the server holds and
 * reports refusals.
 */
import { join } from 'node:path';
import { parseEther, type Address, type Hex } from 'viem';
import { generatePrivateKey, privateKeyToAccount, type PrivateKeyAccount } from 'viem/accounts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { removeTempDirs, tempDir } from '../../testkit/model-fixtures.ts';
import { PaymentRefusedError } from '../../shared/settle/errors.ts';
import { createRequestPayer } from '../../shared/settle/request-payer.ts';
import { balances, deposit } from '../../shared/settle/settlement-client.ts';
import { signVoucher, voucherTypes } from '../../shared/settle/voucher.ts';
import { ANVIL_DEV_KEYS } from '../chain/anvil.ts';
import { startHttpServer, type HttpServer } from '../http/server.ts';
import { startGridSettlement, type GridSettlement } from './grid-settlement.ts';
import { walletOn } from '../../testkit/settlement-chain.ts';
import { voucherHandlers } from './voucher-api.ts';

const GWEI = 1_000_000_000n;
let settlement: GridSettlement;
let http: HttpServer;
// Dev accounts 0-4 play the settlement's roles; 5-9 are clients here.
const [alice, bob, mallory, carol, dave] = ANVIL_DEV_KEYS.slice(5).map((k) => privateKeyToAccount(k));
const providers = new Map<string, Address>();

beforeAll(async () => {
  settlement = await startGridSettlement({ ledgerPath: join(await tempDir(), 'ledger.sqlite'), settleIntervalMs: 3_600_000, sponsorStake: 0n });
  http = await startHttpServer({ host: '127.0.0.1', port: 0, api: voucherHandlers(settlement) }, { logError: () => {} });
  for (const client of [alice, carol, dave]) await deposit(walletOn(settlement.chain, client), { settlement: settlement.chain.contract, amount: parseEther('1') });
  for (const peerId of ['stage-a', 'stage-b']) {
    providers.set(peerId, privateKeyToAccount(generatePrivateKey()).address);
    await settlement.donorJoined(peerId, providers.get(peerId)!);
  }
});

afterAll(async () => {
  await http?.close();
  await settlement?.close();
  await removeTempDirs();
});

const sign = async (account: PrivateKeyAccount, cumulativeAmount: bigint) => signVoucher(account, settlement.settler.domain, { cumulativeAmount });
const wire = (v: { client: Address; cumulativeAmount: bigint; signature: Hex }) => ({ client: v.client, cumulativeAmount: v.cumulativeAmount.toString(), signature: v.signature });

async function post(body: unknown): Promise<{ status: number; body: Record<string, unknown> & { error?: { message: string; code: string | null; param: string | null } } }> {
  const response = await fetch(new URL('api/vouchers', http.url), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: response.status, body: (await response.json()) as never };
}

async function latest(client: string): Promise<{ status: number; body: { cumulativeAmount?: string; error?: { code: string } } }> {
  const response = await fetch(new URL(`api/vouchers/${client}`, http.url));
  return { status: response.status, body: (await response.json()) as never };
}

const verified = (peerId: string, requestId: string, layers: number, tokens: number) => settlement.workVerified({ peerId, requestId, layers, tokens });
const receiptsFor = (requestId: string) => settlement.ledger.receipts().filter((r) => r.requestId === requestId).map((r) => [r.provider, r.amount]);

describe('POST /api/vouchers', () => {
  it('accepts a good voucher, keeps it as the client’s latest and pays verified work on its request ids', async () => {
    const answer = await post({ voucher: wire(await sign(alice, 40n * GWEI)), requestIds: ['req-a'] });
    expect(answer).toMatchObject({ status: 200, body: { object: 'voucher', client: alice.address, cumulativeAmount: String(40n * GWEI), amount: String(40n * GWEI), requestIds: ['req-a'] } });
    expect(settlement.ledger.latestVoucher(alice.address)!.cumulativeAmount).toBe(40n * GWEI);

    verified('stage-a', 'req-a', 2, 10);
    verified('stage-b', 'req-a', 2, 10);
    verified('stage-a', 'req-nobody-paid', 2, 10);
    expect(receiptsFor('req-a')).toEqual([[providers.get('stage-a'), 20n * GWEI], [providers.get('stage-b'), 20n * GWEI]]);
    expect(receiptsFor('req-nobody-paid')).toEqual([]);
    expect((await latest(alice.address.toLowerCase())).body.cumulativeAmount).toBe(String(40n * GWEI));
  });

  it('pays a verdict that came before its voucher once the voucher arrives', async () => {
    verified('stage-a', 'req-early', 1, 5);
    expect(receiptsFor('req-early')).toEqual([]);
    expect((await post({ voucher: wire(await sign(alice, 45n * GWEI)), requestIds: ['req-early'] })).status).toBe(200);
    expect(receiptsFor('req-early')).toEqual([[providers.get('stage-a'), 5n * GWEI]]);
  });

  it('pays receipts only up to what the client’s vouchers added', async () => {
    expect((await post({ voucher: wire(await sign(carol, 30n * GWEI)), requestIds: ['req-short'] })).body.amount).toBe(String(30n * GWEI));
    verified('stage-a', 'req-short', 2, 10);
    verified('stage-b', 'req-short', 2, 10);
    expect(receiptsFor('req-short')).toEqual([[providers.get('stage-a'), 20n * GWEI], [providers.get('stage-b'), 10n * GWEI]]);
  });

  it('refuses forged, lower-amount and unfunded vouchers with 400 and their names, and records each', async () => {
    const message = { client: alice.address, cumulativeAmount: 900n * GWEI };
    const forged = { ...message, signature: await mallory.signTypedData({ domain: settlement.settler.domain, types: voucherTypes, primaryType: 'Voucher', message }) };
    const refusals = [
      await post({ voucher: wire(forged), requestIds: ['req-forged'] }),
      await post({ voucher: wire(await sign(alice, 10n * GWEI)), requestIds: ['req-stale'] }),
      await post({ voucher: wire(await sign(bob, 10n * GWEI)), requestIds: ['req-unfunded'] }),
    ];
    expect(refusals.map((r) => [r.status, r.body.error?.code])).toEqual([
      [400, 'VoucherSignatureError'],
      [400, 'VoucherAmountError'],
      [400, 'VoucherEscrowError'],
    ]);
    expect(refusals[0].body.error!.message).toContain(`signed by ${mallory.address}`);
    expect(refusals[1].body.error!.message).toMatch(/not above the 45000000000 already accepted/);
    expect(refusals[2].body.error!.message).toMatch(/escrow covers 0/);

    const rejected = settlement.ledger.rejectedVouchers();
    expect(rejected.map((r) => [r.client, r.reason])).toEqual([
      [alice.address, 'VoucherSignatureError'],
      [alice.address, 'VoucherAmountError'],
      [bob.address, 'VoucherEscrowError'],
    ]);
    // Nothing refused paid for anything, and alice's sequence is where it was.
    for (const id of ['req-forged', 'req-stale', 'req-unfunded']) verified('stage-a', id, 1, 1);
    expect(['req-forged', 'req-stale', 'req-unfunded'].flatMap(receiptsFor)).toEqual([]);
    expect((await latest(alice.address)).body.cumulativeAmount).toBe(String(45n * GWEI));
  });

  it('refuses a body that is not a voucher with 400 MalformedVoucherError naming the field', async () => {
    const good = wire(await sign(alice, 50n * GWEI));
    const cases: [unknown, string][] = [
      [null, 'body'],
      [{ requestIds: ['r'] }, 'voucher'],
      [{ voucher: { ...good, client: '0x1234' }, requestIds: ['r'] }, 'voucher.client'],
      [{ voucher: { ...good, cumulativeAmount: 5e10 }, requestIds: ['r'] }, 'voucher.cumulativeAmount'],
      [{ voucher: { ...good, cumulativeAmount: '-1' }, requestIds: ['r'] }, 'voucher.cumulativeAmount'],
      [{ voucher: { ...good, signature: '0xdead' }, requestIds: ['r'] }, 'voucher.signature'],
      [{ voucher: good }, 'requestIds'],
      [{ voucher: good, requestIds: [] }, 'requestIds'],
      [{ voucher: good, requestIds: [42] }, 'requestIds'],
    ];
    for (const [body, param] of cases) {
      const answer = await post(body);
      expect([answer.status, answer.body.error?.code, answer.body.error?.param]).toEqual([400, 'MalformedVoucherError', param]);
    }
    expect(settlement.ledger.latestVoucher(alice.address)!.cumulativeAmount).toBe(45n * GWEI);
  });
});

describe('GET /api/vouchers/<address>', () => {
  it('answers 0 for a client never seen and 400 for something that is not an address', async () => {
    expect((await latest(dave.address)).body).toMatchObject({ object: 'voucher.latest', client: dave.address, cumulativeAmount: '0', redeemed: '0' });
    expect(await latest('not-an-address')).toMatchObject({ status: 400, body: { error: { code: 'MalformedVoucherError' } } });
  });
});

describe('the SDK’s payer', () => {
  const info = () => ({ chainId: settlement.chain.chainId, contract: settlement.chain.contract, pricePerLayerToken: settlement.chain.pricePerLayerToken });

  it('continues from the cumulative amount the server holds and pays price × layers × tokens per request', async () => {
    const payments: bigint[] = [];
    const payer = createRequestPayer({ url: http.url, account: alice, settlement: info(), nLayers: 5, onPayment: (p) => payments.push(p.cumulativeAmount) });
    payer.charge({ requestIds: ['sdk-1'], tokens: 4 }); // 20 gwei
    payer.charge({ requestIds: ['sdk-2', 'sdk-2-retry'], tokens: 2 }); // 10 gwei
    await payer.check();
    expect(payments).toEqual([65n * GWEI, 75n * GWEI]);
    expect(await payer.cumulativeAmount()).toBe(75n * GWEI);
    verified('stage-b', 'sdk-2-retry', 5, 2);
    expect(receiptsFor('sdk-2-retry')).toEqual([[providers.get('stage-b'), 10n * GWEI]]);

    // After settlement the client's escrow fell by exactly its last voucher.
    await settlement.settleNow();
    expect((await balances(settlement.reader, { settlement: settlement.chain.contract, account: alice.address })).escrow).toBe(parseEther('1') - 75n * GWEI);
  });

  it('throws a refusal from the next check, once, with the server’s code', async () => {
    const payer = createRequestPayer({ url: http.url, account: bob, settlement: info(), nLayers: 5 });
    payer.charge({ requestIds: ['sdk-unfunded'], tokens: 3 });
    const err = await payer.check().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PaymentRefusedError);
    expect(err).toMatchObject({ name: 'PaymentRefusedError', code: 'VoucherEscrowError', status: 400, requestIds: ['sdk-unfunded'], cumulativeAmount: 15n * GWEI });
    await expect(payer.check()).resolves.toBeUndefined();
  });

  it('hands refusals to onPaymentError instead when one is given', async () => {
    const refused: PaymentRefusedError[] = [];
    const payer = createRequestPayer({ url: http.url, account: bob, settlement: info(), nLayers: 5, onPaymentError: (e) => refused.push(e) });
    payer.charge({ requestIds: ['sdk-unfunded-2'], tokens: 1 });
    await expect(payer.check()).resolves.toBeUndefined();
    expect(refused.map((e) => e.code)).toEqual(['VoucherEscrowError']);
  });
});
