/**
 * The signaling server's memory across restarts, in one SQLite file (node:sqlite): the peers it
 * has seen (role, device, running stats), the layer assignments it handed out, and the requests
 * routed through the grid with their token counts and outcome. The coordinator writes it; the
 * REST API and dashboards read it. Timestamps are milliseconds since the epoch.
 * Migrations as sqlite.ts runs them.
 */
import { InfermeshError } from '../shared/errors.ts';
import { openSqlite } from './sqlite.ts';
import type { DeviceSummary, RouteHop, ServingStats } from '../shared/grid/protocol.ts';
import type { LayerRange } from '../shared/runtime/stage.ts';

/** A store file that cannot be opened or used: unreadable, from a newer version, an unknown request. */
export class StoreError extends InfermeshError {
  override name = 'StoreError';
}

export type PeerRole = 'donor' | 'client';

export interface PeerRecord {
  peerId: string;
  role: PeerRole;
  device: DeviceSummary | null;
  firstSeen: number;
  lastSeen: number;
  stats: ServingStats | null;
}

export interface AssignmentRecord {
  id: number;
  peerId: string;
  packageId: string;
  layers: LayerRange;
  assignedAt: number;
  active: boolean;
  endedAt: number | null;
}

export type RequestStatus = 'running' | 'done' | 'failed' | 'aborted';

export interface RequestRecord {
  requestId: string;
  packageId: string;
  route: RouteHop[];
  promptTokens: number;
  completionTokens: number;
  startedAt: number;
  endedAt: number | null;
  status: RequestStatus;
  error: string | null;
}

export interface VerdictRecord {
  id: number;
  /** what it rests on: 'replay', or a conviction on signatures ('unsealed-input', 'equivocation') */
  kind: string;
  peerId: string;
  requestId: string;
  packageId: string;
  layers: LayerRange;
  ok: boolean;
  stepCount: number;
  tokens: number;
  checkedSteps: number[];
  /** the worst comparison (fingerprint.ts FingerprintVerdict); null for a conviction */
  worst?: unknown;
  /** why a conviction convicts (null for replay verdicts) */
  reason: string | null;
  replayMs: number;
  confirmed: boolean;
  evidenceHash: string;
  judgedAt: number;
}

export interface RefusalRecord {
  id: number;
  peerId: string;
  requestId: string | null;
  name: string;
  message: string;
  refusedAt: number;
}

export interface GridStore {
  /** the file, or ':memory:' */
  readonly path: string;
  /** Records a hello (or any sign of life): first time inserts, later updates role, device and last seen. */
  peerSeen(peer: { peerId: string; role: PeerRole; device?: DeviceSummary }): PeerRecord;
  /** Stores a peer's latest serving totals and counts as a sign of life. */
  recordStats(peerId: string, stats: ServingStats): void;
  peer(peerId: string): PeerRecord | undefined;
  /** Most recently seen first. */
  peers(filter?: { role?: PeerRole; seenSince?: number }): PeerRecord[];
  /** A new active assignment; the peer's earlier active one for the same package ends (a peer serves one range of a model). */
  assign(assignment: { peerId: string; packageId: string; layers: LayerRange }): AssignmentRecord;
  /** Ends a peer's active assignments (of one package, or all when it left); returns how many ended. */
  endAssignments(peerId: string, packageId?: string): number;
  /** Active assignments, of one package or all, by package and first layer. */
  activeAssignments(packageId?: string): AssignmentRecord[];
  requestStarted(request: { requestId: string; packageId: string; route: RouteHop[]; promptTokens: number }): void;
  requestEnded(result: { requestId: string; completionTokens: number; status: Exclude<RequestStatus, 'running'>; error?: string }): void;
  request(requestId: string): RequestRecord | undefined;
  /** The validator's finding on one stage's part of one request. */
  recordVerdict(verdict: Omit<VerdictRecord, 'id' | 'judgedAt' | 'reason'> & { reason?: string | null }): VerdictRecord;
  /** A commitment or reveal the validator refused, and why. */
  recordRefusal(refusal: Omit<RefusalRecord, 'id' | 'refusedAt'>): void;
  /** Latest first; default limit 100. */
  verdicts(filter?: { peerId?: string; limit?: number }): VerdictRecord[];
  refusals(filter?: { peerId?: string; limit?: number }): RefusalRecord[];
  /** A peer's standing from all its verdicts: the validator's sampling input, and what the ledger shows. */
  reputation(peerId: string): PeerReputation;
  /** A stage that stayed connected did not commit to a request it served, or did not reveal what was challenged. */
  recordNoShow(noShow: { peerId: string; requestId: string; kind: 'commitment' | 'reveal' }): void;
  /** A stage's no-shows since `at` (ms since the epoch; all of them by default). */
  noShows(peerId: string, since?: number): number;
  /** Bans the coordinator made (a peer id, or device:<signature>), kept across restarts (coordinator/registry.ts BanList). */
  readonly bans: { all(): [string, string][]; add(key: string, reason: string): void };
  /** The validator's backlog (signaling-server/trust/validator.ts ReplayBacklog). */
  addPendingReplay(replay: PendingReplay): number;
  removePendingReplay(id: number): void;
  pendingReplays(): (PendingReplay & { id: number })[];
  /** Latest started first; default limit 100. */
  requests(filter?: { packageId?: string; limit?: number }): RequestRecord[];
  close(): void;
}

