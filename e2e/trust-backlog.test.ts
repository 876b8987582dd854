/**
 * A server restart between a stage's reveal and its verdict: the validator keeps the replays
 * it owes in the grid store (a real SQLite file), and the validator of the next run judges
 * them, so the stages' work is verified (and paid) and a cheat is not let off by a restart.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { removeTempDirs, tempDir } from '../testkit/model-fixtures.ts';
import { startTrustGrid } from '../testkit/trust-grid.ts';
import type { StagePeer, TrustGrid } from '../testkit/trust-grid.ts';
import { openGridStore } from '../signaling-server/store.ts';
import type { GridStore } from '../signaling-server/store.ts';
import type { Replayer } from '../signaling-server/trust/replayer.ts';

let grid: TrustGrid;
let store: GridStore;
let route: StagePeer[];
/** A replayer that finishes only when told to fail: the server stops while it replays. */
const cutShort: (() => void)[] = [];
const stalled: Replayer = {
  replay: () => new Promise((_, reject) => cutShort.push(() => reject(new Error('the replayer closed')))),
  close: async () => {},
};

beforeAll(async () => {
  store = openGridStore(join(await tempDir(), 'grid.sqlite'));
  grid = await startTrustGrid({ backlog: store, replayer: stalled });
  route = [];
  for (const layers of [{ start: 0, end: 2 }, { start: 2, end: 5 }]) route.push(await grid.startStage(layers));
});

afterAll(async () => {
  await grid?.stop();
  store?.close();
  await removeTempDirs();
});

describe('replays owed across a validator restart', () => {
  it('are kept in the store while the replay runs, and judged by the next validator', async () => {
    await grid.generate(route, 12);
    // Both stages' reveals were accepted (their attestations succeed), but no verdict came.
    const outcomes = await Promise.all((await Promise.all(route.map((p) => grid.waitForAttestations(p)))).flat());
    expect(outcomes.every((o) => o.challenged.length > 0)).toBe(true);
    const owed = store.pendingReplays();
    expect(owed.map((r) => r.peerId).sort()).toEqual(route.map((p) => p.hop.peerId).sort());
    expect(owed.every((r) => r.reveal.byteLength > 0 && r.challenged.length > 0)).toBe(true);
    expect(grid.verdicts).toEqual([]);

    await grid.restartValidator();
    // The old validator's replay fails as its replayer closes: after stop() that is no refusal, and its row stays for the new one.
    for (const fail of cutShort) fail();
    await grid.validator.idle();
    expect(grid.verdicts.map((v) => [v.peerId, v.ok, v.requestId]).sort()).toEqual(
      route.map((p) => [p.hop.peerId, true, outcomes[0].requestId]).sort(),
    );
    expect(grid.verdicts.map((v) => v.checkedSteps).sort()).toEqual(owed.map((r) => r.challenged).sort());
    expect(store.pendingReplays()).toEqual([]);
    expect(grid.refusals).toEqual([]);
  });
});
