import { describe, expect, it } from 'vitest';
import * as ort from 'onnxruntime-node';
import { createPipeline, HEAD_IN_LAST_STAGE } from './pipeline.ts';
import type { StageLink } from './pipeline.ts';
import { decodeFrame, encodeFrame, FrameError } from '../protocol/frame.ts';
import type { HiddenFrame } from '../protocol/frame.ts';
import type { ModelConfig } from '../model/config.ts';
import type { Tokenizer } from '../tokenizer/tokenizer.ts';

const config = { dim: 4, vocabSize: 6, maxSeqLen: 32 } as ModelConfig;
const embedding = { lookup: (tokens: number[]) => Float32Array.from(tokens.flatMap((t) => [t, t, t, t])) };
const tokenizer = {} as Tokenizer;

/** A last stage that answers each frame with `answer(frame's rows)`. */
const lastStage = (answer: (rows: number) => { dims: number[]; data: Float32Array }): StageLink => ({
  async forward(bytes) {
    const frame = decodeFrame(bytes);
    return encodeFrame({ ...frame, ...answer(frame.dims[1]) });
  },
  end: () => undefined,
});

describe('a pipeline whose last stage runs the head', () => {
  it('returns the last stage’s logits of the last row as they are', async () => {
    const logits = Float32Array.of(0.5, -1, 3, 0, 2, 1);
    const pipeline = createPipeline({ config, tokenizer, stopIds: [], embedding, head: HEAD_IN_LAST_STAGE, stages: [lastStage(() => ({ dims: [1, 1, 6], data: logits }))] }, { ort });
    expect(await pipeline.step('r', [1, 2, 3], 0, 0)).toEqual(logits);
  });

  it('refuses hidden states where logits were due, naming the shape it got', async () => {
    const pipeline = createPipeline(
      { config, tokenizer, stopIds: [], embedding, head: HEAD_IN_LAST_STAGE, stages: [lastStage((rows) => ({ dims: [1, rows, 4], data: new Float32Array(rows * 4) }))] },
      { ort },
    );
    const step = pipeline.step('r', [1, 2, 3], 0, 0);
    await expect(step).rejects.toBeInstanceOf(FrameError);
    await expect(pipeline.step('r', [1, 2, 3], 0, 0)).rejects.toThrow('the last stage should return logits [1, 1, 6], got [1,3,4]');
  });
});

describe('a pipeline of in-process stages and byte links', () => {
  /** Applies `step` to each frame; a `decoded` stage also takes frames as objects, as an in-process Stage does. */
  const link = (step: (frame: HiddenFrame) => HiddenFrame, decoded: boolean, seen: string[]): StageLink => ({
    async forward(bytes) {
      seen.push('bytes');
      return encodeFrame(step(decodeFrame(bytes)));
    },
    ...(decoded ? { forwardFrame: async (frame: HiddenFrame) => (seen.push('decoded'), step(frame)) } : {}),
    end: () => undefined,
  });
  const add = (n: number) => (frame: HiddenFrame) => ({ ...frame, data: frame.data.map((v) => v + n) });
  /** logits [1, 1, 6], each the sum of the hidden state it got */
  const sum = (frame: HiddenFrame) => ({ ...frame, dims: [1, 1, 6], data: new Float32Array(6).fill(frame.data.reduce((a, b) => a + b, 0)) });
  const logitsThrough = (decoded: boolean[], seen: string[] = []) =>
    createPipeline({ config, tokenizer, stopIds: [], embedding, head: HEAD_IN_LAST_STAGE, stages: [add(1), add(10), add(100), sum].map((f, i) => link(f, decoded[i], seen)) }, { ort }).step('r', [2], 0, 0);

  it('hands decoded frames to stages that take them and bytes to the others, computing the same', async () => {
    const seen: string[] = [];
    const mixed = await logitsThrough([true, false, true, true], seen);
    expect(seen).toEqual(['decoded', 'bytes', 'decoded', 'decoded']);
    expect(Array.from(mixed)).toEqual(new Array(6).fill(4 * (2 + 111)));
    expect(Array.from(await logitsThrough([false, false, false, false]))).toEqual(Array.from(mixed));
    expect(Array.from(await logitsThrough([false, true, true, false]))).toEqual(Array.from(mixed));
  });
});

describe('a pipeline with a beforeStep', () => {
  it('awaits it before each step, before any stage sees the frame', async () => {
    const events: string[] = [];
    const stage: StageLink = { forward: async (bytes) => (events.push('stage'), lastStage(() => ({ dims: [1, 1, 6], data: new Float32Array(6) })).forward(bytes)), end: () => undefined };
    const beforeStep = async () => {
      await new Promise((resolve) => setImmediate(resolve));
      events.push('turn');
    };
    const pipeline = createPipeline({ config, tokenizer, stopIds: [], embedding, head: HEAD_IN_LAST_STAGE, stages: [stage] }, { ort, beforeStep });
    await pipeline.step('r', [1, 2], 0, 0);
    await pipeline.step('r', [3], 2, 1);
    expect(events).toEqual(['turn', 'stage', 'turn', 'stage']);
  });
});
