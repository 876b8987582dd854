/**
 * Which steps of a committed request the validator checks, and how many. The draw is a pure
 * function of a seed the validator generates only after it holds the stage's signed
 * commitment, so the stage cannot know in advance which steps to compute honestly; being
 * deterministic, anyone given the seed can re-derive the draw when a slash is disputed.
 * Used by the validator (signaling-server) when a commitment arrives.
 */
import { UsageError } from '../errors.ts';

/** 256 bits: the draw must be unpredictable to a stage that can grind through guesses. */
export const MIN_SEED_BYTES = 32;
const DOMAIN = new TextEncoder().encode('infermesh/challenge/v1');

/**
 * A stream of uniform u32s: SHA-256(domain ‖ seed ‖ counter) for counter 0, 1, 2, ...,
 * eight words a block.
 */
function wordStream(seed: Uint8Array): () => Promise<number> {
  const input = new Uint8Array(DOMAIN.length + seed.length + 4);
  input.set(DOMAIN);
  input.set(seed, DOMAIN.length);
  const counterAt = DOMAIN.length + seed.length;
  const view = new DataView(input.buffer);
  let counter = 0;
  let block: DataView | undefined;
  let used = 8;
  return async () => {
    if (used === 8) {
      view.setUint32(counterAt, counter++, false);
      block = new DataView(await crypto.subtle.digest('SHA-256', input));
      used = 0;
    }
    return block!.getUint32(4 * used++, false);
  };
}

/** A uniform integer in 0..n-1 (n ≤ 2^32) by rejection, so no step is favoured by modulo bias. */
async function below(n: number, next: () => Promise<number>): Promise<number> {
  const limit = 2 ** 32 - (2 ** 32 % n);
  for (;;) {
    const x = await next();
    if (x < limit) return x % n;
  }
}

/**
 * ceil(rate × stepCount) distinct steps (at least one when rate > 0; every step when rate ≥ 1),
 * sorted, drawn without replacement by a partial Fisher-Yates shuffle.
 */
export async function drawChallenges(seed: Uint8Array, stepCount: number, rate: number): Promise<number[]> {
  if (seed.length < MIN_SEED_BYTES) throw new UsageError(`a challenge seed needs at least ${MIN_SEED_BYTES} random bytes, got ${seed.length}`);
  if (!Number.isInteger(stepCount) || stepCount < 0 || stepCount > 0xffffffff) throw new UsageError(`bad step count ${stepCount}`);
  if (!(rate >= 0)) throw new UsageError(`bad challenge rate ${rate}`);
  if (rate === 0 || stepCount === 0) return [];
  if (rate >= 1) return Array.from({ length: stepCount }, (_, i) => i);
  const count = Math.min(stepCount, Math.max(1, Math.ceil(rate * stepCount)));
  const next = wordStream(seed);
  // Sparse swaps: a request's steps can number in the thousands while a few are drawn.
  const swapped = new Map<number, number>();
  const drawn: number[] = [];
  for (let i = 0; i < count; i++) {
    const j = i + (await below(stepCount - i, next));
    drawn.push(swapped.get(j) ?? j);
    swapped.set(j, swapped.get(i) ?? i);
  }
  return drawn.sort((a, b) => a - b);
}

export interface Reputation {
  /** steps of this peer that passed a check, ever */
  verifiedSteps: number;
  /** checks this peer failed, ever */
  failedChecks: number;
  /** steps verified since its last failed check (defaults to verifiedSteps when it never failed, else 0) */
  verifiedSinceFailure?: number;
  /** requests it served and did not answer for while connected (no commitment or no reveal) */
  noShows?: number;
  /**
   * its device looks like one banned for cheating (signaling-server/trust/device-profile.ts):
   * every step is checked until it has earned SAMPLING_DECAY_STEPS verified steps, and it then
   * earns trust as slowly as a peer that failed a check
   */
  resemblesBanned?: boolean;
}

/**
 * A new or distrusted peer has half its steps checked: with 24 decode steps a request, a
 * stage that cheats on a quarter of them is caught with probability 1 − 0.75^12 ≈ 97%.
 */
export const SAMPLING_RATE_NEW = 0.5;
/**
 * A long-trusted peer still has one step in twenty checked: cheating on a quarter of 100 steps
 * is caught with probability 1 − 0.75^5 ≈ 76% a request, so a cheat that lasts a few requests
 * is caught while the validator replays 10× less than for a new peer.
 */
export const SAMPLING_RATE_FLOOR = 0.05;
/**
 * Verified steps over which the excess rate falls by e: about 20 requests of 100 tokens, so a
 * new peer earns the floor after some 10 000 verified steps, not after a few cheap ones.
 */
export const SAMPLING_DECAY_STEPS = 2000;

/**
 * How much of a peer's work to check: SAMPLING_RATE_NEW at first, decaying exponentially
 * towards SAMPLING_RATE_FLOOR with verified work, back to the start after a failed check, and
 * decaying more slowly the more checks it has failed (the decay length grows with failures).
 */
export function samplingRate(reputation: Reputation): number {
  const { verifiedSteps, failedChecks } = reputation;
  const earned = failedChecks > 0 ? (reputation.verifiedSinceFailure ?? 0) : (reputation.verifiedSinceFailure ?? verifiedSteps);
  // A stage that failed checks, or did not answer for requests it served, earns trust back more slowly.
  if (reputation.resemblesBanned && earned < SAMPLING_DECAY_STEPS) return 1;
  const decay = SAMPLING_DECAY_STEPS * (1 + Math.max(0, failedChecks) + (reputation.resemblesBanned ? 1 : 0) + Math.max(0, reputation.noShows ?? 0));
  const excess = (SAMPLING_RATE_NEW - SAMPLING_RATE_FLOOR) * Math.exp(-Math.max(0, earned) / decay);
  return SAMPLING_RATE_FLOOR + excess;
}
