/**
 * Rewards follow verified work smoothed over time: a receipt's amount is not paid at once but
 * vests, half of what is still unvested each half-life after the work was verified, and every
 * settlement round pays what vested since the last. A stage's payouts therefore track its
 * verified work as a moving average rather than request by request, and what has not vested
 * when the stage is convicted is forfeited (ledger.ts `forfeit`) on top of its slashed stake.
 * After VESTED_AFTER_HALF_LIVES half-lives the rest vests at once, so no dust stays behind.
 */

/** Beyond this many half-lives (under 0.4% left) a receipt is wholly vested. */
export const VESTED_AFTER_HALF_LIVES = 8;
const PARTS = 1_000_000_000n;

/** What of `amount` has vested `ageMs` after it was earned; a half-life of 0 vests at once. Rounds down. */
export function vestedAmount(amount: bigint, ageMs: number, halfLifeMs: number): bigint {
  if (halfLifeMs <= 0 || ageMs >= VESTED_AFTER_HALF_LIVES * halfLifeMs) return amount;
  if (ageMs <= 0) return 0n;
  const fraction = 1 - 2 ** (-ageMs / halfLifeMs);
  return (amount * BigInt(Math.floor(fraction * Number(PARTS)))) / PARTS;
}