/** A replay the validator owes: the signed commitment, the REVEAL message as received, the steps drawn. */
export interface PendingReplay {
  peerId: string;
  commitment: Uint8Array;
  reveal: Uint8Array;
  challenged: number[];
}

export interface PeerReputation {
  /** steps of requests judged honest */
  verifiedSteps: number;
  /** failed verdicts */
  failedChecks: number;
  /** requests it served and then did not answer for while connected (no commitment, or no reveal) */
  noShows: number;
  /** verified steps judged after the last failed verdict (all of them when none failed) */
  verifiedSinceFailure: number;
  /** verified work (layers × tokens) over all verdicts */
  verifiedWork: number;
  /**
   * Verified work smoothed over time: each verdict's layers × tokens, halved every
   * REPUTATION_HALF_LIFE_MS since it was given. What a peer has done lately, not ever.
   */
  recentWork: number;
}

/** A day: yesterday's verified work counts half in a peer's recent work. */
export const REPUTATION_HALF_LIFE_MS = 24 * 3600_000;
/**
 * Refusals kept, the newest: they explain a peer's page, and any peer can cause them by the
 * thousand, so the table is a window, not a history (50k rows of at most ~1 KB).
 */
export const MAX_REFUSALS = 50_000;
/** A refusal's message is for people; a peer's own strings in it (ids, fields) are clipped. */
const MAX_REFUSAL_CHARS = 500;

export interface GridStoreDeps {
  /** milliseconds since the epoch */
  now?: () => number;
  /** refusals kept; default MAX_REFUSALS */
  maxRefusals?: number;
}

