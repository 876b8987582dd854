import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { processName, startProcessCpuSample } from './process-cpu.ts';

const hasProc = existsSync('/proc/self/stat');
if (!hasProc) console.log('process-cpu.test.ts: skipped, this system has no /proc (the bench then reports no processes)');

describe('processName', () => {
  it("names Chromium's processes by type, whether its arguments are NUL- or space-separated, and others by their command", () => {
    expect(processName('/usr/lib/chromium/chromium --type=renderer --enable-unsafe-webgpu --renderer-client-id=7')).toBe('chromium renderer');
    expect(processName('/usr/lib/chromium/chromium\0--type=utility\0--utility-sub-type=network.mojom.NetworkService\0')).toBe('chromium utility:NetworkService');
    expect(processName('/usr/lib/chromium/chromium\0--headless=new\0--no-sandbox\0')).toBe('chromium browser');
    expect(processName('/work/node_modules/node/bin/node\0bench/main.ts\0grid\0')).toBe('node main.ts');
    expect(processName('')).toBe('');
  });
});

describe.skipIf(!hasProc)('startProcessCpuSample', () => {
  it('finds this process busy while it computes, and an idle child that waited idle', async () => {
    const sleeper = spawn('sleep', ['2']);
    await new Promise((r) => setTimeout(r, 100));
    const end = startProcessCpuSample();
    const until = performance.now() + 400;
    let x = 0;
    while (performance.now() < until) x += Math.sqrt(x + 1);
    const rows = end();
    sleeper.kill();
    expect(x).toBeGreaterThan(0);
    const me = rows.find((r) => r.pid === process.pid);
    expect(me?.percentOfCore).toBeGreaterThan(50);
    expect(me?.process).toMatch(/node/);
    // rows are the busiest first, and an idle process is left out
    expect(rows.map((r) => r.percentOfCore)).toEqual([...rows.map((r) => r.percentOfCore)].sort((a, b) => b - a));
    expect(rows.find((r) => r.pid === sleeper.pid)).toBeUndefined();
  });
});
