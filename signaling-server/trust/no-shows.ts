/**
 * Stages that serve a request and then do not answer for it. A stage must commit to every
 * request it served and reveal what the validator challenges; one that stays connected and
 * does neither may be hiding bad work, so each such no-show costs it: its unvested rewards are
 * forfeited, it is recorded (its reputation: it is checked more, for longer), `suspendAfter`
 * no-shows within `windowMs` keep it out of routes for `suspendMs`, and `banAfter` ban it.
 *
 * A stage that left is not a cheat: a tab closed mid-request, or whose connection dropped, says
 * nothing more, and the request recovered without it (the churn issue). So a stage that is no
 * longer connected when its answer is due is excused, and only a stage that stayed (still
 * registered with the coordinator) is counted. Nor is the server's own overload a cheat: a stage
 * whose trust stream the validator turned away as busy after the request ended is excused.
 *
 * Which stages owe a commitment: for the gateway's own requests, every stage of the route a
 * request finished on (they all served its last step), checked `commitGraceMs` after it ended.
 * Missed reveals come from the validator for any request (Validator onMissedReveal).
 */
export type NoShowKind = 'commitment' | 'reveal';

export interface NoShowPolicy {
  /** how long after a request ends its stages' commitments must be in (default 60 s: the attestor retries a busy validator) */
  commitGraceMs: number;
  /** no-shows within this window count together (default 1 h) */
  windowMs: number;
  /** this many in the window keep the stage out of routes (default 3) */
  suspendAfter: number;
  /** for this long (default 10 min) */
  suspendMs: number;
  /** this many in the window ban it (default 6) */
  banAfter: number;
}

export const DEFAULT_NO_SHOW_POLICY: NoShowPolicy = { commitGraceMs: 60_000, windowMs: 3_600_000, suspendAfter: 3, suspendMs: 600_000, banAfter: 6 };

export interface NoShowDeps {
  /** whether the stage is still connected and registered (a stage that left is excused) */
  connected(peerId: string): boolean;
  committedTo(peerId: string, requestId: string): boolean;
  /** whether the validator turned this stage's trust stream away as busy since a time (its commitment may be what it refused) */
  turnedAway?(peerId: string, since: number): boolean;
  record(noShow: { peerId: string; requestId: string; kind: NoShowKind }): void;
  /** its no-shows since a time, the one just recorded included */
  count(peerId: string, since: number): number;
  /** forfeits the stage's unvested rewards; resolves to the wei forfeited (0 without settlement) */
  forfeit(peerId: string): Promise<bigint>;
  suspend(peerId: string): void;
  resume(peerId: string): void;
  ban(peerId: string, reason: string): void;
  log(line: string): void;
  now?: () => number;
  setTimer?: (run: () => void, ms: number) => void;
}

export interface NoShows {
  /** The route a gateway request finished on: each stage's commitment is checked once the grace has passed. */
  expectCommitments(requestId: string, stages: readonly string[]): void;
  /** A stage's no-show (`since`: when its answer became owed); returns what came of it. */
  noShow(peerId: string, requestId: string, kind: NoShowKind, since?: number): Promise<'excused' | 'counted' | 'suspended' | 'banned'>;
  /** Stops the pending checks (the server is closing). */
  stop(): void;
}

export function createNoShows(policy: Partial<NoShowPolicy>, deps: NoShowDeps): NoShows {
  const p = { ...DEFAULT_NO_SHOW_POLICY, ...policy };
  const now = deps.now ?? Date.now;
  const timers = new Set<ReturnType<typeof setTimeout>>();
  const later = deps.setTimer ?? ((run: () => void, ms: number) => {
    const t = setTimeout(() => {
      timers.delete(t);
      run();
    }, ms);
    t.unref?.();
    timers.add(t);
  });

  async function noShow(peerId: string, requestId: string, kind: NoShowKind, since?: number): Promise<'excused' | 'counted' | 'suspended' | 'banned'> {
    if (!deps.connected(peerId)) {
      deps.log(`no-shows: ${peerId} gave no ${kind} for request ${requestId}, but it left: excused`);
      return 'excused';
    }
    // The server's own overload is not the stage's fault: a commitment the validator turned away is not withheld.
    if (since !== undefined && deps.turnedAway?.(peerId, since)) {
      deps.log(`no-shows: ${peerId} gave no ${kind} for request ${requestId}, but the validator turned it away as busy: excused`);
      return 'excused';
    }
    deps.record({ peerId, requestId, kind });
    const forfeited = await deps.forfeit(peerId).catch(() => 0n);
    const recent = deps.count(peerId, now() - p.windowMs);
    deps.log(`no-shows: ${peerId} stayed connected and gave no ${kind} for request ${requestId} (${recent} in the last ${p.windowMs / 60_000} min); ${forfeited} wei of unvested rewards forfeited`);
    if (recent >= p.banAfter) {
      deps.ban(peerId, `${recent} requests served and not answered for within ${p.windowMs / 60_000} min`);
      return 'banned';
    }
    if (recent >= p.suspendAfter) {
      deps.suspend(peerId);
      later(() => deps.resume(peerId), p.suspendMs);
      return 'suspended';
    }
    return 'counted';
  }

  return {
    expectCommitments(requestId, stages) {
      const ended = now();
      later(() => {
        for (const peerId of stages) if (!deps.committedTo(peerId, requestId)) void noShow(peerId, requestId, 'commitment', ended);
      }, p.commitGraceMs);
    },
    noShow,
    stop() {
      for (const t of timers) clearTimeout(t);
      timers.clear();
    },
  };
}
