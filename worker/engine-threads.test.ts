/**
 * The engine's thread setting, the rules that hold on any host: set before the engine opens
 * anything, within the machine's cores, one thread where the page is not cross-origin isolated,
 * and refused by name on a host started with its threads fixed. The real thing in Chromium: e2e/grid-swarm.test.ts.
 */
import { describe, expect, it } from 'vitest';
import * as ort from 'onnxruntime-node';
import { createShardEngine, defaultThreads } from './engine.ts';
import type { EngineDeps, EngineOrt } from './engine.ts';
import { syntheticConfig } from '../shared/model/synthetic/presets.ts';
import { runHandshake } from './device/handshake.ts';
import { nodeHost } from './device/node-host.ts';

/** onnxruntime-web's thread setting as the browser worker hands it in (browser-deps.ts), on a machine of `cores`. */
function computeThreads(cores: number, isolated = true): NonNullable<EngineDeps['computeThreads']> & { value: number } {
  const t = { value: defaultThreads(cores), cores, isolated, get: () => t.value, set: (n: number) => void (t.value = n) };
  return t;
}

const engineOn = (threads: EngineDeps['computeThreads']) =>
  createShardEngine({ ort: ort as unknown as EngineOrt, computeThreads: threads, handshake: (o) => runHandshake(o, { ort: ort as never, host: nodeHost() }) });

describe('engine threads', () => {
  it('default to half the cores, at most 4, and at least 1', () => {
    expect([1, 2, 3, 4, 8, 16, 64].map(defaultThreads)).toEqual([1, 1, 2, 2, 4, 4, 4]);
  });

  it('are set before the engine opens anything, and say what is in force', async () => {
    const threads = computeThreads(8);
    const engine = engineOn(threads);
    expect(await engine.threads()).toEqual({ threads: 4, cores: 8, isolated: true });
    expect(await engine.threads(6)).toEqual({ threads: 6, cores: 8, isolated: true });
    expect(threads.value).toBe(6);
    await engine.handshake({ layer: { config: syntheticConfig('tiny'), dtype: 'f32', executionProvider: 'cpu' }, skipWebGpu: true, targetMs: 5 });
    await expect(engine.threads(2)).rejects.toMatchObject({ name: 'UsageError', message: expect.stringMatching(/before the engine opens anything/) });
    expect(await engine.threads()).toMatchObject({ threads: 6 });
  });

  it('refuse a count that is not a whole number of this machine\'s cores, by name', async () => {
    const engine = engineOn(computeThreads(4));
    for (const bad of [0, 5, 1.5, Number.NaN]) {
      await expect(engine.threads(bad)).rejects.toMatchObject({ name: 'UsageError', message: expect.stringMatching(/threads must be a whole number from 1 to this machine's 4 cores/) });
    }
  });

  it('are one where the page is not cross-origin isolated (WASM threads need SharedArrayBuffer)', async () => {
    const engine = engineOn(computeThreads(8, false));
    expect(await engine.threads(4)).toEqual({ threads: 1, cores: 8, isolated: false });
  });

  it('are refused by name on a host started with its threads fixed', async () => {
    await expect(engineOn(undefined).threads(2)).rejects.toMatchObject({ name: 'UsageError', message: expect.stringMatching(/started with its threads fixed/) });
  });
});
