/**
 * Campaigns and their runs, in campaigns.sqlite in the server's data folder, so a campaign and
 * every result it has gathered survive a restart. A run is stored once: the same signature
 * again is a replay, and another result for a run already stored (same campaign, tab, provider,
 * workload and repetition) a duplicate; both are refused by name. Refused submissions are kept
 * too (the newest MAX_REFUSALS_KEPT of a campaign, all of them counted), so the dashboard can
 * show who was refused and why, and so are the tabs' own reports
 * (joined, skipped, failed, finished, left: shared/campaign/tab-report.ts), once each per tab,
 * event, provider and workload.
 */
import { randomBytes } from 'node:crypto';
import { InfermeshError } from '../../shared/errors.ts';
import type { CampaignSpec } from '../../shared/campaign/spec.ts';
import type { CampaignResult } from '../../shared/campaign/result.ts';
import type { CampaignTabReport } from '../../shared/campaign/tab-report.ts';
import { openSqlite } from '../sqlite.ts';

/** The campaigns file cannot be opened or used. */
export class CampaignStoreError extends InfermeshError {
  override name = 'CampaignStoreError';
}

/** A result whose signature was already stored: the same submission sent again. */
export class ReplayedResultError extends InfermeshError {
  override name = 'ReplayedResultError';
}

/** Another result for a run already stored (same tab, provider, workload and repetition). */
export class DuplicateResultError extends InfermeshError {
  override name = 'DuplicateResultError';
}

export interface Campaign {
  /** e.g. cmp_5e1f0a9c3b2d4e6f */
  id: string;
  spec: CampaignSpec;
  createdAt: number;
  stoppedAt?: number;
}

/** Another report of the same event, provider and workload from the same tab (or the same one again). */
export class DuplicateReportError extends InfermeshError {
  override name = 'DuplicateReportError';
}

/** A stored run: the tab's result, whether its output was checked correct, and when it came. */
export interface StoredRun extends CampaignResult {
  /** true: its fingerprint matched the reference; false: it did not; null: not checked */
  correct: boolean | null;
  /** the matmul GFLOP/s the grid measured the tab's device at on its provider (its handshake), when it did */
  deviceGflops: number | null;
  receivedAt: number;
}

/** A tab's report as stored, with when the server received it. */
export interface StoredTabReport extends CampaignTabReport {
  receivedAt: number;
}

/** A campaign keeps its newest refusals, this many: anyone can post a malformed result, and each would be a row. */
export const MAX_REFUSALS_KEPT = 1000;

export interface Refusal {
  /** the peer the submission said it was from */
  peerId: string;
  /** whether that peer's signature was checked: false for a malformed or forged submission, which anyone can send in any tab's name */
  verified: boolean;
  /** the error's name, e.g. DuplicateResultError */
  reason: string;
  message: string;
  receivedAt: number;
}

export interface CampaignStore {
  readonly path: string;
  create(spec: CampaignSpec, now?: number): Campaign;
  list(): Campaign[];
  get(id: string): Campaign | undefined;
  /** Marks it stopped (once: a second stop keeps the first time); false for an unknown id. */
  stop(id: string, now?: number): boolean;
  /** Stores a verified run, or throws ReplayedResultError / DuplicateResultError. */
  addRun(run: CampaignResult, stored: { signature: string; correct: boolean | null; deviceGflops?: number }, now?: number): StoredRun;
  runs(id: string): StoredRun[];
  /** How many runs, devices (by signature) and refusals (every one, kept or not) it has, counted where they are kept. */
  counts(id: string): { runs: number; devices: number; refused: number };
  /** Records whether a stored run's output was checked correct (campaign-check.ts). */
  setCorrect(run: CampaignResult, correct: boolean): void;
  refuse(id: string, refusal: Refusal): void;
  refusals(id: string): Refusal[];
  /** Stores a verified tab report, or throws DuplicateReportError. */
  addReport(report: CampaignTabReport, signature: string, now?: number): StoredTabReport;
  reports(id: string): StoredTabReport[];
  /** Whether the tab reported this event for the campaign. */
  hasReport(id: string, peerId: string, event: CampaignTabReport['event']): boolean;
  close(): void;
}

