import { describe, expect, it } from 'vitest';
import { createKvRows } from './kv-cache.ts';

const rows = (from: number, count: number, width: number) => Float32Array.from({ length: count * width }, (_, i) => from * width + i);

describe('KV rows', () => {
  it('appends rows and views exactly the filled prefix, across capacity growth', () => {
    const kv = createKvRows(3, 1000);
    expect(kv.length).toBe(0);
    expect(kv.view()).toHaveLength(0);
    kv.append(rows(0, 5, 3));
    for (let p = 5; p < 100; p++) kv.append(rows(p, 1, 3));
    expect(kv.length).toBe(100);
    expect(Array.from(kv.view())).toEqual(Array.from(rows(0, 100, 3)));
  });

  it('grows by doubling, so 100 single-row appends reserve at most twice what they hold', () => {
    const kv = createKvRows(4, 1000);
    for (let p = 0; p < 100; p++) kv.append(rows(p, 1, 4));
    expect(kv.capacityBytes()).toBeGreaterThanOrEqual(100 * 4 * 4);
    expect(kv.capacityBytes()).toBeLessThanOrEqual(2 * 100 * 4 * 4);
  });

  it('never reserves beyond the context length', () => {
    const kv = createKvRows(2, 40);
    kv.append(rows(0, 33, 2));
    expect(kv.capacityBytes()).toBe(40 * 2 * 4);
  });

  it('refuses rows that are not whole rows, and positions past the context, leaving the cache as it was', () => {
    const kv = createKvRows(3, 4);
    kv.append(rows(0, 2, 3));
    expect(() => kv.append(new Float32Array(4))).toThrow(/not a multiple of the row width 3/);
    expect(() => kv.append(rows(2, 3, 3))).toThrow(/would hold 5 positions, more than 4/);
    expect(kv.length).toBe(2);
    expect(Array.from(kv.view())).toEqual(Array.from(rows(0, 2, 3)));
  });
});
