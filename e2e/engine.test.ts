/**
 * The shard engine in headless Chromium: engines in Web Workers of one page, on the WebGPU
 * execution provider (SwiftShader here: correct, slow) and on WASM, held to the same scenarios
 * as the Node host (worker/engine.test.ts) and to the local runner's tokens.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { openApp, type App } from '../testkit/browser-app.ts';
import { openCheckpoint } from '../cli/open-checkpoint.ts';
import { openLocalPipeline } from '../worker/node/local-package.ts';
import { compilePackage } from '../shared/model/compiler.ts';
import { createDirectorySink } from '../worker/node/package-dir.ts';
import { removeTempDirs, STORIES_260K, TOK_512, tempDir, track } from '../testkit/model-fixtures.ts';
import { createSyntheticCheckpoint } from '../shared/model/synthetic/checkpoint.ts';
import type { Checkpoint } from '../shared/model/checkpoint.ts';
import type { WeightDtype } from '../shared/model/graphs/linear.ts';
import type { Manifest } from '../shared/model/manifest.ts';
import { maxRelativeError, q4Bound, referenceRange, referenceWeights, relativeRms } from '../testkit/engine/reference-check.ts';

const MODELS: Record<string, () => Promise<Checkpoint>> = {
  stories: async () => track(await openCheckpoint(STORIES_260K, { tokenizer: TOK_512, seed: 0 })),
  tiny: async () => createSyntheticCheckpoint('tiny', 0),
};
/**
 * Tolerances against the reference forward pass (float64) on the weights the package computes
 * with. WASM runs the same float32 kernels as onnxruntime on the CPU, and for q4 infermesh's
 * kernels, whose int16 inputs (one scale per 32) keep stories-q4 within 3.5e-5: 1e-4 of the
 * hidden state's scale. WebGPU on SwiftShader computes exp, sin and cos with its own approximations
 * and sums in workgroup order, so it is held to 1e-3; still ~100x below any real disagreement
 * (a wrong layer, weight or position moves hidden states by >10% of their scale).
 */
const TOLERANCE = { wasm: 1e-4, webgpu: 1e-3 } as const;

let app: App;
let packagesDir: string;
const manifests: Record<string, Manifest> = {};

beforeAll(async () => {
  packagesDir = await tempDir('infermesh-e2e-packages-');
  for (const [model, open] of Object.entries(MODELS)) {
    for (const dtype of ['f32', 'q4'] as WeightDtype[]) {
      manifests[`${model}-${dtype}`] = await compilePackage(await open(), { dtype }, { sink: await createDirectorySink(join(packagesDir, `${model}-${dtype}`)) });
    }
  }
  manifests['tiny-other'] = await compilePackage(createSyntheticCheckpoint('tiny', 9), { dtype: 'f32' }, { sink: await createDirectorySink(join(packagesDir, 'tiny-other')) });
  app = await openApp('test/engine-test/', { packagesDir, waitFor: 'window.harness?.ready === true' });
});
afterAll(async () => {
  await app?.close();
  await removeTempDirs();
});

async function localTokens(name: string, maxTokens: number): Promise<number[]> {
  const local = await openLocalPipeline(join(packagesDir, name), { stages: 1 });
  const ids: number[] = [];
  for await (const t of local.pipeline.generate('Once upon a time', { maxTokens, temperature: 0, topP: 0.9, seed: 1 })) if (t.id !== null) ids.push(t.id);
  await local.release();
  return ids;
}

