/**
 * What `npm start` and `infermesh generate` use when not told otherwise: a synthetic
 * 110M-parameter Llama (seeded random weights, q4) compiled on first use into the user's
 * cache, so a fresh clone runs the whole path with no download.
 */
import { join } from 'node:path';
import { defaultCacheDir } from '../signaling-server/config.ts';
import type { WeightDtype } from '../shared/model/graphs/linear.ts';

export const DEFAULT_MODEL = { preset: '110m', dtype: 'q4' as WeightDtype, seed: 0 };
export const DEFAULT_PROMPT = 'Once upon a time';
export const DEFAULT_MAX_TOKENS = 128;

/** Where generated packages are cached (the same folder rule as the server's state). */
export function cacheDir(): string {
  return defaultCacheDir(process.env);
}

export function syntheticPackageDir(preset: string, dtype: WeightDtype, seed: number): string {
  return join(cacheDir(), 'packages', `synthetic-${preset}-${dtype}-seed${seed}`);
}
