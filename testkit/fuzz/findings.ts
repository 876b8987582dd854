/**
 * What a fuzz case can find wrong with the server, by kind (issue 22's list), and what one
 * case's run reports. The case runners (http-run.ts, coordinator-run.ts, trust-run.ts) produce
 * them; the runner (run-fuzz.ts) counts them and keeps the first few as reproducible failures.
 */

export type FindingKind =
  /** an HTTP 5xx other than 503 */
  | 'server-error'
  /** a 503 without Retry-After */
  | 'missing-retry-after'
  /** an /api or /v1 error response whose body is not `{ error: { message, type, param, code } }` JSON */
  | 'bad-error-body'
  /** no whole HTTP response within the deadline, or a connection closed without a byte */
  | 'no-answer'
  /** a valid request did not get the endpoint's normal answer */
  | 'wrong-status'
  /** a response carried the canary or /etc/passwd */
  | 'file-leak'
  /** a libp2p stream got no answer, close or reset within the deadline */
  | 'stuck-stream'
  /** the registry kept what a message should not have stored */
  | 'junk-stored'
  /** a peer replaced its coordinator stream and fell out of the registry */
  | 'lost-peer'
  /** the relay would not open a stream */
  | 'dial-failed'
  /** the server process exited while the case ran */
  | 'crash';

export interface Finding {
  kind: FindingKind;
  detail: string;
}

export interface CaseOutcome {
  /** what the server answered, for the histograms: '404', '400 parser', 'error:UsageError', 'closed', … */
  outcome: string;
  findings: Finding[];
}