export const CAMPAIGN_MIGRATIONS = [
  `CREATE TABLE campaigns (
     id TEXT PRIMARY KEY,
     spec TEXT NOT NULL,
     created_at INTEGER NOT NULL,
     stopped_at INTEGER
   );
   CREATE TABLE runs (
     campaign_id TEXT NOT NULL REFERENCES campaigns(id),
     peer_id TEXT NOT NULL,
     device_signature TEXT NOT NULL,
     provider TEXT NOT NULL,
     adapter TEXT NOT NULL,
     workload TEXT NOT NULL,
     repetition INTEGER NOT NULL,
     layers_start INTEGER NOT NULL,
     layers_end INTEGER NOT NULL,
     prompt_ms REAL NOT NULL,
     decode_ms REAL NOT NULL,
     tokens_per_second REAL NOT NULL,
     ms_per_layer REAL NOT NULL,
     fingerprint TEXT NOT NULL,
     finished_at INTEGER NOT NULL,
     correct INTEGER,
     received_at INTEGER NOT NULL,
     signature TEXT NOT NULL UNIQUE,
     UNIQUE (campaign_id, peer_id, provider, workload, repetition)
   );
   CREATE TABLE refusals (
     campaign_id TEXT NOT NULL,
     peer_id TEXT NOT NULL,
     reason TEXT NOT NULL,
     message TEXT NOT NULL,
     received_at INTEGER NOT NULL
   );
   CREATE INDEX refusals_by_campaign ON refusals (campaign_id, received_at);`,
  `ALTER TABLE runs ADD COLUMN device_gflops REAL;
   CREATE TABLE tab_reports (
     campaign_id TEXT NOT NULL REFERENCES campaigns(id),
     peer_id TEXT NOT NULL,
     device_signature TEXT NOT NULL,
     adapter TEXT NOT NULL,
     tab_provider TEXT NOT NULL,
     event TEXT NOT NULL,
     provider TEXT NOT NULL,
     workload TEXT NOT NULL,
     planned INTEGER NOT NULL,
     reason TEXT NOT NULL,
     at INTEGER NOT NULL,
     received_at INTEGER NOT NULL,
     signature TEXT NOT NULL UNIQUE,
     UNIQUE (campaign_id, peer_id, event, provider, workload)
   );`,
  `ALTER TABLE refusals ADD COLUMN verified INTEGER NOT NULL DEFAULT 1;
   UPDATE refusals SET verified = 0 WHERE reason IN ('CampaignResultFormatError', 'CampaignResultSignatureError');
   ALTER TABLE campaigns ADD COLUMN refused INTEGER NOT NULL DEFAULT 0;
   UPDATE campaigns SET refused = (SELECT COUNT(*) FROM refusals WHERE campaign_id = campaigns.id);`,
];

interface RunRow {
  campaign_id: string;
  peer_id: string;
  device_signature: string;
  provider: string;
  adapter: string;
  workload: string;
  repetition: number;
  layers_start: number;
  layers_end: number;
  prompt_ms: number;
  decode_ms: number;
  tokens_per_second: number;
  ms_per_layer: number;
  fingerprint: string;
  finished_at: number;
  correct: number | null;
  device_gflops: number | null;
  received_at: number;
}

interface ReportRow {
  campaign_id: string;
  peer_id: string;
  device_signature: string;
  adapter: string;
  tab_provider: string;
  event: string;
  provider: string;
  workload: string;
  planned: number;
  reason: string;
  at: number;
  received_at: number;
}

