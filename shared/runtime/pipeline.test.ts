import { describe, expect, it } from 'vitest';
import * as ort from 'onnxruntime-node';
import { createPipeline, HEAD_IN_LAST_STAGE } from './pipeline.ts';
import type { StageLink } from './pipeline.ts';
import { decodeFrame, encodeFrame, FrameError } from '../protocol/frame.ts';
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
