/**
 * The shard engine under Node: engines in worker_threads (worker/node/engine-host.ts) on
 * onnxruntime-node, driven through comlink exactly as a page drives its Web Workers. The same
 * scenarios run in Chromium on WebGPU and WASM (e2e/engine.test.ts).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { openCheckpoint } from '../cli/open-checkpoint.ts';
import { openLocalPipeline } from './node/local-package.ts';
import { compileTo, packageBytes, removeTempDirs, STORIES_260K, TOK_512 } from '../testkit/model-fixtures.ts';
import { createSyntheticCheckpoint } from '../shared/model/synthetic/checkpoint.ts';
import type { Checkpoint } from '../shared/model/checkpoint.ts';
import { decodeFrame, encodeFrame } from '../shared/protocol/frame.ts';
import { startNodeEngine } from './node/engine-host.ts';
import type { NodeEngineHost } from './node/engine-host.ts';
import type { EngineOrt } from './engine.ts';
import { generateThroughEngines, interleavedRequests, refusals, syntheticHidden } from '../testkit/engine/scenarios.ts';
import { maxRelativeError, q4Bound, referenceRange, referenceWeights, relativeRms } from '../testkit/engine/reference-check.ts';

const hosts: NodeEngineHost[] = [];
const host = () => {
  const h = startNodeEngine();
  hosts.push(h);
  return h.engine;
};
afterAll(async () => {
  await Promise.all(hosts.map((h) => h.terminate()));
  await removeTempDirs();
});

interface Model {
  name: string;
  checkpoint: () => Promise<Checkpoint>;
}
const MODELS: Model[] = [
  { name: 'stories260K', checkpoint: () => openCheckpoint(STORIES_260K, { tokenizer: TOK_512, seed: 0 }) },
  { name: 'synthetic:tiny', checkpoint: async () => createSyntheticCheckpoint('tiny', 0) },
];

describe('shard engine in Node worker threads', () => {
  for (const model of MODELS) {
    for (const dtype of ['f32', 'q4'] as const) {
      it(`${model.name} ${dtype}: a 2-stage split through two engines gives the local runner's 32 greedy tokens, and each stage matches the reference`, async () => {
        const checkpoint = await model.checkpoint();
        const { dir, manifest } = await compileTo(checkpoint, dtype);
        const split = Math.ceil(manifest.config.nLayers / 2);
        const ranges = [{ start: 0, end: split }, { start: split, end: manifest.config.nLayers }];
        const run = await generateThroughEngines({
          ort: ort as unknown as EngineOrt,
          read: async (path) => new Uint8Array(await readFile(join(dir, path))),
          source: await packageBytes(dir),
          engines: [host(), host()],
          ranges,
          prompt: 'Once upon a time',
          maxTokens: 32,
        });
        expect(run.reports.map((r) => r.executionProvider)).toEqual(['cpu', 'cpu']);

        const local = await openLocalPipeline(dir, { stages: 1 });
        const expected: number[] = [];
        for await (const t of local.pipeline.generate('Once upon a time', { maxTokens: 32, temperature: 0, topP: 0.9, seed: 1 })) if (t.id !== null) expected.push(t.id);
        await local.release();
        expect(run.tokens).toEqual(expected);

        // Each stage against the reference forward pass on the weights the package computes with:
        // f32 as stored, q4 dequantized. Both are exact maths on the same values, so the only
        // difference is float32 rounding in a different order: 1e-4 of the hidden state's scale.
        const weights = await referenceWeights(checkpoint, dtype);
        const input = Float32Array.from(run.prefillInput);
        const first = referenceRange(manifest.config, weights, input, 0, split);
        const second = referenceRange(manifest.config, weights, first, split, manifest.config.nLayers);
        expect(maxRelativeError(run.prefillOutputs[0], first)).toBeLessThan(1e-4);
        expect(maxRelativeError(run.prefillOutputs[1], second)).toBeLessThan(1e-4);
        if (dtype === 'q4') {
          // Against the f32 weights, the difference is 4-bit quantization error, not engine error.
          const f32 = await referenceWeights(checkpoint, 'f32');
          const f32First = referenceRange(manifest.config, f32, input, 0, split);
          const f32Second = referenceRange(manifest.config, f32, f32First, split, manifest.config.nLayers);
          const rms = [relativeRms(run.prefillOutputs[0], f32First), relativeRms(run.prefillOutputs[1], f32Second)];
          const quantization = [relativeRms(first, f32First), relativeRms(second, f32Second)];
          console.log(`${model.name} q4 vs f32 reference: relative RMS ${rms.map((e) => e.toFixed(4)).join(', ')} (quantization alone: ${quantization.map((e) => e.toFixed(4)).join(', ')})`);
          rms.forEach((e, i) => expect(e).toBeLessThan(q4Bound(quantization[i])));
        }
      });
    }
  }

  it('eight interleaved requests keep separate caches and ending them returns memory to the baseline', async () => {
    const { dir, manifest } = await compileTo(createSyntheticCheckpoint('tiny', 3), 'f32');
    const engine = host();
    await engine.load({ modelId: manifest.id, layers: { start: 0, end: manifest.config.nLayers }, source: await packageBytes(dir) });
    const result = await interleavedRequests(engine, manifest.config.dim);
    expect(result.identical).toBe(true);
    expect(result.requestsAtPeak).toBe(8);
    expect(result.peakBytes).toBeGreaterThan(result.baselineBytes);
    expect(result.finalBytes).toBe(result.baselineBytes);
    expect(result.baselineBytes).toBe(0);
  });

  it('refuses bad frames, unknown and ended requests, corrupted shards and other models by typed error, and keeps serving', async () => {
    const { dir, manifest } = await compileTo(createSyntheticCheckpoint('tiny', 4), 'f32');
    const other = await compileTo(createSyntheticCheckpoint('tiny', 5), 'f32');
    const layers = { start: 0, end: 2 };
    const good = await packageBytes(dir);
    const corrupt = await packageBytes(dir);
    const data = corrupt.files['block-1.data'].slice();
    data[data.length >> 1] ^= 0xff;
    corrupt.files['block-1.data'] = data;
    const engine = host();
    await engine.load({ modelId: manifest.id, layers, source: good });
    const results = await refusals(engine, { dim: manifest.config.dim, modelId: manifest.id, layers, corruptSource: corrupt, otherModelId: other.manifest.id, goodSource: good });
    const byCase = Object.fromEntries(results.map((r) => [r.case, r]));
    expect(results.every((r) => r.stillServing)).toBe(true);
    expect(byCase['hidden size does not match the model']).toMatchObject({ name: 'FrameError', message: expect.stringMatching(/expected hidden state \[1, seq, 64\], got \[1,1,65\]/) });
    expect(byCase['wrong rank']).toMatchObject({ name: 'FrameError' });
    expect(byCase['dtype other than f32']).toMatchObject({ name: 'FrameError', message: expect.stringMatching(/unsupported frame dtype 2/) });
    expect(byCase['truncated frame']).toMatchObject({ name: 'FrameError' });
    expect(byCase['step for an unknown request']).toMatchObject({ name: 'UnknownRequestError', message: expect.stringMatching(/unknown request never-started/) });
    expect(byCase['step for an ended request']).toMatchObject({ name: 'UnknownRequestError', message: expect.stringMatching(/unknown request ended/) });
    expect(byCase['shard whose piece hash does not match']).toMatchObject({ name: 'PackageError', message: expect.stringMatching(/block-1\.data: piece 0 fails its SHA-256 check/) });
    expect(byCase['package of another model']).toMatchObject({ name: 'PackageError', message: expect.stringMatching(/shard belongs to model .* not the requested/) });
  });

  it('drops an idle request after its timeout and the oldest requests under memory pressure, naming why', async () => {
    const { dir, manifest } = await compileTo(createSyntheticCheckpoint('tiny', 6), 'f32');
    const dim = manifest.config.dim;
    const engine = host();
    const step = (id: string, position: number) =>
      engine.step(encodeFrame({ requestId: id, step: position, position, dims: [1, 1, dim], data: syntheticHidden(1, dim, position + 1) }));
    // One request's cache for 3 layers at the initial 32-row capacity: 3 layers × 2 × 32 rows × kv×hd × 4 bytes.
    const perRequest = manifest.config.nLayers * 2 * 32 * manifest.config.nKvHeads * manifest.config.headDim * 4;
    await engine.load({ modelId: manifest.id, layers: { start: 0, end: 3 }, source: await packageBytes(dir), maxCacheBytes: perRequest * 2, idleTimeoutMs: 400 });
    await step('a', 0);
    await step('b', 0);
    await step('c', 0); // three caches exceed two: 'a', least recently used, goes
    expect((await engine.memory()).requests).toBe(2);
    await expect(step('a', 1)).rejects.toThrow(/request a was evicted \(memory pressure\)/);
    await new Promise((r) => setTimeout(r, 900));
    expect((await engine.memory()).requests).toBe(0);
    const err = await step('b', 1).catch((e: Error) => e);
    expect(err).toMatchObject({ name: 'UnknownRequestError', message: expect.stringMatching(/request b was evicted \(idle timeout\)/) });
    const events = await engine.events();
    expect(events.filter((e) => e.kind === 'evicted').flatMap((e) => e.requestIds)).toEqual(expect.arrayContaining(['a', 'b', 'c']));
  });

  it('refuses a step before any shard is loaded with EngineNotLoadedError', async () => {
    const engine = host();
    const frame = encodeFrame({ requestId: 'a', step: 0, position: 0, dims: [1, 1, 4], data: new Float32Array(4) });
    await expect(engine.step(frame)).rejects.toMatchObject({ name: 'EngineNotLoadedError' });
    expect(decodeFrame(frame).dims).toEqual([1, 1, 4]);
  });

  it('reports what computing cost: the time its steps took and the memory its weights and caches hold', async () => {
    const { dir, manifest } = await compileTo(await createSyntheticCheckpoint('tiny', 0), 'q4');
    const { dim, nLayers } = manifest.config;
    const engine = host();
    expect(await engine.usage()).toEqual({ computeMs: 0, memoryBytes: 0 });
    const report = await engine.load({ modelId: manifest.id, layers: { start: 0, end: nLayers }, source: await packageBytes(dir) });
    expect((await engine.usage()).memoryBytes).toBe(report.runtimeWeightBytes);
    for (let position = 0; position < 3; position++) {
      await engine.step(encodeFrame({ requestId: 'cost', step: position, position, dims: [1, 1, dim], data: syntheticHidden(1, dim, position + 1) }));
    }
    const usage = await engine.usage();
    expect(usage.computeMs).toBeGreaterThan(0);
    // The request's cache is held now, beside the weights.
    expect(usage.memoryBytes).toBeGreaterThan(report.runtimeWeightBytes);
    await engine.end('cost');
    expect((await engine.usage()).memoryBytes).toBe(report.runtimeWeightBytes);
  });
});