/** Migration i (1-based) brings user_version from i - 1 to i. Append only; never edit a shipped one. */
const MIGRATIONS: readonly string[] = [
  `CREATE TABLE peers (
     peer_id     TEXT PRIMARY KEY,
     role        TEXT NOT NULL CHECK (role IN ('donor', 'client')),
     device      TEXT,
     first_seen  INTEGER NOT NULL,
     last_seen   INTEGER NOT NULL,
     stats       TEXT
   );
   CREATE INDEX peers_last_seen ON peers (last_seen);
   CREATE TABLE assignments (
     id           INTEGER PRIMARY KEY AUTOINCREMENT,
     peer_id      TEXT NOT NULL,
     package_id   TEXT NOT NULL,
     layer_start  INTEGER NOT NULL,
     layer_end    INTEGER NOT NULL,
     assigned_at  INTEGER NOT NULL,
     active       INTEGER NOT NULL DEFAULT 1,
     ended_at     INTEGER
   );
   CREATE INDEX assignments_active ON assignments (active, package_id, layer_start);
   CREATE INDEX assignments_peer ON assignments (peer_id, active);
   CREATE TABLE requests (
     request_id         TEXT PRIMARY KEY,
     package_id         TEXT NOT NULL,
     route              TEXT NOT NULL,
     prompt_tokens      INTEGER NOT NULL,
     completion_tokens  INTEGER NOT NULL DEFAULT 0,
     started_at         INTEGER NOT NULL,
     ended_at           INTEGER,
     status             TEXT NOT NULL CHECK (status IN ('running', 'done', 'failed', 'aborted')),
     error              TEXT
   );
   CREATE INDEX requests_started ON requests (started_at);`,
  `CREATE TABLE verdicts (
     id             INTEGER PRIMARY KEY AUTOINCREMENT,
     peer_id        TEXT NOT NULL,
     request_id     TEXT NOT NULL,
     package_id     TEXT NOT NULL,
     layer_start    INTEGER NOT NULL,
     layer_end      INTEGER NOT NULL,
     ok             INTEGER NOT NULL,
     step_count     INTEGER NOT NULL,
     tokens         INTEGER NOT NULL,
     checked_steps  TEXT NOT NULL,
     worst          TEXT NOT NULL,
     replay_ms      REAL NOT NULL,
     confirmed      INTEGER NOT NULL,
     evidence_hash  TEXT NOT NULL,
     judged_at      INTEGER NOT NULL
   );
   CREATE INDEX verdicts_peer ON verdicts (peer_id, judged_at);
   CREATE TABLE refusals (
     id          INTEGER PRIMARY KEY AUTOINCREMENT,
     peer_id     TEXT NOT NULL,
     request_id  TEXT,
     name        TEXT NOT NULL,
     message     TEXT NOT NULL,
     refused_at  INTEGER NOT NULL
   );
   CREATE INDEX refusals_peer ON refusals (peer_id, refused_at);`,
  // 3: replays the validator owes (reveal accepted, verdict not given yet), so a restart gives them.
  `CREATE TABLE pending_replays (
     id           INTEGER PRIMARY KEY AUTOINCREMENT,
     peer_id      TEXT NOT NULL,
     commitment   BLOB NOT NULL,
     reveal       BLOB NOT NULL,
     challenged   TEXT NOT NULL,
     received_at  INTEGER NOT NULL
   );`,
  // 4: verdicts that convict on a stage's own signatures (hand-off seals) beside replay verdicts.
  `ALTER TABLE verdicts ADD COLUMN kind TEXT NOT NULL DEFAULT 'replay';
   ALTER TABLE verdicts ADD COLUMN reason TEXT;`,
  // 5: bans (a peer id, or device:<signature>) outlive a restart.
  `CREATE TABLE bans (
     key        TEXT PRIMARY KEY,
     reason     TEXT NOT NULL,
     banned_at  INTEGER NOT NULL
   );`,
  // 6: stages that stayed connected and did not answer for a request (trust/no-shows.ts).
  `CREATE TABLE no_shows (
     id          INTEGER PRIMARY KEY AUTOINCREMENT,
     peer_id     TEXT NOT NULL,
     request_id  TEXT NOT NULL,
     kind        TEXT NOT NULL CHECK (kind IN ('commitment', 'reveal')),
     at          INTEGER NOT NULL
   );
   CREATE INDEX no_shows_peer ON no_shows (peer_id, at);`,
];

export const STORE_SCHEMA_VERSION = MIGRATIONS.length;

