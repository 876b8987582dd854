/**
 * A campaign as files a researcher opens elsewhere: its runs as CSV (one row per run, a header
 * first), JSON Lines (one object per run) or Parquet (hyparquet-writer: typed columns, for
 * pandas, polars, DuckDB), the same columns in each, in this order; and its summary as one JSON
 * document (the dashboard's device, tab and failure rows).
 */
import { deviceRows, failureRows, tabRows } from '../../shared/campaign/summary.ts';
import { parquetWriteBuffer } from 'hyparquet-writer';
import type { BasicType } from 'hyparquet-writer';
import type { StoredRun, StoredTabReport, Refusal } from './campaign-store.ts';

export const EXPORT_FORMATS = ['csv', 'jsonl', 'parquet', 'summary'] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

/**
 * Each column: its name, its Parquet type, and its value for a run. CSV and JSON Lines write
 * times as ISO 8601 text; Parquet as timestamps (ms).
 */
const COLUMNS = [
  ['campaign', 'STRING', (r) => r.campaignId],
  ['peer_id', 'STRING', (r) => r.peerId],
  ['device_signature', 'STRING', (r) => r.deviceSignature],
  ['provider', 'STRING', (r) => r.provider],
  ['adapter', 'STRING', (r) => r.adapter],
  ['workload', 'STRING', (r) => r.workload],
  ['repetition', 'INT32', (r) => r.repetition],
  ['layers', 'STRING', (r) => `${r.layers.start}-${r.layers.end}`],
  ['prompt_ms', 'DOUBLE', (r) => r.promptMs],
  ['decode_ms', 'DOUBLE', (r) => r.decodeMs],
  ['tokens_per_second', 'DOUBLE', (r) => r.tokensPerSecond],
  ['ms_per_layer', 'DOUBLE', (r) => r.msPerLayer],
  ['device_gflops', 'DOUBLE', (r) => r.deviceGflops],
  ['correct', 'BOOLEAN', (r) => r.correct],
  ['finished_at', 'TIMESTAMP', (r) => new Date(r.finishedAt)],
  ['received_at', 'TIMESTAMP', (r) => new Date(r.receivedAt)],
] as const satisfies readonly (readonly [string, BasicType, (r: StoredRun) => string | number | boolean | Date | null])[];

type Value = string | number | boolean | Date | null;
const textOf = (value: Value) => (value instanceof Date ? value.toISOString() : value);

/** RFC 4180: a field with a comma, quote or line break is quoted, its quotes doubled; null is empty. */
function csvField(value: string | number | boolean | null): string {
  if (value === null) return '';
  const text = String(value);
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

export function exportRuns(runs: readonly StoredRun[], format: Exclude<ExportFormat, 'summary'>): { document: string | Uint8Array; contentType: string } {
  if (format === 'parquet') {
    const columnData = COLUMNS.map(([name, type, get]: (typeof COLUMNS)[number]) => ({ name, type, data: runs.map((r) => (get as (r: StoredRun) => Value)(r)) }));
    return { document: new Uint8Array(parquetWriteBuffer({ columnData, createdBy: 'infermesh' })), contentType: 'application/vnd.apache.parquet' };
  }
  if (format === 'jsonl') {
    const lines = runs.map((r) => JSON.stringify(Object.fromEntries(COLUMNS.map(([name, , get]) => [name, textOf(get(r))]))));
    return { document: lines.map((l) => `${l}\n`).join(''), contentType: 'application/x-ndjson; charset=utf-8' };
  }
  const rows = [COLUMNS.map(([name]) => name), ...runs.map((r) => COLUMNS.map(([, , get]) => csvField(textOf(get(r)))))];
  return { document: rows.map((row) => `${row.join(',')}\r\n`).join(''), contentType: 'text/csv; charset=utf-8' };
}

/** The campaign's summary: what the dashboard's tables show, as of `now`. */
export function exportSummary(campaign: object, runs: readonly StoredRun[], reports: readonly StoredTabReport[], refusals: readonly Refusal[], now: number): { document: string; contentType: string } {
  const summary = { campaign, generatedAt: new Date(now).toISOString(), devices: deviceRows(runs), tabs: tabRows(runs, reports, now), failures: failureRows(reports), refusals };
  return { document: `${JSON.stringify(summary, null, 2)}\n`, contentType: 'application/json; charset=utf-8' };
}
