/**
 * Benchmark operands and the check of a benchmark's result, shared by the WebGPU and WASM
 * probes: a speed is only reported for a matmul that computed the right answer, so a broken
 * shader or kernel (or one that skips work) cannot claim a fast device.
 *
 * Every operand is a multiple of 1/8 in [-1, 1], so every product is a multiple of 1/64 and
 * every partial sum of up to 2^18 products is exact in float32, in any summation order:
 * a correct device matches the CPU exactly, whatever its FMA use or reduction tree.
 */
import { ComputeMismatchError } from './errors.ts';

/** A rows×cols row-major operand of exact eighths, different for each salt. */
export function matmulOperand(rows: number, cols: number, salt: number): Float32Array<ArrayBuffer> {
  const out = new Float32Array(rows * cols);
  for (let i = 0; i < out.length; i++) {
    out[i] = (((Math.imul(i + salt * 0x3c6ef372, 0x9e3779b1) >>> 16) % 17) - 8) / 8;
  }
  return out;
}

export interface MatmulResult {
  /** [m, k] row-major */
  a: Float32Array;
  /** [k, n] row-major */
  b: Float32Array;
  /** [m, n] row-major, as the device computed it */
  c: Float32Array;
  m: number;
  k: number;
  n: number;
}

/**
 * Deterministic sample of positions: the first and last rows and columns (every edge tile of
 * a tiled kernel, where bounds bugs live) and a spread in between.
 */
function samplePositions(m: number, n: number): [number, number][] {
  const out: [number, number][] = [];
  for (let j = 0; j < n; j++) out.push([0, j], [m - 1, j]);
  for (let i = 1; i < m - 1; i++) out.push([i, 0], [i, n - 1]);
  for (let s = 0; s < 64; s++) out.push([(Math.imul(s + 1, 0x9e3779b1) >>> 0) % m, (Math.imul(s + 7, 0x85ebca6b) >>> 0) % n]);
  return out;
}

/** Throws a ComputeMismatchError naming the first wrong element of c = a·b. */
export function checkMatmul(result: MatmulResult, source: string): void {
  const { a, b, c, m, k, n } = result;
  if (c.length !== m * n) throw new ComputeMismatchError(`matmul returned ${c.length} values, expected ${m}×${n}`, { source });
  for (const [i, j] of samplePositions(m, n)) {
    let want = 0;
    for (let t = 0; t < k; t++) want += a[i * k + t] * b[t * n + j];
    const got = c[i * n + j];
    if (!(Math.abs(got - want) <= 1e-3)) {
      throw new ComputeMismatchError(`matmul [${m}×${k}]·[${k}×${n}] is wrong at (${i}, ${j}): got ${got}, expected ${want}`, { source });
    }
  }
}
