/** Seeded numbers and step tensors for tests: a failing case replays from its seed, and a request's steps join and split as the validator replays them. */

/** mulberry32: a small seeded generator of 32-bit words. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

/** Seeded uniform numbers in [0, 1) (mulberry32), so a failing case can be replayed from its seed. */
export function seededUniform(seed: number): () => number {
  const next = mulberry32(seed);
  return () => next() / 4294967296;
}

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