describe('shard engines in Web Workers', () => {
  for (const provider of ['webgpu', 'wasm'] as const) {
    for (const model of Object.keys(MODELS)) {
      for (const dtype of ['f32', 'q4'] as const) {
        const name = `${model}-${dtype}`;
        // q4 on WASM runs on infermesh's kernels, here on two threads each (a donor's setting), whatever the machine's default.
        const threads = provider === 'wasm' && dtype === 'q4' ? 2 : undefined;
        it(`${provider}: ${name} split over two workers${threads ? ` of ${threads} threads` : ''} gives the local runner's 32 greedy tokens; each stage matches the reference`, async () => {
          const run = await app.page.evaluate(([n, p, t]) => window.harness!.twoStage(n, [p], 32, t), [name, provider, threads] as const);
          expect(run.reports.map((r) => r.executionProvider)).toEqual([provider, provider]);
          if (threads) for (const r of run.reports) expect(r.reason).toContain(`q4 blocks run on infermesh's WASM SIMD kernels, on ${threads} threads`);
          expect(run.tokens).toEqual(await localTokens(name, 32));

          const config = manifests[name].config;
          const split = Math.ceil(config.nLayers / 2);
          const weights = await referenceWeights(await MODELS[model](), dtype);
          const first = referenceRange(config, weights, Float32Array.from(run.prefillInput), 0, split);
          const second = referenceRange(config, weights, first, split, config.nLayers);
          const errors = [maxRelativeError(run.prefillOutputs[0], first), maxRelativeError(run.prefillOutputs[1], second)];
          console.log(`${provider} ${name}: stage errors vs reference ${errors.map((e) => e.toExponential(2)).join(', ')}`);
          for (const e of errors) expect(e).toBeLessThan(TOLERANCE[provider]);
          if (dtype === 'q4') {
            // Against the original f32 weights: within the quantization error itself (q4Bound).
            const f32 = await referenceWeights(await MODELS[model](), 'f32');
            const f32First = referenceRange(config, f32, Float32Array.from(run.prefillInput), 0, split);
            const f32Second = referenceRange(config, f32, f32First, split, config.nLayers);
            expect(relativeRms(run.prefillOutputs[0], f32First)).toBeLessThan(q4Bound(relativeRms(first, f32First)));
            expect(relativeRms(run.prefillOutputs[1], f32Second)).toBeLessThan(q4Bound(relativeRms(second, f32Second)));
          }
        });
      }
    }

    it(`${provider}: eight interleaved requests keep separate caches; ending them returns memory to the baseline`, async () => {
      const result = await app.page.evaluate((p) => window.harness!.interleaved('tiny-f32', [p]), provider);
      expect(result.report.executionProvider).toBe(provider);
      expect(result.identical).toBe(true);
      expect(result.requestsAtPeak).toBe(8);
      expect(result.peakBytes).toBeGreaterThan(0);
      expect(result.finalBytes).toBe(result.baselineBytes);
    });

    it(`${provider}: bad inputs are refused with typed errors across the worker boundary, and the worker keeps serving`, async () => {
      const { report, cases } = await app.page.evaluate((p) => window.harness!.refused('tiny-f32', 'tiny-other', [p]), provider);
      expect(report.executionProvider).toBe(provider);
      const byCase = Object.fromEntries(cases.map((c) => [c.case, c]));
      expect(cases.every((c) => c.stillServing)).toBe(true);
      expect(byCase['hidden size does not match the model'].name).toBe('FrameError');
      expect(byCase['wrong rank'].name).toBe('FrameError');
      expect(byCase['dtype other than f32']).toMatchObject({ name: 'FrameError', message: expect.stringMatching(/dtype 2/) });
      expect(byCase['truncated frame'].name).toBe('FrameError');
      expect(byCase['step for an unknown request'].name).toBe('UnknownRequestError');
      expect(byCase['step for an ended request'].name).toBe('UnknownRequestError');
      expect(byCase['shard whose piece hash does not match']).toMatchObject({ name: 'PackageError', message: expect.stringMatching(/block-1\.data: piece 0 fails its SHA-256 check/) });
      expect(byCase['package of another model']).toMatchObject({ name: 'PackageError', message: expect.stringMatching(/shard belongs to model/) });
    });
  }

  it('a lost WebGPU device is reported, the engine reopens on WASM, the lost request is refused by name and new requests are served', async () => {
    const result = await app.page.evaluate(() => window.harness!.deviceLoss('tiny-f32'));
    expect(result.report.executionProvider).toBe('webgpu');
    expect(result.before).toBe('ok');
    expect(result.destroyed).toBe(true);
    expect(result.lostRequest).toMatch(/^UnknownRequestError: unknown request a/);
    expect(result.newRequest).toBe('ok');
    expect(result.memory.executionProvider).toBe('wasm');
    expect(result.events.map((e) => e.kind)).toEqual(['device-lost', 'fallback']);
    expect(result.events[0].message).toMatch(/GPU device lost \(destroyed\)/);
  });
});
