/** Helpers for tests anywhere in the repository (isomorphic; never imported by runtime code). */
import type { InfermeshError } from '../shared/errors.ts';

/** Awaits a promise that must reject and returns what it rejected with, to assert on. */
export async function rejection(promise: Promise<unknown>): Promise<Error & Partial<Pick<InfermeshError, 'source' | 'shortMessage'>>> {
  try {
    await promise;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected the promise to reject');
}

/** Calls a function that must throw and returns what it threw, to assert on. */
export function thrown(fn: () => unknown): Error & Partial<Pick<InfermeshError, 'source' | 'shortMessage'>> {
  try {
    fn();
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected the call to throw');
}
