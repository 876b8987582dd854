/**
 * A campaign run checked against the reference: a run on a real shard engine (Node, stories260K
 * f32, layers 1..3) passes the replay of its seed on the validator's replayer; the same run
 * carrying another run's fingerprint, or one of the wrong shape, does not.
 */
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createShardEngine } from '../../worker/engine.ts';
import type { EngineOrt } from '../../worker/engine.ts';
import { openCheckpoint } from '../../cli/open-checkpoint.ts';
import { compileTo, packageBytes, removeTempDirs, STORIES_260K, TOK_512 } from '../../testkit/model-fixtures.ts';
import type { Manifest } from '../../shared/model/manifest.ts';
import { checkCampaignSpec } from '../../shared/campaign/spec.ts';
import type { CampaignResult } from '../../shared/campaign/result.ts';
import { runSeed, runWorkload } from '../../shared/campaign/workload-run.ts';
import { thresholdsFor } from '../../shared/trust/fingerprint.ts';
import { createReplayer } from '../trust/replayer.ts';
import type { Replayer } from '../trust/replayer.ts';
import { checkCampaignRun } from './campaign-check.ts';

const LAYERS = { start: 1, end: 3 };
const SPEC = checkCampaignSpec({
  name: 'check',
  models: [{ package: 'stories260K' }],
  workloads: [
    { name: 'decode', promptTokens: 5, decodeTokens: 3 },
    { name: 'prefill', promptTokens: 7, decodeTokens: 0 },
  ],
  providers: ['wasm'],
  repetitions: 2,
  target: { runs: 4 },
  endsAt: '2030-01-01T00:00:00Z',
});

let engine: ReturnType<typeof createShardEngine>;
let manifest: Manifest;
let replayer: Replayer;

beforeAll(async () => {
  const compiled = await compileTo(await openCheckpoint(STORIES_260K, { tokenizer: TOK_512, seed: 0 }), 'f32');
  manifest = compiled.manifest;
  engine = createShardEngine({ ort: ort as unknown as EngineOrt });
  await engine.load({ modelId: manifest.id, layers: LAYERS, source: await packageBytes(compiled.dir), executionProviders: ['cpu'] });
  replayer = createReplayer({ dir: compiled.dir, manifest });
}, 120_000);
afterAll(async () => {
  await replayer?.close();
  await removeTempDirs();
});

async function tabRun(workload: string, repetition: number): Promise<CampaignResult> {
  const w = SPEC.workloads.find((x) => x.name === workload)!;
  const run = await runWorkload(engine, { workload: w, dim: manifest.config.dim, layers: 2, seed: runSeed('cmp_1', 'peer-a', workload, repetition), requestId: `r-${workload}-${repetition}` });
  return { campaignId: 'cmp_1', peerId: 'peer-a', deviceSignature: 'dev', provider: 'wasm', adapter: 'cpu', workload, repetition, layers: LAYERS, ...run, finishedAt: 0 };
}

const check = (run: CampaignResult) => checkCampaignRun(run, SPEC, { replayer, dim: manifest.config.dim, thresholds: thresholdsFor('f32') });

describe('a campaign run checked against the reference', () => {
  it('passes when its output is what the seed gives, with and without decode steps', async () => {
    expect(await check(await tabRun('decode', 0))).toBe(true);
    expect(await check(await tabRun('prefill', 1))).toBe(true);
  });

  it("fails with another run's fingerprint, or a fingerprint that is not one", async () => {
    const run = await tabRun('decode', 0);
    const other = await tabRun('decode', 1);
    expect(await check({ ...run, fingerprint: other.fingerprint })).toBe(false);
    expect(await check({ ...run, fingerprint: 'ab12' })).toBe(false);
  });
});
