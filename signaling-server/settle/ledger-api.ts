/**
 * The money and trust record over HTTP, for people and dashboards (the donor page polls its own):
 *
 *   GET /v1/ledger                 the chain and contract, on-chain totals, every provider's
 *                                  stake, verified work, earnings pending, paid and forfeited, batches,
 *                                  slashes and the newest refused vouchers
 *   GET /v1/ledger/peers/<peerId>  one peer's history: payout address, stake, work, pending and
 *                                  paid earnings, its reputation (verified work ever and lately,
 *                                  the validator's sampling rate), verdicts, refusals, slashes
 *
 * Amounts are wei as decimal strings (JSON has no integers that large).
 */
import type { Address } from 'viem';
import { samplingRate } from '../../shared/trust/challenge.ts';
import { balances, settlementTotals } from '../../shared/settle/settlement-client.ts';
import { HttpError } from '../http/errors.ts';
import { pathParameter } from '../http/request-target.ts';
import { jsonResponse } from '../http/server.ts';
import type { ApiHandler } from '../http/server.ts';
import type { GridStore } from '../store.ts';
import type { GridSettlement } from './grid-settlement.ts';

const wei = (value: bigint) => value.toString();

/** GET /v1/ledger lists the newest refused vouchers only: anyone can post forged ones by the thousand. */
export const LEDGER_REJECTED_SHOWN = 100;

/**
 * Providers' earnings from the ledger, in one query (of `only`, when given: a peer's page reads
 * its own receipts, not everyone's): paid (released in confirmed batches), pending (earned,
 * neither paid nor forfeited: vesting, or in a batch on its way) and forfeited (lost unvested on
 * a conviction).
 */
function earningsByProvider(settlement: GridSettlement, only?: Address) {
  const totals = new Map(settlement.ledger.earnings(only).map((e) => [e.provider.toLowerCase(), e]));
  return (provider: Address) => {
    const e = totals.get(provider.toLowerCase()) ?? { verifiedWork: 0, earned: 0n, paid: 0n, forfeited: 0n };
    return { verifiedWork: e.verifiedWork, pending: wei(e.earned - e.paid - e.forfeited), paid: wei(e.paid), forfeited: wei(e.forfeited) };
  };
}

function reputationOf(store: GridStore, peerId: string) {
  const reputation = store.reputation(peerId);
  return { ...reputation, samplingRate: +samplingRate(reputation).toFixed(4) };
}

export function ledgerHandlers(settlement: GridSettlement, store?: GridStore): ApiHandler[] {
  const { ledger, reader } = settlement;
  const target = { settlement: settlement.chain.contract };

  async function provider(address: Address, earnings = earningsByProvider(settlement, address)) {
    const onChain = await balances(reader, { ...target, account: address });
    // `stake`: all that backs the provider (slashable); `bond`: the operator's part of it, which stays the operator's.
    return { address, stake: wei(onChain.stake + onChain.bond), bond: wei(onChain.bond), earnings: wei(onChain.earnings), ...earnings(address) };
  }

  return [
    {
      method: 'GET',
      path: '/v1/ledger',
      async handle() {
        const totals = await settlementTotals(reader, target);
        const addresses = [...new Set(ledger.receipts().map((r) => r.provider))];
        const earnings = earningsByProvider(settlement);
        return jsonResponse({
          object: 'ledger',
          chain: settlement.chain,
          totals: Object.fromEntries(Object.entries(totals).map(([k, v]) => [k, wei(v)])),
          providers: await Promise.all(addresses.map((a) => provider(a, earnings))),
          batches: ledger.batches().map((b) => ({ ...b, total: wei(b.total), payouts: b.payouts.map((p) => ({ ...p, amount: wei(p.amount) })) })),
          slashes: ledger.slashes().map((s) => ({ ...s, amount: wei(s.amount) })),
          rejectedVouchers: ledger.rejectedVouchers(undefined, LEDGER_REJECTED_SHOWN).map((v) => ({ ...v, cumulativeAmount: wei(v.cumulativeAmount) })),
        });
      },
    },
    {
      method: 'GET',
      path: '/v1/ledger/peers/*',
      async handle(req) {
        const peerId = pathParameter(req.url, '/v1/ledger/peers/', 'peerId');
        if (!peerId) throw new HttpError(400, 'name a peer: /v1/ledger/peers/<peerId>', { code: 'missing_peer' });
        const address = settlement.payoutAddress(peerId);
        const verdicts = store?.verdicts({ peerId }) ?? [];
        if (!address && verdicts.length === 0) throw new HttpError(404, `no ledger entries for peer ${peerId}`, { code: 'peer_not_found' });
        return jsonResponse({
          object: 'ledger.peer',
          peerId,
          ...(address ? await provider(address) : { address: null }),
          // Verified work ever and lately (halved each REPUTATION_HALF_LIFE_MS), and how much of its work the validator checks now.
          ...(store && { reputation: reputationOf(store, peerId) }),
          verdicts,
          refusals: store?.refusals({ peerId }) ?? [],
          slashes: ledger.slashes().filter((s) => s.peerId === peerId).map((s) => ({ ...s, amount: wei(s.amount) })),
        });
      },
    },
  ];
}
