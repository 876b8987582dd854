import { describe, expect, it } from 'vitest';
import * as ort from 'onnxruntime-node';
import { compilePackage } from '../../model/compiler.ts';
import type { ModelConfig } from '../../model/config.ts';
import { HEAD_IO } from '../../model/graphs/embed-head.ts';
import type { WeightDtype } from '../../model/graphs/linear.ts';
import { shardOf } from '../../model/manifest.ts';
import { createMemorySink } from '../../model/memory-sink.ts';
import { decodeModel } from '../../model/onnx/schema.ts';
import { createSyntheticCheckpointFromConfig } from '../../model/synthetic/checkpoint.ts';
import { syntheticConfig } from '../../model/synthetic/presets.ts';
import { fillNormal } from '../../model/synthetic/random.ts';
import { openWasmHead } from '../wasm-head.ts';
import { openQuantizedHead } from './quantized-head.ts';

async function compiledHead(config: ModelConfig, dtype: WeightDtype) {
  const sink = createMemorySink('quantized-head test');
  const manifest = await compilePackage(createSyntheticCheckpointFromConfig(config, 5, 'quantized-head test'), { dtype }, { sink });
  const shard = shardOf(manifest, 'head');
  return { graph: sink.read(shard.graph), externalData: [{ path: shard.data, data: sink.read(shard.data) }] };
}

const logitsOf = async (session: { run: (feeds: Record<string, ort.Tensor>) => Promise<Record<string, ort.Tensor>> }, hidden: Float32Array, rows: number, dim: number) =>
  (await session.run({ [HEAD_IO.hidden]: new ort.Tensor('float32', hidden, [1, rows, dim]) }))[HEAD_IO.logits];

describe('quantized head', () => {
  for (const [dtype, tied] of [['q4', false], ['q8', true]] as const) {
    it(`computes the logits onnxruntime computes from a ${dtype} head${tied ? ' tied to the embedding' : ''}`, async () => {
      const config = { ...syntheticConfig('tiny'), tiedEmbeddings: tied };
      const head = await compiledHead(config, dtype);
      const reference = await ort.InferenceSession.create(head.graph, { externalData: head.externalData } as never);
      const quantized = await openQuantizedHead({ config, head: decodeModel(head.graph), externalData: head.externalData }, { ort });
      const hidden = fillNormal(new Float32Array(3 * config.dim), 4, 'quantized-head.hidden', 1, 0);
      const want = await logitsOf(reference, hidden, 3, config.dim);
      const got = await logitsOf(quantized, hidden, 3, config.dim);
      expect(got.dims).toEqual([1, 3, config.vocabSize]);
      const w = want.data as Float32Array;
      const g = got.data as Float32Array;
      let diff = 0;
      let scale = 0;
      for (let i = 0; i < w.length; i++) (diff = Math.max(diff, Math.abs(g[i] - w[i]))), (scale = Math.max(scale, Math.abs(w[i])));
      expect(diff / scale).toBeLessThan(1e-4);
      await reference.release();
    });
  }

  it('hands an f32 head to onnxruntime, which runs it as it is', async () => {
    const config = syntheticConfig('tiny');
    const head = await compiledHead(config, 'f32');
    await expect(openQuantizedHead({ config, head: decodeModel(head.graph), externalData: head.externalData }, { ort })).rejects.toThrow(
      expect.objectContaining({ name: 'UnsupportedGraphError', message: 'head: its linear is not quantized' }),
    );
    const session = await openWasmHead({ config, ...head }, { ...ort, InferenceSession: { create: (graph, options) => ort.InferenceSession.create(graph, { ...options, executionProviders: ['cpu'] }) } });
    const logits = await logitsOf(session as never, new Float32Array(config.dim).fill(0.5), 1, config.dim);
    expect(logits.dims).toEqual([1, 1, config.vocabSize]);
  });

  it('refuses a head whose classifier does not have the config\'s vocabulary', async () => {
    const config = syntheticConfig('tiny');
    const head = await compiledHead(config, 'q4');
    await expect(openQuantizedHead({ config: { ...config, vocabSize: config.vocabSize * 2 }, head: decodeModel(head.graph), externalData: head.externalData }, { ort })).rejects.toThrow(
      expect.objectContaining({ name: 'UnsupportedGraphError', message: `head: the linear reading lm_head.q4 is ${config.vocabSize}x${config.dim}, the config's is ${config.vocabSize * 2}x${config.dim}` }),
    );
  });
});
