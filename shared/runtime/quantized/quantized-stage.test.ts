import { describe, expect, it } from 'vitest';
import * as ort from 'onnxruntime-node';
import { compilePackage } from '../../model/compiler.ts';
import { composedIo, composeStageGraph } from '../../model/compose.ts';
import type { ModelConfig } from '../../model/config.ts';
import type { WeightDtype } from '../../model/graphs/linear.ts';
import { blockShards } from '../../model/manifest.ts';
import { createMemorySink } from '../../model/memory-sink.ts';
import { AttributeType, decodeModel, encodeModel } from '../../model/onnx/schema.ts';
import type { Model } from '../../model/onnx/schema.ts';
import { createSyntheticCheckpointFromConfig } from '../../model/synthetic/checkpoint.ts';
import { syntheticConfig } from '../../model/synthetic/presets.ts';
import { fillNormal } from '../../model/synthetic/random.ts';
import type { OrtSession } from '../ort.ts';
import { openQuantizedStage } from './quantized-stage.ts';

/** A tiny model's blocks as the compiler packs them. */
async function compiled(config: ModelConfig, dtype: WeightDtype) {
  const sink = createMemorySink('quantized-stage test');
  const manifest = await compilePackage(createSyntheticCheckpointFromConfig(config, 3, 'quantized-stage test'), { dtype }, { sink });
  const shards = blockShards(manifest);
  return { blocks: shards.map((s) => decodeModel(sink.read(s.graph))), externalData: shards.map((s) => ({ path: s.data, data: sink.read(s.data) })) };
}

/** Runs a 5-row prefill then 3 decode steps through layers 1..2, feeding the cache back as a stage does. */
async function steps(session: OrtSession, config: ModelConfig): Promise<Float32Array[]> {
  const { dim, nKvHeads, headDim } = config;
  const width = nKvHeads * headDim;
  const caches = new Map<string, Float32Array>();
  const outputs: Float32Array[] = [];
  let position = 0;
  for (const seq of [5, 1, 1, 1]) {
    const feeds: Record<string, ort.Tensor> = {
      [composedIo.hidden]: new ort.Tensor('float32', fillNormal(new Float32Array(seq * dim), position + 1, 'quantized-stage.hidden', 1, 0), [1, seq, dim]),
      [composedIo.positions]: new ort.Tensor('int64', BigInt64Array.from({ length: seq }, (_, i) => BigInt(position + i)), [1, seq]),
    };
    for (const layer of [1, 2]) {
      for (const name of [composedIo.pastKey(layer), composedIo.pastValue(layer)]) {
        const rows = caches.get(name) ?? new Float32Array(0);
        feeds[name] = new ort.Tensor('float32', rows, [1, rows.length / width, nKvHeads, headDim]);
      }
    }
    const out = await session.run(feeds);
    for (const layer of [1, 2]) {
      for (const [past, added] of [[composedIo.pastKey(layer), composedIo.newKey(layer)], [composedIo.pastValue(layer), composedIo.newValue(layer)]]) {
        const before = caches.get(past) ?? new Float32Array(0);
        const rows = out[added].data as Float32Array;
        expect(out[added].dims).toEqual([1, seq, nKvHeads, headDim]);
        const after = new Float32Array(before.length + rows.length);
        after.set(before);
        after.set(rows, before.length);
        caches.set(past, after);
        outputs.push(rows);
      }
    }
    expect(out[composedIo.hiddenOut].dims).toEqual([1, seq, dim]);
    outputs.push(out[composedIo.hiddenOut].data as Float32Array);
    position += seq;
  }
  return outputs;
}

/** Largest difference relative to the largest magnitude, over every output of every step. */
function relativeDifference(a: Float32Array[], b: Float32Array[]): number {
  let diff = 0;
  let scale = 0;
  a.forEach((x, i) => {
    expect(x.length).toBe(b[i].length);
    for (let j = 0; j < x.length; j++) {
      diff = Math.max(diff, Math.abs(x[j] - b[i][j]));
      scale = Math.max(scale, Math.abs(b[i][j]));
    }
  });
  return diff / scale;
}

const tiny = { ...syntheticConfig('tiny'), nLayers: 3 };
const variants: [string, ModelConfig][] = [
  ['grouped-query attention, q/k/v biases and an MLP width that is not a whole number of blocks', tiny],
  ['a sliding window shorter than the context', { ...tiny, slidingWindow: 3, qkvBias: false }],
];

describe('quantized stage', () => {
  for (const dtype of ['q4', 'q8'] as const) {
    for (const [what, config] of variants) {
      it(`computes what onnxruntime computes from the ${dtype} block graphs, with ${what}`, async () => {
        const { blocks, externalData } = await compiled(config, dtype);
        const range = blocks.slice(1, 3);
        const reference = await ort.InferenceSession.create(encodeModel(composeStageGraph(range, 1)), { externalData } as never);
        const stage = await openQuantizedStage({ config, firstLayer: 1, blocks: range, externalData }, { ort });
        expect(stage.inputNames).toEqual(expect.arrayContaining([composedIo.hidden, composedIo.positions, composedIo.pastKey(2)]));
        const want = await steps(reference, config);
        const got = await steps(stage, config);
        // int16 inputs to the linears, and sums in another order (measured 2e-5): the e2e tests' WASM
        // tolerance against the reference, and far below what separates q4 from f32.
        expect(relativeDifference(got, want)).toBeLessThan(1e-4);
        expect(got.flatMap((x) => Array.from(x)).every(Number.isFinite)).toBe(true);
        await reference.release();
      });
    }
  }

  it('refuses a block that is not the compiler\'s, naming where it differs', async () => {
    const { blocks, externalData } = await compiled(tiny, 'q4');
    const softmax = blocks[0].graph.node.findIndex((n) => n.opType === 'Softmax');
    const edited: Model = structuredClone(blocks[0]);
    edited.graph.node[softmax].attribute = [{ name: 'axis', type: AttributeType.INT, i: 2 }];
    await expect(openQuantizedStage({ config: tiny, firstLayer: 0, blocks: [edited], externalData }, { ort })).rejects.toThrow(
      expect.objectContaining({ name: 'UnsupportedGraphError', message: expect.stringMatching(new RegExp(`^block 0: not the compiler's q4 block: node ${softmax} is Softmax`)) }),
    );
  });

  it('refuses f32 blocks, which onnxruntime runs well', async () => {
    const { blocks, externalData } = await compiled(tiny, 'f32');
    await expect(openQuantizedStage({ config: tiny, firstLayer: 0, blocks: blocks.slice(0, 1), externalData }, { ort })).rejects.toThrow(
      expect.objectContaining({ name: 'UnsupportedGraphError', message: 'block 0: its linears are not quantized' }),
    );
  });
});
