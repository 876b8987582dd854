import { describe, expect, it } from 'vitest';
import { checkMatmul, matmulOperand } from './matmul-check.ts';

function cpuMatmul(a: Float32Array, b: Float32Array, m: number, k: number, n: number): Float32Array {
  const c = new Float32Array(m * n);
  for (let i = 0; i < m; i++) for (let t = 0; t < k; t++) for (let j = 0; j < n; j++) c[i * n + j] += a[i * k + t] * b[t * n + j];
  return c;
}

describe('matmul check', () => {
  const [m, k, n] = [64, 128, 96];
  const a = matmulOperand(m, k, 1);
  const b = matmulOperand(k, n, 2);

  it('uses operands of exact eighths in [-1, 1] that differ by salt', () => {
    expect(a.every((v) => Number.isInteger(v * 8) && Math.abs(v) <= 1)).toBe(true);
    expect(new Set(a).size).toBe(17);
    expect(matmulOperand(m, k, 1)).toEqual(a);
    expect(matmulOperand(m, k, 2)).not.toEqual(a);
  });

  it('accepts a float32 result summed in any order, exactly', () => {
    const forward = cpuMatmul(a, b, m, k, n);
    expect(() => checkMatmul({ a, b, c: forward, m, k, n }, 'test')).not.toThrow();
  });

  it('rejects one wrong element on an edge, naming it', () => {
    const c = cpuMatmul(a, b, m, k, n);
    c[(m - 1) * n + 5] += 0.125;
    expect(() => checkMatmul({ a, b, c, m, k, n }, 'test')).toThrow(/wrong at \(63, 5\)/);
  });

  it('rejects NaN, zeros and a short result by name', () => {
    const nan = cpuMatmul(a, b, m, k, n);
    nan[0] = Number.NaN;
    for (const c of [nan, new Float32Array(m * n), new Float32Array(m * n - 1)]) {
      let name = '';
      try {
        checkMatmul({ a, b, c, m, k, n }, 'test');
      } catch (err) {
        name = (err as Error).name;
      }
      expect(name).toBe('ComputeMismatchError');
    }
  });
});
