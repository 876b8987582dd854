/**
 * One decoder under fuzz, and what counts as right: whatever the input, it returns (and what it
 * returns passes its `accepted` check) or throws an InfermeshError with a name of its own (an
 * HttpError counts by its code); a decoder whose refusal is a value (a reason sent back to the
 * peer, false) names it with `refusedAs`. Anything else is a crash: a TypeError or RangeError
 * from deep inside, a plain Error, a thrown non-error, or no answer within the deadline.
 */
import type fc from 'fast-check';
import { InfermeshError } from '../../../shared/errors.ts';

export interface DecoderSpec<T = unknown, R = unknown> {
  /** the name the bench and the test report it by, e.g. "stage message" */
  name: string;
  /** where its input comes from on the network, one line */
  from: string;
  input: fc.Arbitrary<T>;
  decode(input: T): R | Promise<R>;
  /** what an accepted result must satisfy: a problem, or undefined when it holds */
  accepted?(result: R, input: T): string | undefined | Promise<string | undefined>;
  /** for a decoder that answers a refusal with a value (a reason for the peer, false): the refusal's name, or undefined when the result is an acceptance */
  refusedAs?(result: R): string | undefined;
  describe(input: T): string;
}

export type Outcome =
  | { kind: 'accepted' }
  | { kind: 'refused'; name: string }
  | { kind: 'crash'; what: string };

/** A decoder that has not answered in this long is hung (the slowest, a reveal of thousands of steps, takes milliseconds). */
export const DECODE_DEADLINE_MS = 5_000;

/** An error's stable name, or undefined when it has none of its own. */
export function refusalName(err: unknown): string | undefined {
  if (!(err instanceof InfermeshError)) return undefined;
  const { code } = err as InfermeshError & { code?: string };
  if (err.name === 'HttpError') return code ? `HttpError:${code}` : undefined;
  return err.name === 'InfermeshError' ? undefined : err.name;
}

export async function runDecoder<T, R>(spec: DecoderSpec<T, R>, input: T): Promise<Outcome> {
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<Outcome>((resolve) => {
    timer = setTimeout(() => resolve({ kind: 'crash', what: `no answer within ${DECODE_DEADLINE_MS} ms` }), DECODE_DEADLINE_MS);
  });
  const run = (async (): Promise<Outcome> => {
    let result: R;
    try {
      result = await spec.decode(input);
    } catch (err) {
      const name = refusalName(err);
      if (name) return { kind: 'refused', name };
      const e = err as Error;
      return { kind: 'crash', what: e instanceof Error ? `${e.name}: ${e.message.slice(0, 200)}` : `threw a ${typeof err}: ${String(err).slice(0, 100)}` };
    }
    const refused = spec.refusedAs?.(result);
    if (refused) return { kind: 'refused', name: refused };
    const problem = await spec.accepted?.(result, input);
    return problem ? { kind: 'crash', what: `accepted, but ${problem}` } : { kind: 'accepted' };
  })();
  try {
    return await Promise.race([run, hung]);
  } finally {
    clearTimeout(timer);
  }
}
