/**
 * A workload run on a real shard engine (Node, onnxruntime-node; stories260K f32, layers 0..2):
 * timings for the prefill and every decode step, and a fingerprint that the same seed
 * reproduces and another seed does not, so a replay elsewhere can check the output.
 */
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createShardEngine } from '../../worker/engine.ts';
import type { EngineOrt } from '../../worker/engine.ts';
import { openCheckpoint } from '../../cli/open-checkpoint.ts';
import { compileTo, packageBytes, removeTempDirs, STORIES_260K, TOK_512 } from '../../testkit/model-fixtures.ts';
import type { Manifest } from '../model/manifest.ts';
import { runSeed, runWorkload } from './workload-run.ts';

const LAYERS = { start: 0, end: 2 };
let engine: ReturnType<typeof createShardEngine>;
let manifest: Manifest;

beforeAll(async () => {
  const compiled = await compileTo(await openCheckpoint(STORIES_260K, { tokenizer: TOK_512, seed: 0 }), 'f32');
  manifest = compiled.manifest;
  engine = createShardEngine({ ort: ort as unknown as EngineOrt });
  await engine.load({ modelId: manifest.id, layers: LAYERS, source: await packageBytes(compiled.dir), executionProviders: ['cpu'] });
}, 120_000);
afterAll(removeTempDirs);

const run = (seed: number, requestId: string) =>
  runWorkload(engine, { workload: { promptTokens: 6, decodeTokens: 5 }, dim: manifest.config.dim, layers: LAYERS.end - LAYERS.start, seed, requestId });

describe('a campaign workload run', () => {
  it('times the prefill and the decode steps, and fingerprints the first decode output the same for the same seed', async () => {
    const seed = runSeed('cmp_1', 'peer', 'decode', 0);
    const first = await run(seed, 'bench-1');
    const again = await run(seed, 'bench-2');
    const other = await run(runSeed('cmp_1', 'peer', 'decode', 1), 'bench-3');
    expect(first.promptMs).toBeGreaterThan(0);
    expect(first.decodeMs).toBeGreaterThan(0);
    expect(first.tokensPerSecond).toBeCloseTo(5 / (first.decodeMs / 1000), 6);
    expect(first.msPerLayer).toBeCloseTo(first.decodeMs / 5 / 2, 6);
    expect(first.fingerprint).toMatch(/^[0-9a-f]+$/);
    expect(again.fingerprint).toBe(first.fingerprint);
    expect(other.fingerprint).not.toBe(first.fingerprint);
  });
});
