/**
 * A route's clock, from measured times only: how long a step may take before it counts as
 * overdue, and which stage has turned slow. Used by route-recovery.ts, which decides what to do.
 *
 *  - A decode step is overdue after DEADLINE_FACTOR times its route's median round trip (never
 *    less than minDeadlineMs: a busy machine's hiccup is no fault).
 *  - A route's first step (its streams opening, then a prompt or a replay) gets setupMs, or a
 *    decode deadline per PREFILL_ROWS rows when that is longer; before any decode step was
 *    measured, firstStepMs.
 *  - A stage is slow when its time per step is SLOW_FACTOR times its median and SLOW_MIN_EXCESS_MS
 *    more, two steps running (a throttled link, a background tab); a slow step does not become
 *    the norm it is measured against.
 */
import { median } from '../statistics.ts';

/** A decode step slower than this many times the route's median round trip is overdue. */
export const DEADLINE_FACTOR = 4;
/** A stage whose step time is this many times its median, two steps running, is slow. */
export const SLOW_FACTOR = 3;
/** ...and only when that is at least this many milliseconds more than its median (timer noise is no slowdown). */
const SLOW_MIN_EXCESS_MS = 100;
/** Rows a first step (a prompt, a replay) may prefill per decode deadline: rows computed together cost far less than as many steps. */
const PREFILL_ROWS = 32;
/** Round trips kept per route, and step times per stage. */
const RECENT = 16;
/** Samples before a median counts. */
const MIN_SAMPLES = 3;
/** Stages whose step times are kept, at most: the one measured longest ago is forgotten first. */
const MAX_STAGES = 256;

export interface StepTimingOptions {
  /** the slowest any step may be, whatever was measured */
  stepTimeoutMs: number;
  /** a route's first step before any decode step was measured */
  firstStepMs: number;
  /** a route's first step once decode steps were measured: at least this */
  setupMs: number;
  /** a decode step's deadline is never shorter than this */
  minDeadlineMs: number;
}

export interface StepTiming {
  /** The deadline of a step of `rows` rows on a route with `roundTrips` measured; `first`: the route's first step for its request. */
  deadline(roundTrips: readonly number[], first: boolean, rows: number): number;
  /** Whether a route has enough decode round trips for its deadlines to come from them (else firstStepMs). */
  measured(roundTrips: readonly number[]): boolean;
  /** Adds a decode round trip to a route's recent ones (kept in `roundTrips`). */
  noteRoundTrip(roundTrips: number[], ms: number): void;
  /**
   * Notes each stage's milliseconds on one decode step (`stageMs[i]` for `peerIds[i]`); returns
   * the stages slow on this step and the one before. `streaks` holds one request's slow steps per stage.
   */
  slowStages(peerIds: readonly string[], stageMs: readonly (number | undefined)[], streaks: Map<string, number>): string[];
}

export function createStepTiming(options: StepTimingOptions): StepTiming {
  /** per stage, its recent milliseconds on decode steps */
  const history = new Map<string, number[]>();
  const measured = (roundTrips: readonly number[]) => roundTrips.length >= MIN_SAMPLES;
  return {
    measured,
    deadline(roundTrips, first, rows) {
      if (!measured(roundTrips)) return options.firstStepMs;
      const decode = Math.max(options.minDeadlineMs, DEADLINE_FACTOR * median(roundTrips)!);
      // A deadline missed by a replay that was only slow costs little: its stages still answer an
      // echo, so it is hedged, not abandoned (route-recovery.ts).
      return Math.min(options.stepTimeoutMs, first ? Math.max(options.setupMs, decode * Math.ceil(rows / PREFILL_ROWS)) : decode);
    },
    noteRoundTrip(roundTrips, ms) {
      roundTrips.push(ms);
      if (roundTrips.length > RECENT) roundTrips.shift();
    },
    slowStages(peerIds, stageMs, streaks) {
      const slowNow: string[] = [];
      peerIds.forEach((peerId, i) => {
        const took = stageMs[i];
        if (took === undefined) return;
        const times = history.get(peerId) ?? [];
        const typical = times.length >= MIN_SAMPLES ? median(times) : undefined;
        const slow = typical !== undefined && took > SLOW_FACTOR * typical && took > typical + SLOW_MIN_EXCESS_MS;
        const streak = slow ? (streaks.get(peerId) ?? 0) + 1 : 0;
        streaks.set(peerId, streak);
        if (streak >= 2) slowNow.push(peerId);
        if (slow) return;
        times.push(took);
        if (times.length > RECENT) times.shift();
        history.delete(peerId);
        history.set(peerId, times);
        if (history.size > MAX_STAGES) history.delete(history.keys().next().value!);
      });
      return slowNow;
    },
  };
}
