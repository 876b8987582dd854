/**
 * The money and trust record over HTTP, for people and dashboards (the donor page polls its own):
 *
 *   GET /v1/ledger                 the chain and contract, on-chain totals, every provider's
 *                                  stake, verified work, earnings pending and paid, batches,
 *                                  slashes and refused vouchers
 *   GET /v1/ledger/peers/<peerId>  one peer's history: payout address, stake, work, pending and
 *                                  paid earnings, the validator's verdicts and refusals, slashes
 *
 * Amounts are wei as decimal strings (JSON has no integers that large).
 */
import type { Address } from 'viem';
import { balances, settlementTotals } from '../../shared/settle/settlement-client.ts';
import { HttpError } from '../http/errors.ts';
import { jsonResponse } from '../http/server.ts';
import type { ApiHandler } from '../http/server.ts';
import type { GridStore } from '../store.ts';
import type { GridSettlement } from './grid-settlement.ts';
import type { WorkReceipt } from './ledger.ts';

const wei = (value: bigint) => value.toString();

/** A provider's receipts split by where their money is: not yet paid, or paid in a confirmed batch. */
function earningsOf(settlement: GridSettlement, provider: Address) {
  const confirmed = new Set(settlement.ledger.batches({ states: ['confirmed'] }).map((b) => b.id));
  const receipts = settlement.ledger.receipts().filter((r) => r.provider.toLowerCase() === provider.toLowerCase());
  const sum = (rs: WorkReceipt[]) => rs.reduce((total, r) => total + r.amount, 0n);
  const paid = receipts.filter((r) => r.batchId && confirmed.has(r.batchId));
  return {
    verifiedWork: receipts.reduce((total, r) => total + r.layers * r.tokens, 0),
    pending: wei(sum(receipts) - sum(paid)),
    paid: wei(sum(paid)),
  };
}

export function ledgerHandlers(settlement: GridSettlement, store?: GridStore): ApiHandler[] {
  const { ledger, reader } = settlement;
  const target = { settlement: settlement.chain.contract };

  async function provider(address: Address) {
    const onChain = await balances(reader, { ...target, account: address });
    return { address, stake: wei(onChain.stake), earnings: wei(onChain.earnings), ...earningsOf(settlement, address) };
  }

  return [
    {
      method: 'GET',
      path: '/v1/ledger',
      async handle() {
        const totals = await settlementTotals(reader, target);
        const addresses = [...new Set(ledger.receipts().map((r) => r.provider))];
        return jsonResponse({
          object: 'ledger',
          chain: settlement.chain,
          totals: Object.fromEntries(Object.entries(totals).map(([k, v]) => [k, wei(v)])),
          providers: await Promise.all(addresses.map(provider)),
          batches: ledger.batches().map((b) => ({ ...b, total: wei(b.total), payouts: b.payouts.map((p) => ({ ...p, amount: wei(p.amount) })) })),
          slashes: ledger.slashes().map((s) => ({ ...s, amount: wei(s.amount) })),
          rejectedVouchers: ledger.rejectedVouchers().map((v) => ({ ...v, cumulativeAmount: wei(v.cumulativeAmount) })),
        });
      },
    },
    {
      method: 'GET',
      path: '/v1/ledger/peers/*',
      async handle(req) {
        const peerId = decodeURIComponent(req.url.pathname.slice('/v1/ledger/peers/'.length));
        if (!peerId) throw new HttpError(400, 'name a peer: /v1/ledger/peers/<peerId>', { code: 'missing_peer' });
        const address = settlement.payoutAddress(peerId);
        const verdicts = store?.verdicts({ peerId }) ?? [];
        if (!address && verdicts.length === 0) throw new HttpError(404, `no ledger entries for peer ${peerId}`, { code: 'peer_not_found' });
        return jsonResponse({
          object: 'ledger.peer',
          peerId,
          ...(address ? await provider(address) : { address: null }),
          verdicts,
          refusals: store?.refusals({ peerId }) ?? [],
          slashes: ledger.slashes().filter((s) => s.peerId === peerId).map((s) => ({ ...s, amount: wei(s.amount) })),
        });
      },
    },
  ];
}
