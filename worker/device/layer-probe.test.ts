import { describe, expect, it } from 'vitest';
import * as ort from 'onnxruntime-node';
import { composedIo } from '../../shared/model/compose.ts';
import { syntheticConfig } from '../../shared/model/synthetic/presets.ts';
import { MIN_SYNTHETIC_VOCAB } from '../../shared/model/synthetic/tokenizer.ts';
import { blockParameterCount } from '../../shared/model/config.ts';
import { probeConfig, probeLayer } from './layer-probe.ts';
import type { LayerProbeDeps } from './layer-probe.ts';
import type { OrtInferenceSession } from './ort-module.ts';
import { rejection } from '../../testkit/rejection.ts';

const positiveFinite = (x: number) => Number.isFinite(x) && x > 0;

describe('probeLayer', () => {
  it('times one 110m block (q4) per decode step on onnxruntime-node', async () => {
    const report = await probeLayer({ config: syntheticConfig('110m'), dtype: 'q4', executionProvider: 'cpu' }, { ort });
    expect(report).toMatchObject({
      shape: { dim: 768, hiddenDim: 2048, nHeads: 12, nKvHeads: 12, headDim: 64 },
      dtype: 'q4',
      executionProvider: 'cpu',
      decodeSteps: 16,
      prefillTokens: 16,
    });
    expect(positiveFinite(report.msPerLayerDecode)).toBe(true);
    expect(positiveFinite(report.prefillMs)).toBe(true);
    // 4-bit weights with an fp32 scale per 32: about 5/32 of the f32 bytes.
    expect(report.weightBytes).toBeLessThan(blockParameterCount(syntheticConfig('110m')) * 4 * 0.2);
  });

  it('feeds each step the KV cache of every earlier position, as a stage does', async () => {
    const pastLengths: number[] = [];
    const recording: LayerProbeDeps['openSession'] = async (graph, external, options) => {
      const session = await ort.InferenceSession.create(graph, { ...options, externalData: [external] });
      return {
        inputNames: session.inputNames,
        outputNames: session.outputNames,
        release: () => session.release(),
        run: ((feeds: Record<string, ort.Tensor>) => {
          pastLengths.push(Number(feeds[composedIo.pastKey(0)].dims[1]));
          expect(Number(feeds[composedIo.positions].data[0])).toBe(pastLengths.at(-1));
          return session.run(feeds);
        }) as OrtInferenceSession['run'],
      };
    };
    const report = await probeLayer({ config: syntheticConfig('tiny'), dtype: 'f32', executionProvider: 'cpu', prefillTokens: 5, decodeSteps: 3 }, { ort, openSession: recording });
    expect(pastLengths).toEqual([0, 5, 6, 7, 8]);
    expect(positiveFinite(report.msPerLayerDecode)).toBe(true);
  });

  it('compiles one layer with the smallest vocabulary, keeping the block shape', () => {
    const config = probeConfig(syntheticConfig('1b'));
    expect(config).toMatchObject({ nLayers: 1, vocabSize: MIN_SYNTHETIC_VOCAB, dim: 2048, hiddenDim: 5632, nHeads: 32, nKvHeads: 4, headDim: 64 });
  });

  it('refuses a prefill and decode that do not fit the context', async () => {
    const err = await rejection(probeLayer({ config: { ...syntheticConfig('tiny'), maxSeqLen: 20 }, dtype: 'f32', executionProvider: 'cpu', prefillTokens: 16, decodeSteps: 4 }, { ort }));
    expect(err.name).toBe('DeviceProbeError');
  });

  it('fails by name when the execution provider cannot open the block', async () => {
    const err = await rejection(
      probeLayer({ config: syntheticConfig('tiny'), dtype: 'q4', executionProvider: 'webgpu' }, { ort, openSession: () => Promise.reject(new Error('no adapter\nstack')) }),
    );
    expect(err.name).toBe('DeviceProbeError');
    expect(err.message).toBe('layer probe: onnxruntime (webgpu) cannot open a q4 block: no adapter');
  });
});
