/**
 * A campaign's runs as files a researcher opens elsewhere: CSV (one row per run, a header
 * first) and JSON Lines (one object per run). The same columns in both, in this order.
 */
import type { StoredRun } from './campaign-store.ts';

export const EXPORT_FORMATS = ['csv', 'jsonl'] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

const COLUMNS = [
  ['campaign', (r) => r.campaignId],
  ['peer_id', (r) => r.peerId],
  ['device_signature', (r) => r.deviceSignature],
  ['provider', (r) => r.provider],
  ['adapter', (r) => r.adapter],
  ['workload', (r) => r.workload],
  ['repetition', (r) => r.repetition],
  ['layers', (r) => `${r.layers.start}-${r.layers.end}`],
  ['prompt_ms', (r) => r.promptMs],
  ['decode_ms', (r) => r.decodeMs],
  ['tokens_per_second', (r) => r.tokensPerSecond],
  ['ms_per_layer', (r) => r.msPerLayer],
  ['correct', (r) => r.correct],
  ['finished_at', (r) => new Date(r.finishedAt).toISOString()],
  ['received_at', (r) => new Date(r.receivedAt).toISOString()],
] as const satisfies readonly (readonly [string, (r: StoredRun) => string | number | boolean | null])[];

/** RFC 4180: a field with a comma, quote or line break is quoted, its quotes doubled; null is empty. */
function csvField(value: string | number | boolean | null): string {
  if (value === null) return '';
  const text = String(value);
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

export function exportRuns(runs: readonly StoredRun[], format: ExportFormat): { text: string; contentType: string } {
  if (format === 'jsonl') {
    const lines = runs.map((r) => JSON.stringify(Object.fromEntries(COLUMNS.map(([name, get]) => [name, get(r)]))));
    return { text: lines.map((l) => `${l}\n`).join(''), contentType: 'application/x-ndjson; charset=utf-8' };
  }
  const rows = [COLUMNS.map(([name]) => name), ...runs.map((r) => COLUMNS.map(([, get]) => csvField(get(r))))];
  return { text: rows.map((row) => `${row.join(',')}\r\n`).join(''), contentType: 'text/csv; charset=utf-8' };
}
