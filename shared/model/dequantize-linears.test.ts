import { describe, expect, it } from 'vitest';
import * as ort from 'onnxruntime-node';
import { compileProbeBlock } from '../../worker/device/layer-probe.ts';
import { dequantizeLinears, DEQUANTIZED_WEIGHTS_FILE } from './dequantize-linears.ts';
import { BLOCK_IO } from './graphs/block.ts';
import { decodeModel, encodeModel } from './onnx/schema.ts';
import { syntheticConfig } from './synthetic/presets.ts';
import { fillNormal } from './synthetic/random.ts';

const config = syntheticConfig('tiny');

/** One 3-row step of a block from an empty cache: its hidden output. */
async function runBlock(graph: Uint8Array, externalData: { path: string; data: Uint8Array }[]): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(graph, { externalData } as never);
  const rows = 3;
  const { dim, nKvHeads, headDim } = config;
  const out = await session.run({
    [BLOCK_IO.hidden]: new ort.Tensor('float32', fillNormal(new Float32Array(rows * dim), 7, 'dequantize-linears.hidden', 1, 0), [1, rows, dim]),
    [BLOCK_IO.positions]: new ort.Tensor('int64', BigInt64Array.from([0n, 1n, 2n]), [1, rows]),
    [BLOCK_IO.pastKey]: new ort.Tensor('float32', new Float32Array(0), [1, 0, nKvHeads, headDim]),
    [BLOCK_IO.pastValue]: new ort.Tensor('float32', new Float32Array(0), [1, 0, nKvHeads, headDim]),
  });
  await session.release();
  return out[BLOCK_IO.hiddenOut].data as Float32Array;
}

describe('dequantizeLinears', () => {
  for (const dtype of ['q4', 'q8'] as const) {
    it(`turns a ${dtype} block's linears into f32 MatMuls that compute what MatMulNBits computes`, async () => {
      const block = await compileProbeBlock(config, dtype);
      const d = dequantizeLinears(decodeModel(block.graph), [block.data]);
      // q, k, v, o, and the three of the MLP.
      expect(d.rewritten).toBe(7);
      expect(d.model.graph.node.some((n) => n.opType === 'MatMulNBits')).toBe(false);
      expect(d.externalData.map((f) => f.path)).toEqual([block.data.path, DEQUANTIZED_WEIGHTS_FILE]);
      // Every weight of the seven in f32, against about 4 (or 8) bits plus a 32-bit scale per 32.
      const { dim, nHeads, nKvHeads, headDim, hiddenDim } = config;
      expect(d.f32Bytes).toBe(4 * (2 * dim * nHeads * headDim + 2 * dim * nKvHeads * headDim + 3 * dim * hiddenDim));
      expect(d.f32Bytes / d.quantizedBytes).toBeGreaterThan(dtype === 'q4' ? 6 : 3.4);
      const packed = await runBlock(block.graph, [block.data]);
      const unpacked = await runBlock(encodeModel(d.model), d.externalData);
      let worst = 0;
      for (let i = 0; i < packed.length; i++) worst = Math.max(worst, Math.abs(packed[i] - unpacked[i]));
      // The same products, summed in another order: float rounding only.
      expect(worst).toBeLessThan(1e-4);
      expect(unpacked.every(Number.isFinite)).toBe(true);
    });
  }

  it('hands an f32 graph back as it was', async () => {
    const block = await compileProbeBlock(config, 'f32');
    const model = decodeModel(block.graph);
    const d = dequantizeLinears(model, [block.data]);
    expect(d.rewritten).toBe(0);
    expect(d.model).toBe(model);
    expect(d.externalData).toEqual([block.data]);
  });

  it('names the external file an initializer needs when it was not handed in', async () => {
    const block = await compileProbeBlock(config, 'q4');
    expect(() => dequantizeLinears(decodeModel(block.graph), [])).toThrow(new RegExp(`external file ${block.data.path} was not handed in`));
  });
});
