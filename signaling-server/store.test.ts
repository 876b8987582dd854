/** The grid store on a real SQLite file: peers, assignments, requests, migrations and reopening. */
import { DatabaseSync } from 'node:sqlite';
import { join } from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { removeTempDirs, tempDir } from '../testkit/model-fixtures.ts';
import type { DeviceSummary, RouteHop } from '../shared/grid/protocol.ts';
import { openGridStore, REPUTATION_HALF_LIFE_MS, STORE_SCHEMA_VERSION, type GridStore } from './store.ts';

const device: DeviceSummary = { executionProvider: 'webgpu', msPerLayer: 1.5, memoryBytes: 2 ** 30, signature: 'sig-a', label: 'google swiftshader' };
const route: RouteHop[] = [
  { peerId: 'peer-a', addrs: ['/ip4/127.0.0.1/tcp/1/ws/p2p/relay/p2p-circuit/webrtc/p2p/peer-a'], layers: { start: 0, end: 3 } },
  { peerId: 'peer-b', addrs: [], layers: { start: 3, end: 5 } },
];

let clock = 1_000;
const now = () => clock;
let file: string;
let store: GridStore;

beforeEach(async () => {
  clock = 1_000;
  // A folder that does not exist yet: the store makes it, as a fresh --data folder needs.
  file = join(await tempDir(), 'state', 'grid.sqlite');
  store = openGridStore(file, { now });
});
afterEach(() => store.close());
afterAll(removeTempDirs);

describe('peers', () => {
  it('records a peer on first sight and keeps first seen while last seen, role and device move on', () => {
    expect(store.peerSeen({ peerId: 'peer-a', role: 'donor', device })).toEqual({ peerId: 'peer-a', role: 'donor', device, firstSeen: 1_000, lastSeen: 1_000, stats: null });
    clock = 5_000;
    // A later hello without a device keeps the one already known.
    expect(store.peerSeen({ peerId: 'peer-a', role: 'donor' })).toMatchObject({ firstSeen: 1_000, lastSeen: 5_000, device });
  });

  it('stores serving stats as a sign of life', () => {
    store.peerSeen({ peerId: 'peer-a', role: 'donor' });
    clock = 2_000;
    store.recordStats('peer-a', { requestsServed: 3, tokensServed: 120, tokensPerSecond: 14.5 });
    expect(store.peer('peer-a')).toMatchObject({ lastSeen: 2_000, stats: { requestsServed: 3, tokensServed: 120, tokensPerSecond: 14.5 } });
  });

  it('lists peers most recently seen first, by role and by last sight', () => {
    store.peerSeen({ peerId: 'old', role: 'donor' });
    clock = 2_000;
    store.peerSeen({ peerId: 'client', role: 'client' });
    clock = 3_000;
    store.peerSeen({ peerId: 'new', role: 'donor' });
    expect(store.peers().map((p) => p.peerId)).toEqual(['new', 'client', 'old']);
    expect(store.peers({ role: 'donor' }).map((p) => p.peerId)).toEqual(['new', 'old']);
    expect(store.peers({ seenSince: 2_000 }).map((p) => p.peerId)).toEqual(['new', 'client']);
    expect(store.peer('nobody')).toBeUndefined();
  });
});

describe('assignments', () => {
  it('a new assignment of the same package ends the previous one', () => {
    const first = store.assign({ peerId: 'peer-a', packageId: 'pkg', layers: { start: 0, end: 4 } });
    expect(first).toMatchObject({ peerId: 'peer-a', packageId: 'pkg', layers: { start: 0, end: 4 }, assignedAt: 1_000, active: true, endedAt: null });
    clock = 2_000;
    store.assign({ peerId: 'peer-a', packageId: 'pkg', layers: { start: 4, end: 8 } });
    store.assign({ peerId: 'peer-b', packageId: 'pkg', layers: { start: 0, end: 4 } });
    store.assign({ peerId: 'peer-b', packageId: 'other', layers: { start: 0, end: 2 } });
    expect(store.activeAssignments('pkg').map((a) => [a.peerId, a.layers.start, a.layers.end])).toEqual([
      ['peer-b', 0, 4],
      ['peer-a', 4, 8],
    ]);
    expect(store.activeAssignments()).toHaveLength(3);
  });

  it('ending a peer ends its assignments, all or of one package, and says how many', () => {
    store.assign({ peerId: 'peer-a', packageId: 'pkg', layers: { start: 0, end: 4 } });
    store.assign({ peerId: 'peer-a', packageId: 'other', layers: { start: 0, end: 4 } });
    expect(store.endAssignments('peer-a', 'other')).toBe(1);
    expect(store.activeAssignments().map((a) => a.packageId)).toEqual(['pkg']);
    expect(store.endAssignments('peer-a')).toBe(1);
    expect(store.activeAssignments()).toEqual([]);
  });
});

