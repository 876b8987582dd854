import { describe, expect, it } from 'vitest';
import * as ort from 'onnxruntime-web';
import { compilePackage } from '../shared/model/compiler.ts';
import { composedIo, composeStageGraph } from '../shared/model/compose.ts';
import type { WeightDtype } from '../shared/model/graphs/linear.ts';
import { blockShards } from '../shared/model/manifest.ts';
import { createMemorySink } from '../shared/model/memory-sink.ts';
import { AttributeType, decodeModel } from '../shared/model/onnx/schema.ts';
import type { Model } from '../shared/model/onnx/schema.ts';
import { createSyntheticCheckpointFromConfig } from '../shared/model/synthetic/checkpoint.ts';
import { syntheticConfig } from '../shared/model/synthetic/presets.ts';
import type { OrtModule } from '../shared/runtime/ort.ts';
import { openWasmStage } from './wasm-stage.ts';
import type { WasmKernelThreads } from './wasm-stage.ts';
import { spawnNodeGemvHelper } from './node/gemv-helpers.ts';

// onnxruntime-web's WASM provider, here under Node: what a tab's engine opens with.
ort.env.wasm.numThreads = 1;
const config = { ...syntheticConfig('tiny'), nLayers: 2 };

async function stage(dtype: WeightDtype, edit?: (block: Model) => void, kernels?: WasmKernelThreads) {
  const sink = createMemorySink('wasm-stage test');
  const manifest = await compilePackage(createSyntheticCheckpointFromConfig(config, 2, 'wasm-stage test'), { dtype }, { sink });
  const shards = blockShards(manifest);
  const blocks = shards.map((s) => decodeModel(sink.read(s.graph)));
  edit?.(blocks[0]);
  const externalData = shards.map((s) => ({ path: s.data, data: sink.read(s.data) }));
  return openWasmStage({ config, firstLayer: 0, blocks, graph: composeStageGraph(blocks, 0), externalData }, ort as unknown as OrtModule, {}, kernels);
}

/** One decode step from an empty cache: the hidden state out. */
async function step(session: Awaited<ReturnType<typeof stage>>['session']) {
  const empty = () => new ort.Tensor('float32', new Float32Array(0), [1, 0, config.nKvHeads, config.headDim]);
  const out = await session.run({
    [composedIo.hidden]: new ort.Tensor('float32', new Float32Array(config.dim).fill(0.5), [1, 1, config.dim]),
    [composedIo.positions]: new ort.Tensor('int64', BigInt64Array.of(0n), [1, 1]),
    [composedIo.pastKey(0)]: empty(),
    [composedIo.pastValue(0)]: empty(),
    [composedIo.pastKey(1)]: empty(),
    [composedIo.pastValue(1)]: empty(),
  } as never);
  return out[composedIo.hiddenOut].data as Float32Array;
}

describe('a stage opened on WASM', () => {
  it("runs q4 blocks on infermesh's kernels against the packed weights, and says so", async () => {
    const { session, extra } = await stage('q4');
    expect(extra?.note).toMatch(/^q4 blocks run on infermesh's WASM SIMD kernels, on one thread, against the packed weights \(\d+\.\d MiB\)$/);
    // Packed: about 4.5 bits per weight, not 32.
    const { dim, hiddenDim, nHeads, nKvHeads, headDim } = config;
    const weights = 2 * (2 * dim * nHeads * headDim + 2 * dim * nKvHeads * headDim + 3 * dim * hiddenDim);
    expect(extra!.bytes).toBeLessThan(weights * 0.7);
    expect((await step(session)).every(Number.isFinite)).toBe(true);
  });

  it('splits the kernels’ work among the threads it is given (a donor’s setting), with the same outputs', async () => {
    const [one, two] = [await stage('q4'), await stage('q4', undefined, { threads: 2, spawn: spawnNodeGemvHelper })];
    expect(two.extra?.note).toMatch(/^q4 blocks run on infermesh's WASM SIMD kernels, on 2 threads, against the packed weights/);
    expect(await step(two.session)).toEqual(await step(one.session));
    await two.session.release();
  });

  it('runs any other quantized graph on onnxruntime, unpacked, and names why, with the same outputs up to rounding', async () => {
    const softmaxAxis = (block: Model) => {
      const softmax = block.graph.node.find((n) => n.opType === 'Softmax')!;
      // -1 and 3 are the same axis of a rank-4 tensor: the same maths, not the compiler's graph.
      softmax.attribute = [{ name: 'axis', type: AttributeType.INT, i: 3 }];
    };
    const other = await stage('q4', softmaxAxis);
    expect(other.extra?.note).toMatch(/^block 0: not the compiler's q4 block: node \d+ is Softmax.*, so 14 quantized linears are unpacked to f32 for onnxruntime \(/);
    const packed = await stage('q4');
    const [a, b] = [await step(other.session), await step(packed.session)];
    let worst = 0;
    for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
    expect(worst).toBeLessThan(1e-3);
    await other.session.release();
  });

  it('opens f32 blocks on onnxruntime as they are', async () => {
    const { session, extra } = await stage('f32');
    expect(extra).toBeUndefined();
    expect((await step(session)).every(Number.isFinite)).toBe(true);
    await session.release();
  });
});
