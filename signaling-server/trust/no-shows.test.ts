import { describe, expect, it } from 'vitest';
import { createNoShows } from './no-shows.ts';
import type { NoShowDeps } from './no-shows.ts';

/** The policy over a small in-memory grid: who is connected, who committed, and a clock and timers the test moves. */
function grid() {
  let now = 0;
  const timers: { at: number; run: () => void }[] = [];
  const connected = new Set(['stays', 'leaves']);
  const committed = new Set<string>();
  const recorded: { peerId: string; at: number }[] = [];
  const events: string[] = [];
  const busyAt = new Map<string, number>();
  const deps: NoShowDeps = {
    connected: (id) => connected.has(id),
    committedTo: (id, r) => committed.has(`${id} ${r}`),
    turnedAway: (id, since) => (busyAt.get(id) ?? -1) >= since,
    record: (n) => void recorded.push({ peerId: n.peerId, at: now }),
    count: (id, since) => recorded.filter((r) => r.peerId === id && r.at >= since).length,
    forfeit: async (id) => (events.push(`forfeit ${id}`), 5n),
    suspend: (id) => void events.push(`suspend ${id}`),
    resume: (id) => void events.push(`resume ${id}`),
    ban: (id, reason) => void events.push(`ban ${id}: ${reason}`),
    log: () => undefined,
    now: () => now,
    setTimer: (run, ms) => void timers.push({ at: now + ms, run }),
  };
  const advance = async (ms: number) => {
    now += ms;
    for (const t of timers.filter((t) => t.at <= now)) {
      timers.splice(timers.indexOf(t), 1);
      t.run();
    }
    await new Promise((r) => setTimeout(r, 0));
  };
  const noShows = createNoShows({ commitGraceMs: 1000, windowMs: 60_000, suspendAfter: 2, suspendMs: 10_000, banAfter: 3 }, deps);
  const turnAway = (id: string) => void busyAt.set(id, now);
  return { noShows, connected, committed, events, recorded, advance, turnAway };
}

describe('no-shows', () => {
  it('excuse a stage that left; cost one that stayed its unvested rewards', async () => {
    const g = grid();
    g.connected.delete('leaves');
    expect(await g.noShows.noShow('leaves', 'r1', 'reveal')).toBe('excused');
    expect(await g.noShows.noShow('stays', 'r1', 'reveal')).toBe('counted');
    expect(g.events).toEqual(['forfeit stays']);
    expect(g.recorded.map((r) => r.peerId)).toEqual(['stays']);
  });

  it('keep a stage that repeats them out of routes for a while, then ban it', async () => {
    const g = grid();
    await g.noShows.noShow('stays', 'r1', 'commitment');
    expect(await g.noShows.noShow('stays', 'r2', 'commitment')).toBe('suspended');
    await g.advance(10_000);
    expect(g.events.filter((e) => !e.startsWith('forfeit'))).toEqual(['suspend stays', 'resume stays']);
    expect(await g.noShows.noShow('stays', 'r3', 'reveal')).toBe('banned');
    expect(g.events.at(-1)).toBe('ban stays: 3 requests served and not answered for within 1 min');
  });

  it('count no-shows within the window only', async () => {
    const g = grid();
    await g.noShows.noShow('stays', 'r1', 'commitment');
    await g.advance(61_000);
    expect(await g.noShows.noShow('stays', 'r2', 'commitment')).toBe('counted');
  });

  it('check the commitments of a finished request’s stages once the grace has passed', async () => {
    const g = grid();
    g.noShows.expectCommitments('r9', ['stays', 'leaves', 'honest']);
    g.connected.add('honest');
    g.committed.add('honest r9');
    await g.advance(999);
    expect(g.recorded).toEqual([]);
    g.connected.delete('leaves');
    await g.advance(1);
    expect(g.recorded.map((r) => r.peerId)).toEqual(['stays']);
  });

  it('excuse a stage the validator turned away as busy after the request ended, not one turned away before', async () => {
    const g = grid();
    g.connected.add('busy');
    g.connected.add('early');
    g.turnAway('early');
    await g.advance(10);
    g.noShows.expectCommitments('r5', ['busy', 'early']);
    await g.advance(500);
    g.turnAway('busy');
    await g.advance(500);
    expect(g.recorded.map((r) => r.peerId)).toEqual(['early']);
  });
});
