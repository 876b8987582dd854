import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as ort from 'onnxruntime-node';
import { compileTo, removeTempDirs } from '../../testkit/model-fixtures.ts';
import { openSession, readGraph } from './local-package.ts';
import { blockShards } from '../../shared/model/manifest.ts';
import type { Manifest } from '../../shared/model/manifest.ts';
import { composedIo, composeStageGraph } from '../../shared/model/compose.ts';
import { createSyntheticCheckpoint } from '../../shared/model/synthetic/checkpoint.ts';
import type { OrtSession, OrtTensor } from '../../shared/runtime/ort.ts';
import { rejection } from '../../testkit/rejection.ts';

describe('an inline session', () => {
  let dir: string;
  let manifest: Manifest;
  const sessions: OrtSession[] = [];

  beforeAll(async () => {
    ({ dir, manifest } = await compileTo(createSyntheticCheckpoint('tiny', 3), 'f32'));
  });
  afterAll(async () => {
    await Promise.all(sessions.map((s) => s.release()));
    await removeTempDirs();
  });

  async function openBoth() {
    const blocks = await Promise.all(blockShards(manifest).slice(0, 2).map((b) => readGraph(dir, b.graph)));
    const model = composeStageGraph(blocks, 0);
    const [inline, standard] = await Promise.all([openSession({ model, dir, name: 'stage 0..1' }, { inline: true }), openSession({ model, dir, name: 'stage 0..1' })]);
    sessions.push(inline, standard);
    return { inline, standard };
  }

  function feeds(rows: number): Record<string, OrtTensor> {
    const { config } = manifest;
    return {
      [composedIo.hidden]: new ort.Tensor('float32', Float32Array.from({ length: rows * config.dim }, (_, i) => Math.cos(i * 0.21)), [1, rows, config.dim]),
      [composedIo.positions]: new ort.Tensor('int64', BigInt64Array.from({ length: rows }, (_, i) => BigInt(i)), [1, rows]),
      ...Object.fromEntries([0, 1].flatMap((l) => [composedIo.pastKey(l), composedIo.pastValue(l)]).map((n) => [n, new ort.Tensor('float32', new Float32Array(0), [1, 0, config.nKvHeads, config.headDim])])),
    };
  }

  it('has the graph’s input and output names and computes what the public session computes, bit for bit', async () => {
    const { inline, standard } = await openBoth();
    expect(inline.inputNames).toEqual(standard.inputNames);
    expect(inline.outputNames).toEqual(standard.outputNames);
    const [a, b] = [await inline.run(feeds(3)), await standard.run(feeds(3))];
    expect(Object.keys(a).sort()).toEqual([...standard.outputNames].sort());
    for (const name of standard.outputNames) {
      expect(a[name].dims).toEqual(b[name].dims);
      expect(Array.from(a[name].data as Float32Array)).toEqual(Array.from(b[name].data as Float32Array));
    }
  });

  it('names an input that is missing or not the graph’s, and keeps serving', async () => {
    const { inline } = await openBoth();
    const missing = feeds(1);
    delete missing[composedIo.pastValue(1)];
    expect((await rejection(inline.run(missing))).message).toBe(`input '${composedIo.pastValue(1)}' is missing in 'feeds'.`);
    expect((await rejection(inline.run({ ...feeds(1), extra: new ort.Tensor('float32', new Float32Array(1), [1]) }))).message).toBe(`'extra' is not an input of this graph.`);
    expect((await inline.run(feeds(1)))[composedIo.hiddenOut].dims).toEqual([1, 1, manifest.config.dim]);
  });

  it('reports a graph onnxruntime cannot load as a package error naming the graph', async () => {
    const err = await rejection(openSession(`${dir}/manifest.json`, { inline: true }));
    expect(err.name).toBe('PackageError');
    expect(err.message).toContain('onnxruntime cannot load graph');
  });
});