const campaignOf = (row: { id: string; spec: string; created_at: number; stopped_at: number | null }): Campaign => ({
  id: row.id,
  spec: JSON.parse(row.spec) as CampaignSpec,
  createdAt: row.created_at,
  ...(row.stopped_at !== null && { stoppedAt: row.stopped_at }),
});

const runOf = (r: RunRow): StoredRun => ({
  campaignId: r.campaign_id,
  peerId: r.peer_id,
  deviceSignature: r.device_signature,
  provider: r.provider as StoredRun['provider'],
  adapter: r.adapter,
  workload: r.workload,
  repetition: r.repetition,
  layers: { start: r.layers_start, end: r.layers_end },
  promptMs: r.prompt_ms,
  decodeMs: r.decode_ms,
  tokensPerSecond: r.tokens_per_second,
  msPerLayer: r.ms_per_layer,
  fingerprint: r.fingerprint,
  finishedAt: r.finished_at,
  correct: r.correct === null ? null : r.correct === 1,
  deviceGflops: r.device_gflops,
  receivedAt: r.received_at,
});

const reportOf = (r: ReportRow): StoredTabReport => ({
  campaignId: r.campaign_id,
  peerId: r.peer_id,
  deviceSignature: r.device_signature,
  adapter: r.adapter,
  tabProvider: r.tab_provider as StoredTabReport['tabProvider'],
  event: r.event as StoredTabReport['event'],
  provider: r.provider as StoredTabReport['provider'],
  workload: r.workload,
  planned: r.planned,
  reason: r.reason,
  at: r.at,
  receivedAt: r.received_at,
});

