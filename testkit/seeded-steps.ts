/** Seeded numbers and step tensors for tests: a failing case replays from its seed, and a request's steps join and split as the validator replays them. */

import { mulberry32, seededUniform } from '../shared/seeded-random.ts';

/** Seeded uniform numbers in [0, 1) (mulberry32), so a failing case can be replayed from its seed. */
export { seededUniform };

/** Seeded standard normal numbers: Box-Muller over mulberry32, whose uniforms here are in (0, 1] so the log stays finite. */
export function seededNormal(seed: number): () => number {
  const next = mulberry32(seed);
  const uniform = () => (next() + 1) / 4294967297;
  return () => Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform());
}

/** A request's steps end to end, as the validator replays them: one prefill. */
export function concatSteps(steps: Float32Array[]): Float32Array {
  return new Float32Array(steps.flatMap((s) => Array.from(s)));
}

/** Rows of `width` values end to end (a replay), split back into steps of `stepRows[i]` rows. */
export function splitSteps(rows: Float32Array, stepRows: number[], width: number): Float32Array[] {
  const steps: Float32Array[] = [];
  let at = 0;
  for (const n of stepRows) {
    steps.push(rows.subarray(at * width, (at + n) * width));
    at += n;
  }
  return steps;
}
