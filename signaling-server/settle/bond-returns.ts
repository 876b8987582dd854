/**
 * The operator's bonds come back when their donors are gone. A sponsored bond (sponsorship.ts)
 * backs a donor while it serves; when the donor has been away for `returnAfterMs` (a closed tab
 * that did not come back: a reload or a dropped link is back within seconds), the sponsor asks
 * the bond back on chain (Settlement.requestBondReturn), and once the contract's withdraw delay
 * has passed, takes it (returnBond). Until it is taken the bond still backs the donor, so a
 * conviction meanwhile still slashes it; whatever a slash left is what comes back. A donor that
 * comes back before the request keeps its bond; one that comes back after may be bonded anew.
 * The state of each bond is kept in the ledger, so a restart carries on where it was.
 */
import type { Address } from 'viem';
import { getBlock } from 'viem/actions';
import { balances, bondReturnRequest, requestBondReturn, returnBond } from '../../shared/settle/settlement-client.ts';
import type { SettlementReader, SettlementWallet } from '../../shared/settle/settlement-client.ts';
import type { SettlementLedger } from './ledger.ts';

/** An hour away: a donor gone that long has closed its tab, not reloaded it. */
export const BOND_RETURN_AFTER_MS = 60 * 60_000;

export interface BondReturnsDeps {
  ledger: SettlementLedger;
  reader: SettlementReader;
  /** the sponsor's wallet: only the sponsor may ask a bond back and take it */
  sponsor: SettlementWallet;
  settlement: Address;
  log: (line: string) => void;
  now?: () => number;
  /**
   * Moves a quiet local chain's clock to now (anvil's evm_mine). Anvil stamps a block when it
   * mines one, and mines only on a transaction: with nothing else happening its clock stands
   * still and the delay never passes for the contract. A real chain's blocks keep coming.
   */
  mine?: () => Promise<void>;
}

export function createBondReturns(options: { returnAfterMs?: number }, deps: BondReturnsDeps) {
  const { ledger, reader, sponsor, settlement, log } = deps;
  const now = deps.now ?? Date.now;
  const returnAfterMs = options.returnAfterMs ?? BOND_RETURN_AFTER_MS;
  const away = returnAfterMs >= 60_000 ? `${Math.round(returnAfterMs / 60_000)} min` : `${Math.round(returnAfterMs / 1000)} s`;
  // No donor is connected when the server starts: every bond out starts its clock now.
  ledger.bonds.allLeft(now());

  /** One pass, run with the settlement's other transactions: asks back what is due, takes what is ready. */
  async function round(): Promise<void> {
    for (const provider of ledger.bonds.toReturn(now() - returnAfterMs)) {
      const { bond } = await balances(reader, { settlement, account: provider });
      if (bond === 0n) {
        // Slashed to nothing: nothing to ask back.
        ledger.bonds.returned(provider, 0n, now());
        continue;
      }
      await requestBondReturn(sponsor, { settlement, provider, amount: bond });
      ledger.bonds.returnRequested(provider, now());
      log(`settlement: asked back the bond of ${provider} (${bond} wei): its donor has been gone ${away} or more`);
    }
    for (const provider of ledger.bonds.requested()) {
      const request = await bondReturnRequest(reader, { settlement, provider });
      if (request.amount === 0n) {
        ledger.bonds.returned(provider, 0n, now());
        continue;
      }
      if (BigInt(Math.floor(now() / 1000)) < request.readyAt) continue;
      await deps.mine?.();
      // The contract's clock is the chain's: a chain behind ours is asked again next round.
      if ((await getBlock(reader)).timestamp < request.readyAt) continue;
      const { bond } = await balances(reader, { settlement, account: provider });
      await returnBond(sponsor, { settlement, provider });
      const back = bond < request.amount ? bond : request.amount;
      ledger.bonds.returned(provider, back, now());
      log(`settlement: the bond of ${provider} is back with the operator (${back} wei)`);
    }
  }

  return {
    round,
    /** A donor with this payout address left: its bond's clock starts. */
    left: (provider: Address) => ledger.bonds.left(provider, now()),
    /** It is back before its bond was asked back: the clock stops. */
    back: (provider: Address) => ledger.bonds.back(provider),
  };
}