export function openCampaignStore(path: string): CampaignStore {
  const { db, transaction } = openSqlite({ path, migrations: CAMPAIGN_MIGRATIONS, what: 'the campaigns file', error: CampaignStoreError });
  const insertRun = db.prepare(
    `INSERT INTO runs (campaign_id, peer_id, device_signature, provider, adapter, workload, repetition, layers_start, layers_end, prompt_ms, decode_ms, tokens_per_second, ms_per_layer, fingerprint, finished_at, correct, device_gflops, received_at, signature)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  return {
    path,
    create(spec, now = Date.now()) {
      const id = `cmp_${randomBytes(8).toString('hex')}`;
      db.prepare('INSERT INTO campaigns (id, spec, created_at) VALUES (?, ?, ?)').run(id, JSON.stringify(spec), now);
      return { id, spec, createdAt: now };
    },
    list: () => (db.prepare('SELECT * FROM campaigns ORDER BY created_at, id').all() as Parameters<typeof campaignOf>[0][]).map(campaignOf),
    get(id) {
      const row = db.prepare('SELECT * FROM campaigns WHERE id = ?').get(id) as Parameters<typeof campaignOf>[0] | undefined;
      return row && campaignOf(row);
    },
    stop(id, now = Date.now()) {
      const changed = db.prepare('UPDATE campaigns SET stopped_at = COALESCE(stopped_at, ?) WHERE id = ?').run(now, id).changes;
      return Number(changed) > 0;
    },
    addRun(run, { signature, correct, deviceGflops = null }, now = Date.now()) {
      return transaction(() => {
        if (db.prepare('SELECT 1 FROM runs WHERE signature = ?').get(signature)) {
          throw new ReplayedResultError(`this result (${run.workload} repetition ${run.repetition} on ${run.provider}) was already received: a replay`);
        }
        const slot = [run.campaignId, run.peerId, run.provider, run.workload, run.repetition] as const;
        if (db.prepare('SELECT 1 FROM runs WHERE campaign_id = ? AND peer_id = ? AND provider = ? AND workload = ? AND repetition = ?').get(...slot)) {
          throw new DuplicateResultError(`${run.peerId} already reported ${run.workload} repetition ${run.repetition} on ${run.provider}`);
        }
        insertRun.run(run.campaignId, run.peerId, run.deviceSignature, run.provider, run.adapter, run.workload, run.repetition, run.layers.start, run.layers.end, run.promptMs, run.decodeMs, run.tokensPerSecond, run.msPerLayer, run.fingerprint, run.finishedAt, correct === null ? null : Number(correct), deviceGflops, now, signature);
        return { ...run, correct, deviceGflops, receivedAt: now };
      });
    },
    counts(id) {
      const { runs, devices } = db.prepare('SELECT COUNT(*) AS runs, COUNT(DISTINCT device_signature) AS devices FROM runs WHERE campaign_id = ?').get(id) as { runs: number; devices: number };
      const { refused } = (db.prepare('SELECT refused FROM campaigns WHERE id = ?').get(id) as { refused: number } | undefined) ?? { refused: 0 };
      return { runs: Number(runs), devices: Number(devices), refused: Number(refused) };
    },
    setCorrect(run, correct) {
      db.prepare('UPDATE runs SET correct = ? WHERE campaign_id = ? AND peer_id = ? AND provider = ? AND workload = ? AND repetition = ?').run(Number(correct), run.campaignId, run.peerId, run.provider, run.workload, run.repetition);
    },
    runs: (id) => (db.prepare('SELECT * FROM runs WHERE campaign_id = ? ORDER BY received_at, rowid').all(id) as unknown as RunRow[]).map(runOf),
    refuse(id, r) {
      transaction(() => {
        db.prepare('INSERT INTO refusals (campaign_id, peer_id, verified, reason, message, received_at) VALUES (?, ?, ?, ?, ?, ?)').run(id, r.peerId, Number(r.verified), r.reason, r.message, r.receivedAt);
        db.prepare('UPDATE campaigns SET refused = refused + 1 WHERE id = ?').run(id);
        db.prepare('DELETE FROM refusals WHERE campaign_id = ? AND rowid <= (SELECT rowid FROM refusals WHERE campaign_id = ? ORDER BY rowid DESC LIMIT 1 OFFSET ?)').run(id, id, MAX_REFUSALS_KEPT);
      });
    },
    refusals: (id) =>
      (db.prepare('SELECT peer_id, verified, reason, message, received_at FROM refusals WHERE campaign_id = ? ORDER BY received_at, rowid').all(id) as { peer_id: string; verified: number; reason: string; message: string; received_at: number }[]).map((r) => ({
        peerId: r.peer_id,
        verified: r.verified === 1,
        reason: r.reason,
        message: r.message,
        receivedAt: r.received_at,
      })),
    addReport(r, signature, now = Date.now()) {
      return transaction(() => {
        const same = db.prepare('SELECT 1 FROM tab_reports WHERE signature = ? OR (campaign_id = ? AND peer_id = ? AND event = ? AND provider = ? AND workload = ?)').get(signature, r.campaignId, r.peerId, r.event, r.provider, r.workload);
        if (same) throw new DuplicateReportError(`${r.peerId} already reported ${r.event}${r.provider ? ` ${r.provider}` : ''}${r.workload ? ` ${r.workload}` : ''} for this campaign`);
        db.prepare(
          `INSERT INTO tab_reports (campaign_id, peer_id, device_signature, adapter, tab_provider, event, provider, workload, planned, reason, at, received_at, signature)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        ).run(r.campaignId, r.peerId, r.deviceSignature, r.adapter, r.tabProvider, r.event, r.provider, r.workload, r.planned, r.reason, r.at, now, signature);
        return { ...r, receivedAt: now };
      });
    },
    reports: (id) => (db.prepare('SELECT * FROM tab_reports WHERE campaign_id = ? ORDER BY received_at, rowid').all(id) as unknown as ReportRow[]).map(reportOf),
    hasReport: (id, peerId, event) => db.prepare('SELECT 1 FROM tab_reports WHERE campaign_id = ? AND peer_id = ? AND event = ?').get(id, peerId, event) !== undefined,
    close: () => db.close(),
  };
}
