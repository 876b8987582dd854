/**
 * Time limits for the fuzz harness: every wait on the server under test (a response, a stream
 * event, a process start) goes through withDeadline, so a server that never answers shows up
 * as a finding instead of a harness that hangs. Used by every module in testkit/fuzz/.
 */
import { InfermeshError } from '../../shared/errors.ts';

/** A wait on the server under test ran past its limit. */
export class DeadlineError extends InfermeshError {
  override name = 'DeadlineError';
}

/**
 * How long the server has to answer anything (an HTTP response, a stream message, a close):
 * issue 22's limit, the same figure a stuck stream is defined by.
 */
export const ANSWER_DEADLINE_MS = 10_000;

/** Resolves like `promise`, or rejects with DeadlineError after `ms`; the timer is cleared either way. */
export function withDeadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, fail) => {
    timer = setTimeout(() => fail(new DeadlineError(`${what}: no result within ${ms} ms`)), ms);
  });
  return Promise.race([promise, expired]).finally(() => clearTimeout(timer));
}

export const sleep = (ms: number) => new Promise<void>((done) => void setTimeout(done, ms));