export function openGridStore(path: string, deps: GridStoreDeps = {}): GridStore {
  const now = deps.now ?? Date.now;
  const maxRefusals = deps.maxRefusals ?? MAX_REFUSALS;
  const { db, transaction } = openSqlite({ path, migrations: MIGRATIONS, what: 'the store', error: StoreError });

  const q = {
    bans: db.prepare('SELECT key, reason FROM bans ORDER BY rowid'),
    insertNoShow: db.prepare('INSERT INTO no_shows (peer_id, request_id, kind, at) VALUES (?, ?, ?, ?)'),
    noShows: db.prepare('SELECT COUNT(*) AS n FROM no_shows WHERE peer_id = ? AND at >= ?'),
    addBan: db.prepare('INSERT INTO bans (key, reason, banned_at) VALUES (?, ?, ?) ON CONFLICT (key) DO NOTHING'),
    addPendingReplay: db.prepare('INSERT INTO pending_replays (peer_id, commitment, reveal, challenged, received_at) VALUES (?, ?, ?, ?, ?)'),
    removePendingReplay: db.prepare('DELETE FROM pending_replays WHERE id = ?'),
    pendingReplays: db.prepare('SELECT * FROM pending_replays ORDER BY id'),
    upsertPeer: db.prepare(
      `INSERT INTO peers (peer_id, role, device, first_seen, last_seen) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (peer_id) DO UPDATE SET role = excluded.role, device = COALESCE(excluded.device, peers.device), last_seen = excluded.last_seen`,
    ),
    peerStats: db.prepare('UPDATE peers SET stats = ?, last_seen = ? WHERE peer_id = ?'),
    peer: db.prepare('SELECT * FROM peers WHERE peer_id = ?'),
    peers: db.prepare('SELECT * FROM peers WHERE (?1 IS NULL OR role = ?1) AND last_seen >= ?2 ORDER BY last_seen DESC, peer_id'),
    endPeerPackage: db.prepare('UPDATE assignments SET active = 0, ended_at = ? WHERE peer_id = ? AND package_id = ? AND active = 1'),
    endPeer: db.prepare('UPDATE assignments SET active = 0, ended_at = ? WHERE peer_id = ? AND active = 1'),
    insertAssignment: db.prepare('INSERT INTO assignments (peer_id, package_id, layer_start, layer_end, assigned_at) VALUES (?, ?, ?, ?, ?)'),
    assignment: db.prepare('SELECT * FROM assignments WHERE id = ?'),
    active: db.prepare('SELECT * FROM assignments WHERE active = 1 AND (?1 IS NULL OR package_id = ?1) ORDER BY package_id, layer_start, id'),
    insertRequest: db.prepare(`INSERT INTO requests (request_id, package_id, route, prompt_tokens, started_at, status) VALUES (?, ?, ?, ?, ?, 'running')`),
    endRequest: db.prepare('UPDATE requests SET completion_tokens = ?, ended_at = ?, status = ?, error = ? WHERE request_id = ?'),
    request: db.prepare('SELECT * FROM requests WHERE request_id = ?'),
    requests: db.prepare('SELECT * FROM requests WHERE (?1 IS NULL OR package_id = ?1) ORDER BY started_at DESC, rowid DESC LIMIT ?2'),
    insertVerdict: db.prepare(
      `INSERT INTO verdicts (kind, peer_id, request_id, package_id, layer_start, layer_end, ok, step_count, tokens, checked_steps, worst, replay_ms, confirmed, evidence_hash, judged_at, reason)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ),
    verdict: db.prepare('SELECT * FROM verdicts WHERE id = ?'),
    verdicts: db.prepare('SELECT * FROM verdicts WHERE (?1 IS NULL OR peer_id = ?1) ORDER BY judged_at DESC, id DESC LIMIT ?2'),
    insertRefusal: db.prepare('INSERT INTO refusals (peer_id, request_id, name, message, refused_at) VALUES (?, ?, ?, ?, ?)'),
    trimRefusals: db.prepare('DELETE FROM refusals WHERE id <= ?'),
    refusals: db.prepare('SELECT * FROM refusals WHERE (?1 IS NULL OR peer_id = ?1) ORDER BY refused_at DESC, id DESC LIMIT ?2'),
    // One pass in SQLite over the peer's verdicts: ?1 peer, ?2 now, ?3 half-life (ms).
    reputation: db.prepare(
      `SELECT COALESCE(SUM(CASE WHEN ok = 1 THEN step_count END), 0) AS verified,
              COALESCE(SUM(CASE WHEN ok = 0 THEN 1 END), 0) AS failed,
              COALESCE(SUM(CASE WHEN ok = 1 AND id > COALESCE((SELECT MAX(id) FROM verdicts WHERE peer_id = ?1 AND ok = 0), 0) THEN step_count END), 0) AS since_failure,
              COALESCE(SUM(CASE WHEN ok = 1 THEN (layer_end - layer_start) * tokens END), 0) AS work,
              COALESCE(SUM(CASE WHEN ok = 1 THEN (layer_end - layer_start) * tokens * pow(0.5, MAX(0, ?2 - judged_at) * 1.0 / ?3) END), 0) AS recent
       FROM verdicts WHERE peer_id = ?1`,
    ),
  };

  const peer = (peerId: string) => {
    const row = q.peer.get(peerId);
    return row ? peerOf(row) : undefined;
  };

  return {
    path,
    peerSeen({ peerId, role, device }) {
      const at = now();
      q.upsertPeer.run(peerId, role, device ? JSON.stringify(device) : null, at, at);
      return peer(peerId)!;
    },
    recordStats(peerId, stats) {
      q.peerStats.run(JSON.stringify(stats), now(), peerId);
    },
    peer,
    peers(filter = {}) {
      return q.peers.all(filter.role ?? null, filter.seenSince ?? 0).map(peerOf);
    },
    assign({ peerId, packageId, layers }) {
      return transaction(() => {
        const at = now();
        q.endPeerPackage.run(at, peerId, packageId);
        const { lastInsertRowid } = q.insertAssignment.run(peerId, packageId, layers.start, layers.end, at);
        return assignmentOf(q.assignment.get(lastInsertRowid)!);
      });
    },
    endAssignments(peerId, packageId) {
      const result = packageId === undefined ? q.endPeer.run(now(), peerId) : q.endPeerPackage.run(now(), peerId, packageId);
      return Number(result.changes);
    },
    activeAssignments(packageId) {
      return q.active.all(packageId ?? null).map(assignmentOf);
    },
    requestStarted({ requestId, packageId, route, promptTokens }) {
      try {
        q.insertRequest.run(requestId, packageId, JSON.stringify(route), promptTokens, now());
      } catch (err) {
        const duplicate = /UNIQUE/.test((err as Error).message);
        throw new StoreError(duplicate ? `request ${requestId} is already recorded` : `cannot record request ${requestId}: ${(err as Error).message}`, { source: path, cause: err });
      }
    },
    requestEnded({ requestId, completionTokens, status, error }) {
      const { changes } = q.endRequest.run(completionTokens, now(), status, error ?? null, requestId);
      if (Number(changes) === 0) throw new StoreError(`no request ${requestId} was recorded as started`, { source: path });
    },
    request(requestId) {
      const row = q.request.get(requestId);
      return row ? requestOf(row) : undefined;
    },
    requests(filter = {}) {
      return q.requests.all(filter.packageId ?? null, filter.limit ?? 100).map(requestOf);
    },
    recordVerdict(v) {
      const at = now();
      const { lastInsertRowid } = q.insertVerdict.run(
        v.kind, v.peerId, v.requestId, v.packageId, v.layers.start, v.layers.end, v.ok ? 1 : 0, v.stepCount, v.tokens,
        JSON.stringify(v.checkedSteps), JSON.stringify(v.worst ?? null), v.replayMs, v.confirmed ? 1 : 0, v.evidenceHash, at, v.reason ?? null,
      );
      return verdictOf(q.verdict.get(lastInsertRowid)!);
    },
    recordRefusal(r) {
      const clip = (text: string, n: number) => (text.length > n ? `${text.slice(0, n)}…` : text);
      const { lastInsertRowid } = q.insertRefusal.run(clip(r.peerId, 128), r.requestId === null ? null : clip(r.requestId, 128), clip(r.name, 64), clip(r.message, MAX_REFUSAL_CHARS), now());
      q.trimRefusals.run(Number(lastInsertRowid) - maxRefusals);
    },
    addPendingReplay(r) {
      return Number(q.addPendingReplay.run(r.peerId, r.commitment, r.reveal, JSON.stringify(r.challenged), now()).lastInsertRowid);
    },
    removePendingReplay(id) {
      q.removePendingReplay.run(id);
    },
    pendingReplays() {
      return (q.pendingReplays.all() as { id: number; peer_id: string; commitment: Uint8Array; reveal: Uint8Array; challenged: string }[]).map((r) => ({
        id: Number(r.id),
        peerId: r.peer_id,
        commitment: new Uint8Array(r.commitment),
        reveal: new Uint8Array(r.reveal),
        challenged: JSON.parse(r.challenged) as number[],
      }));
    },
    verdicts(filter = {}) {
      return q.verdicts.all(filter.peerId ?? null, filter.limit ?? 100).map(verdictOf);
    },
    refusals(filter = {}) {
      return q.refusals.all(filter.peerId ?? null, filter.limit ?? 100).map(refusalOf);
    },
    recordNoShow(n) {
      q.insertNoShow.run(n.peerId, n.requestId, n.kind, now());
    },
    noShows: (peerId, since = 0) => Number((q.noShows.get(peerId, since) as { n: number }).n),
    bans: {
      all: () => (q.bans.all() as { key: string; reason: string }[]).map((r) => [r.key, r.reason] as [string, string]),
      add: (key, reason) => void q.addBan.run(key, reason, now()),
    },
    reputation(peerId) {
      const row = q.reputation.get(peerId, now(), REPUTATION_HALF_LIFE_MS) as Record<'verified' | 'failed' | 'since_failure' | 'work' | 'recent', number>;
      return {
        verifiedSteps: Number(row.verified),
        failedChecks: Number(row.failed),
        noShows: Number((q.noShows.get(peerId, 0) as { n: number }).n),
        verifiedSinceFailure: Number(row.since_failure),
        verifiedWork: Number(row.work),
        recentWork: Number(row.recent),
      };
    },
    close() {
      if (db.isOpen) db.close();
    },
  };
}

type Row = Record<string, unknown>;

const json = <T>(value: unknown): T | null => (typeof value === 'string' ? (JSON.parse(value) as T) : null);

function peerOf(r: Row): PeerRecord {
  return {
    peerId: r.peer_id as string,
    role: r.role as PeerRole,
    device: json<DeviceSummary>(r.device),
    firstSeen: Number(r.first_seen),
    lastSeen: Number(r.last_seen),
    stats: json<ServingStats>(r.stats),
  };
}

function assignmentOf(r: Row): AssignmentRecord {
  return {
    id: Number(r.id),
    peerId: r.peer_id as string,
    packageId: r.package_id as string,
    layers: { start: Number(r.layer_start), end: Number(r.layer_end) },
    assignedAt: Number(r.assigned_at),
    active: r.active === 1,
    endedAt: r.ended_at === null ? null : Number(r.ended_at),
  };
}

function requestOf(r: Row): RequestRecord {
  return {
    requestId: r.request_id as string,
    packageId: r.package_id as string,
    route: json<RouteHop[]>(r.route) ?? [],
    promptTokens: Number(r.prompt_tokens),
    completionTokens: Number(r.completion_tokens),
    startedAt: Number(r.started_at),
    endedAt: r.ended_at === null ? null : Number(r.ended_at),
    status: r.status as RequestStatus,
    error: (r.error as string | null) ?? null,
  };
}

function verdictOf(r: Row): VerdictRecord {
  return {
    id: Number(r.id),
    kind: r.kind as string,
    peerId: r.peer_id as string,
    requestId: r.request_id as string,
    packageId: r.package_id as string,
    layers: { start: Number(r.layer_start), end: Number(r.layer_end) },
    ok: r.ok === 1,
    stepCount: Number(r.step_count),
    tokens: Number(r.tokens),
    checkedSteps: json<number[]>(r.checked_steps) ?? [],
    worst: json<unknown>(r.worst),
    reason: (r.reason as string | null) ?? null,
    replayMs: Number(r.replay_ms),
    confirmed: r.confirmed === 1,
    evidenceHash: r.evidence_hash as string,
    judgedAt: Number(r.judged_at),
  };
}

function refusalOf(r: Row): RefusalRecord {
  return {
    id: Number(r.id),
    peerId: r.peer_id as string,
    requestId: (r.request_id as string | null) ?? null,
    name: r.name as string,
    message: r.message as string,
    refusedAt: Number(r.refused_at),
  };
}
