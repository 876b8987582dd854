import { afterAll, describe, expect, it } from 'vitest';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { compileTo, removeTempDirs } from '../../testkit/model-fixtures.ts';
import { createSyntheticCheckpoint } from './synthetic/checkpoint.ts';
import { createEmbeddingTable } from './embedding.ts';
import { decodeModel } from './onnx/schema.ts';

afterAll(removeTempDirs);

describe('embedding lookup', () => {
  it('returns exactly what the package embed.onnx computes, for a prompt with repeated and edge ids', async () => {
    const { dir, manifest } = await compileTo(createSyntheticCheckpoint('tiny', 2), 'q4');
    const graph = await readFile(join(dir, 'embed.onnx'));
    const data = new Uint8Array(await readFile(join(dir, 'embed.data')));
    const table = createEmbeddingTable(manifest.config, decodeModel(new Uint8Array(graph)), data);
    const tokens = [0, 5, 5, manifest.config.vocabSize - 1, 1];
    const session = await ort.InferenceSession.create(join(dir, 'embed.onnx'));
    const out = await session.run({ input_ids: new ort.Tensor('int64', BigInt64Array.from(tokens, BigInt), [1, tokens.length]) });
    await session.release();
    expect(Array.from(table.lookup(tokens))).toEqual(Array.from(out.hidden.data as Float32Array));
  });

  it('refuses token ids outside the vocabulary by name', async () => {
    const { dir, manifest } = await compileTo(createSyntheticCheckpoint('tiny', 2), 'f32');
    const table = createEmbeddingTable(manifest.config, decodeModel(new Uint8Array(await readFile(join(dir, 'embed.onnx')))), new Uint8Array(await readFile(join(dir, 'embed.data'))));
    expect(() => table.lookup([3, manifest.config.vocabSize])).toThrow(expect.objectContaining({ name: 'UsageError', message: 'token id 512 is outside the vocabulary of 512' }));
    expect(() => table.lookup([-1])).toThrow(/token id -1 is outside/);
  });

  it('refuses an embed.data that does not hold the table the graph describes', async () => {
    const { dir, manifest } = await compileTo(createSyntheticCheckpoint('tiny', 2), 'f32');
    const graph = decodeModel(new Uint8Array(await readFile(join(dir, 'embed.onnx'))));
    expect(() => createEmbeddingTable(manifest.config, graph, new Uint8Array(100))).toThrow(expect.objectContaining({ name: 'PackageError' }));
  });
});