describe('requests', () => {
  it('records a request from start to end with its route, tokens and outcome', () => {
    store.requestStarted({ requestId: 'r1', packageId: 'pkg', route, promptTokens: 12 });
    expect(store.request('r1')).toEqual({ requestId: 'r1', packageId: 'pkg', route, promptTokens: 12, completionTokens: 0, startedAt: 1_000, endedAt: null, status: 'running', error: null });
    clock = 4_000;
    store.requestEnded({ requestId: 'r1', completionTokens: 30, status: 'failed', error: 'StageLostError: peer-b went away' });
    expect(store.request('r1')).toMatchObject({ completionTokens: 30, endedAt: 4_000, status: 'failed', error: 'StageLostError: peer-b went away' });
  });

  it('lists the latest requests first, by package, up to a limit', () => {
    for (let i = 0; i < 5; i++) {
      clock = 1_000 + i;
      store.requestStarted({ requestId: `r${i}`, packageId: i % 2 ? 'odd' : 'even', route: [], promptTokens: 1 });
    }
    expect(store.requests({ limit: 3 }).map((r) => r.requestId)).toEqual(['r4', 'r3', 'r2']);
    expect(store.requests({ packageId: 'odd' }).map((r) => r.requestId)).toEqual(['r3', 'r1']);
  });

  it('refuses a request id twice and the end of a request never started, with a StoreError', () => {
    store.requestStarted({ requestId: 'r1', packageId: 'pkg', route, promptTokens: 1 });
    expect(() => store.requestStarted({ requestId: 'r1', packageId: 'pkg', route, promptTokens: 1 })).toThrow(expect.objectContaining({ name: 'StoreError', message: expect.stringMatching(/r1 is already recorded/) }));
    expect(() => store.requestEnded({ requestId: 'nope', completionTokens: 0, status: 'done' })).toThrow(expect.objectContaining({ name: 'StoreError' }));
  });
});

describe('the file', () => {
  it('keeps everything when reopened', () => {
    store.peerSeen({ peerId: 'peer-a', role: 'donor', device });
    store.assign({ peerId: 'peer-a', packageId: 'pkg', layers: { start: 0, end: 4 } });
    store.requestStarted({ requestId: 'r1', packageId: 'pkg', route, promptTokens: 7 });
    store.requestEnded({ requestId: 'r1', completionTokens: 9, status: 'done' });
    store.close();

    store = openGridStore(file, { now });
    expect(store.peer('peer-a')?.device).toEqual(device);
    expect(store.activeAssignments('pkg')).toHaveLength(1);
    expect(store.request('r1')).toMatchObject({ route, promptTokens: 7, completionTokens: 9, status: 'done' });
  });

  it('stamps the schema version in user_version', () => {
    store.close();
    const db = new DatabaseSync(file);
    expect((db.prepare('PRAGMA user_version').get() as { user_version: number }).user_version).toBe(STORE_SCHEMA_VERSION);
    db.close();
  });

  it('refuses a file from a newer schema instead of misreading it', () => {
    store.close();
    const db = new DatabaseSync(file);
    db.exec(`PRAGMA user_version = ${STORE_SCHEMA_VERSION + 1}`);
    db.close();
    expect(() => openGridStore(file)).toThrow(expect.objectContaining({ name: 'StoreError', source: file, message: expect.stringMatching(/newer than this infermesh knows/) }));
  });

  it('works in memory too', () => {
    const memory = openGridStore(':memory:');
    memory.peerSeen({ peerId: 'x', role: 'client' });
    expect(memory.peers()).toHaveLength(1);
    memory.close();
  });
});

