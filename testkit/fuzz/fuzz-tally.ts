/**
 * The figures of a fuzz run, counted as cases finish: cases per family, what the server
 * answered (status histogram, p2p outcomes), findings per kind, failures grouped by kind,
 * family and where they hit, and the first failing case of each group as a printable,
 * replayable description (seed and index regenerate the case). Used by run-fuzz.ts; the
 * fuzz bench prints its report.
 */
import type { Finding, FindingKind } from './findings.ts';
import { describeCase } from './fuzz-cases.ts';
import type { Family, FuzzCase } from './fuzz-cases.ts';
import type { CaseResult } from './fuzz-rig.ts';

export interface FailureRecord {
  /** the case's index in the run: `--seed S --case I` runs it alone */
  index: number;
  family: Family;
  kind: FindingKind;
  detail: string;
  case: string;
}

/** Failures kept: the first of each group, enough to see every way the server failed, short enough to read. */
const KEPT = 60;

/** The counters the bench reports under issue 22's names. */
const COUNTERS: Record<FindingKind, string> = {
  'server-error': 'serverErrors',
  'missing-retry-after': 'missingRetryAfter',
  'bad-error-body': 'badErrorBodies',
  'no-answer': 'noAnswer',
  'wrong-status': 'wrongStatus',
  'file-leak': 'fileLeaks',
  'stuck-stream': 'stuckStreams',
  'junk-stored': 'junkStored',
  'lost-peer': 'lostPeers',
  'dial-failed': 'dialFailures',
  crash: 'casesInterruptedByCrash',
};

/** Where a case aimed, for grouping: the endpoint it was built from, or its p2p shape. */
function whereOf(c: FuzzCase): string {
  if (c.family === 'http') return c.endpoint;
  if (c.family === 'coordinator') return c.shape;
  if (c.family === 'relay') return `relay ${c.kind}`;
  return c.shape === 'commitment' ? `${c.commitment!.body} commitment` : c.shape;
}

export function createTally() {
  const families: Record<Family, number> = { http: 0, coordinator: 0, trust: 0, relay: 0 };
  const outcomes: Record<Family, Record<string, number>> = { http: {}, coordinator: {}, trust: {}, relay: {} };
  const counts = Object.fromEntries(Object.values(COUNTERS).map((k) => [k, 0])) as Record<string, number>;
  const groups = new Map<string, number>();
  const failures: FailureRecord[] = [];
  let cases = 0;
  let caseMs = 0;

  /** Counts the failure in its group; the first of a group is kept as its example. */
  function note(group: string, record: FailureRecord) {
    const seen = groups.get(group) ?? 0;
    groups.set(group, seen + 1);
    if (seen === 0 && failures.length < KEPT) failures.push(record);
  }

  return {
    add(index: number, c: FuzzCase, result: CaseResult) {
      cases++;
      caseMs += result.ms;
      families[c.family]++;
      outcomes[c.family][result.outcome] = (outcomes[c.family][result.outcome] ?? 0) + 1;
      for (const f of result.findings) {
        counts[COUNTERS[f.kind]]++;
        note(`${f.kind} | ${c.family} ${whereOf(c)} | ${result.outcome}`, { index, family: c.family, kind: f.kind, detail: f.detail, case: describeCase(c) });
      }
    },
    /** Junk the peers observer saw: a server's broadcast, not one case's answer. */
    addObserved(findings: Finding[]) {
      for (const f of findings) {
        counts[COUNTERS[f.kind]]++;
        note(`${f.kind} | coordinator broadcast | ${f.detail.split(':')[1] ?? ''}`, { index: -1, family: 'coordinator', kind: f.kind, detail: f.detail, case: 'seen by the peers observer' });
      }
    },
    report() {
      return {
        cases,
        families,
        ...counts,
        meanCaseMs: cases > 0 ? +(caseMs / cases).toFixed(1) : 0,
        outcomes,
        failureGroups: Object.fromEntries([...groups.entries()].sort((a, b) => b[1] - a[1])),
        failures,
      };
    },
  };
}

export type FuzzTally = ReturnType<typeof createTally>;
