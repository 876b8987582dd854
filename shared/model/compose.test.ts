import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as ort from 'onnxruntime-node';
import { composedIo, composeStageGraph, composeWholeModel, WHOLE_MODEL_FILE } from './compose.ts';
import { blockShards, shardOf } from './manifest.ts';
import type { Manifest } from './manifest.ts';
import type { Model } from './onnx/schema.ts';
import { createSyntheticCheckpoint } from './synthetic/checkpoint.ts';
import { compileTo, removeTempDirs } from '../../testkit/model-fixtures.ts';
import { openLocalPipeline, openSession, readGraph } from '../../worker/node/local-package.ts';
import type { OrtSession } from '../runtime/ort.ts';

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

describe('composed graphs', () => {
  let dir: string;
  let manifest: Manifest;
  let blocks: Model[];
  const sessions: OrtSession[] = [];
  const releases: (() => Promise<void>)[] = [];

  beforeAll(async () => {
    ({ dir, manifest } = await compileTo(createSyntheticCheckpoint('tiny', 7), 'f32'));
    blocks = await Promise.all(blockShards(manifest).map((b) => readGraph(dir, b.graph)));
  });

  afterAll(async () => {
    await Promise.all([...sessions.map((s) => s.release()), ...releases.map((r) => r())]);
    await removeTempDirs();
  });

  it('the whole-model graph gives the logits of the staged pipeline for a prefill and three decode steps', async () => {
    const { config } = manifest;
    const embed = await readGraph(dir, shardOf(manifest, 'embed').graph);
    const head = await readGraph(dir, shardOf(manifest, 'head').graph);
    const whole = await openSession({ model: composeWholeModel(embed, blocks, head), dir, name: WHOLE_MODEL_FILE });
    sessions.push(whole);
    const local = await openLocalPipeline(dir, { stages: 2 });
    releases.push(local.release);

    const steps = [[1, 17, 300, 42, 5], [7], [99], [256]];
    // Position-major caches the test keeps itself: [1, positions, kv, hd], grown by each step's new rows.
    const rows: Record<string, Float32Array> = {};
    for (let layer = 0; layer < config.nLayers; layer++) {
      for (const name of [composedIo.pastKey(layer), composedIo.pastValue(layer)]) rows[name] = new Float32Array(0);
    }
    const cacheFeeds = (positions: number) =>
      Object.fromEntries(Object.entries(rows).map(([name, data]) => [name, new ort.Tensor('float32', data, [1, positions, config.nKvHeads, config.headDim])]));
    const appended = (a: Float32Array, b: Float32Array) => {
      const out = new Float32Array(a.length + b.length);
      out.set(a);
      out.set(b, a.length);
      return out;
    };
    let position = 0;
    for (const [i, tokens] of steps.entries()) {
      const staged = await local.pipeline.step('compose', tokens, position, i);
      const out = await whole.run({
        [composedIo.inputIds]: new ort.Tensor('int64', BigInt64Array.from(tokens, BigInt), [1, tokens.length]),
        [composedIo.positions]: new ort.Tensor('int64', BigInt64Array.from(tokens, (_, j) => BigInt(position + j)), [1, tokens.length]),
        ...cacheFeeds(position),
      });
      const logits = out[composedIo.logits];
      expect(logits.dims).toEqual([1, tokens.length, config.vocabSize]);
      const last = (logits.data as Float32Array).subarray((tokens.length - 1) * config.vocabSize);
      expect(staged).toHaveLength(config.vocabSize);
      expect(maxAbsDiff(last, staged)).toBeLessThan(1e-4);
      // Not trivially equal: the logits vary across the vocabulary.
      expect(Math.max(...staged) - Math.min(...staged)).toBeGreaterThan(1);
      for (let layer = 0; layer < config.nLayers; layer++) {
        expect(out[composedIo.newKey(layer)].dims).toEqual([1, tokens.length, config.nKvHeads, config.headDim]);
        rows[composedIo.pastKey(layer)] = appended(rows[composedIo.pastKey(layer)], out[composedIo.newKey(layer)].data as Float32Array);
        rows[composedIo.pastValue(layer)] = appended(rows[composedIo.pastValue(layer)], out[composedIo.newValue(layer)].data as Float32Array);
      }
      position += tokens.length;
    }
    local.pipeline.end('compose');
  });

  it('a stage graph for layers 1..2 takes hidden, positions, then past key and value per layer, in order', async () => {
    const stage = composeStageGraph(blocks.slice(1, 3), 1);
    const inputs = ['hidden', 'positions', 'past_key.1', 'past_value.1', 'past_key.2', 'past_value.2'];
    const outputs = ['hidden_out', 'new_key.1', 'new_value.1', 'new_key.2', 'new_value.2'];
    expect(stage.graph.input.map((v) => v.name)).toEqual(inputs);
    expect(stage.graph.output.map((v) => v.name)).toEqual(outputs);
    expect(stage.graph.name).toBe('stage-1-3');
    const session = await openSession({ model: stage, dir, name: 'stage 1..2' });
    sessions.push(session);
    expect(session.inputNames).toEqual(inputs);
    expect(session.outputNames).toEqual(outputs);
  });

  it('a last stage composed with the head gives the logits of the last row, as the stage and a separate head do', async () => {
    const { config } = manifest;
    const headModel = await readGraph(dir, shardOf(manifest, 'head').graph);
    const withHead = composeStageGraph(blocks.slice(1), 1, headModel);
    expect(withHead.graph.output.map((v) => v.name)).toEqual(['logits', 'new_key.1', 'new_value.1', 'new_key.2', 'new_value.2']);
    const [fused, stage, head] = await Promise.all([
      openSession({ model: withHead, dir, name: 'stage 1..2 and head' }),
      openSession({ model: composeStageGraph(blocks.slice(1), 1), dir, name: 'stage 1..2' }),
      openSession(`${dir}/${shardOf(manifest, 'head').graph}`),
    ]);
    sessions.push(fused, stage, head);
    const rows = 5;
    const hidden = Float32Array.from({ length: rows * config.dim }, (_, i) => Math.sin(i * 0.37));
    const feeds = {
      [composedIo.hidden]: new ort.Tensor('float32', hidden, [1, rows, config.dim]),
      [composedIo.positions]: new ort.Tensor('int64', BigInt64Array.from({ length: rows }, (_, i) => BigInt(i)), [1, rows]),
      ...Object.fromEntries([1, 2].flatMap((l) => [composedIo.pastKey(l), composedIo.pastValue(l)]).map((n) => [n, new ort.Tensor('float32', new Float32Array(0), [1, 0, config.nKvHeads, config.headDim])])),
    };
    const fusedOut = await fused.run(feeds);
    expect(fusedOut[composedIo.logits].dims).toEqual([1, 1, config.vocabSize]);
    const stageOut = (await stage.run(feeds))[composedIo.hiddenOut].data as Float32Array;
    const lastRow = stageOut.subarray((rows - 1) * config.dim);
    const separate = (await head.run({ hidden: new ort.Tensor('float32', lastRow, [1, 1, config.dim]) }))[composedIo.logits].data as Float32Array;
    const logits = fusedOut[composedIo.logits].data as Float32Array;
    expect(maxAbsDiff(logits, separate)).toBeLessThan(1e-5);
    expect(Math.max(...logits) - Math.min(...logits)).toBeGreaterThan(1);
    expect(maxAbsDiff(fusedOut[composedIo.newKey(2)].data as Float32Array, (await stage.run(feeds))[composedIo.newKey(2)].data as Float32Array)).toBeLessThan(1e-6);
  });

  it('the whole-model graph takes input_ids, positions, then past key and value per layer, and gives logits first', async () => {
    const embed = await readGraph(dir, shardOf(manifest, 'embed').graph);
    const head = await readGraph(dir, shardOf(manifest, 'head').graph);
    const model = composeWholeModel(embed, blocks, head);
    const layers = [0, 1, 2];
    expect(model.graph.input.map((v) => v.name)).toEqual(['input_ids', 'positions', ...layers.flatMap((l) => [`past_key.${l}`, `past_value.${l}`])]);
    expect(model.graph.output.map((v) => v.name)).toEqual(['logits', ...layers.flatMap((l) => [`new_key.${l}`, `new_value.${l}`])]);
  });
});