describe('verdicts and refusals', () => {
  const verdict = (ok: boolean, stepCount: number) => ({
    kind: 'replay',
    peerId: 'peer-a', requestId: `r-${clock}`, packageId: 'pkg', layers: { start: 0, end: 2 }, ok, stepCount, tokens: stepCount + 7,
    checkedSteps: [0, 3], worst: { ok, margins: { matchFraction: 0.2, valueError: ok ? 0.002 : -0.01 } }, replayMs: 12.5, confirmed: !ok, evidenceHash: 'ab'.repeat(32),
  });

  it('keeps every verdict with what it rests on, latest first, across a reopen', () => {
    store.recordVerdict(verdict(true, 24));
    clock = 2_000;
    store.recordVerdict(verdict(false, 10));
    store.close();
    store = openGridStore(file, { now });
    expect(store.verdicts({ peerId: 'peer-a' })).toEqual([
      expect.objectContaining({ ok: false, confirmed: true, stepCount: 10, checkedSteps: [0, 3], judgedAt: 2_000, worst: verdict(false, 10).worst }),
      expect.objectContaining({ ok: true, confirmed: false, stepCount: 24, layers: { start: 0, end: 2 }, judgedAt: 1_000 }),
    ]);
    expect(store.verdicts({ peerId: 'peer-b' })).toEqual([]);
  });

  it('sums a peer’s verified work into its reputation, its recent work halving every day', () => {
    expect(store.reputation('peer-a')).toEqual({ verifiedSteps: 0, failedChecks: 0, noShows: 0, verifiedSinceFailure: 0, verifiedWork: 0, recentWork: 0 });
    store.recordVerdict(verdict(true, 24)); // 2 layers × 31 tokens
    store.recordVerdict(verdict(true, 6)); // 2 × 13
    store.recordVerdict(verdict(false, 10));
    expect(store.reputation('peer-a')).toEqual({ verifiedSteps: 30, failedChecks: 1, noShows: 0, verifiedSinceFailure: 0, verifiedWork: 88, recentWork: 88 });
    clock += REPUTATION_HALF_LIFE_MS;
    store.recordVerdict(verdict(true, 4)); // 2 × 11, judged a day later
    expect(store.reputation('peer-a')).toEqual({ verifiedSteps: 34, failedChecks: 1, noShows: 0, verifiedSinceFailure: 4, verifiedWork: 110, recentWork: 88 / 2 + 22 });
    // A request served and not answered for counts against it.
    store.recordNoShow({ peerId: 'peer-a', requestId: 'r-x', kind: 'commitment' });
    expect(store.reputation('peer-a').noShows).toBe(1);
    expect(store.noShows('peer-a', Date.now() + 86_400_000 * 10)).toBe(0);
  });

  it('records refusals with their reason', () => {
    store.recordRefusal({ peerId: 'peer-a', requestId: 'r1', name: 'RevealLateError', message: 'the reveal came 500 ms after the answer window closed' });
    store.recordRefusal({ peerId: 'peer-a', requestId: null, name: 'CommitmentSignatureError', message: 'not signed by peer-a' });
    expect(store.refusals().map((r) => r.name)).toEqual(['CommitmentSignatureError', 'RevealLateError']);
  });

  it('keeps a window of the newest refusals, their peer-given strings clipped: any peer can cause them by the thousand', async () => {
    const small = openGridStore(join(await tempDir(), 'small.sqlite'), { maxRefusals: 3 });
    try {
      for (let i = 0; i < 5; i++) small.recordRefusal({ peerId: `peer-${i}`, requestId: 'x'.repeat(5000), name: 'CommitmentRefusedError', message: 'y'.repeat(5000) });
      const kept = small.refusals();
      expect(kept.map((r) => r.peerId)).toEqual(['peer-4', 'peer-3', 'peer-2']);
      expect(kept[0].requestId).toHaveLength(129);
      expect(kept[0].message).toHaveLength(501);
    } finally {
      small.close();
    }
  });

  it('keeps the replays the validator owes, bytes intact, until each is removed', () => {
    const reveal = Uint8Array.from({ length: 70_000 }, (_, i) => (i * 31) & 0xff);
    const a = store.addPendingReplay({ peerId: 'peer-a', commitment: Uint8Array.of(1, 2, 3), reveal, challenged: [0, 4, 7] });
    const b = store.addPendingReplay({ peerId: 'peer-b', commitment: Uint8Array.of(9), reveal: Uint8Array.of(5), challenged: [2] });
    expect(store.pendingReplays()).toEqual([
      { id: a, peerId: 'peer-a', commitment: Uint8Array.of(1, 2, 3), reveal, challenged: [0, 4, 7] },
      { id: b, peerId: 'peer-b', commitment: Uint8Array.of(9), reveal: Uint8Array.of(5), challenged: [2] },
    ]);
    store.removePendingReplay(a);
    expect(store.pendingReplays().map((r) => r.id)).toEqual([b]);
    store.removePendingReplay(b);
  });

  it('brings a file of schema version 1 up to date, keeping its rows', () => {
    store.close();
    const db = new DatabaseSync(file);
    db.exec('DROP TABLE verdicts; DROP TABLE refusals; DROP TABLE pending_replays; DROP TABLE bans; DROP TABLE no_shows; PRAGMA user_version = 1');
    db.prepare("INSERT INTO peers (peer_id, role, first_seen, last_seen) VALUES ('old', 'donor', 1, 1)").run();
    db.close();
    store = openGridStore(file, { now });
    expect(store.peer('old')).toMatchObject({ peerId: 'old' });
    store.recordVerdict(verdict(true, 1));
    expect(store.reputation('peer-a').verifiedSteps).toBe(1);
  });
});
