import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as ort from 'onnxruntime-node';
import { createStage, splitLayers, UnknownRequestError } from './stage.ts';
import type { LayerRange, Stage } from './stage.ts';
import { decodeFrame, encodeFrame, FrameError } from '../protocol/frame.ts';
import { createSyntheticCheckpoint } from '../model/synthetic/checkpoint.ts';
import type { Manifest } from '../model/manifest.ts';
import type { ModelConfig } from '../model/config.ts';
import { compileTo, removeTempDirs } from '../../testkit/model-fixtures.ts';
import { openStageSession } from '../../worker/node/local-package.ts';
import { rejection } from '../../testkit/rejection.ts';

describe('splitLayers', () => {
  it('splits 12 layers into 4 stages of 3', () => {
    expect(splitLayers(12, 4)).toEqual([
      { start: 0, end: 3 },
      { start: 3, end: 6 },
      { start: 6, end: 9 },
      { start: 9, end: 12 },
    ]);
  });

  it('gives the remainder to the earlier stages: 5 layers in 2 stages are [0,3) and [3,5)', () => {
    expect(splitLayers(5, 2)).toEqual([
      { start: 0, end: 3 },
      { start: 3, end: 5 },
    ]);
    expect(splitLayers(7, 3).map((r) => r.end - r.start)).toEqual([3, 2, 2]);
  });

  it('allows one stage for all layers and one stage per layer', () => {
    expect(splitLayers(5, 1)).toEqual([{ start: 0, end: 5 }]);
    expect(splitLayers(3, 3)).toEqual([
      { start: 0, end: 1 },
      { start: 1, end: 2 },
      { start: 2, end: 3 },
    ]);
  });

  it('throws a RangeError for 0, negative, fractional or more stages than layers', () => {
    for (const stages of [0, -1, 1.5, 13, Number.NaN]) {
      expect(() => splitLayers(12, stages)).toThrow(RangeError);
    }
    expect(() => splitLayers(12, 13)).toThrow('stages must be an integer from 1 to 12 (the number of layers), got 13');
  });
});

/** Deterministic pseudo-random hidden states in [-2, 2). */
function randomHidden(rows: number, dim: number, seed: number): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: rows * dim }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s / 2 ** 32) * 4 - 2;
  });
}

/** One step of a request: `rows` hidden rows starting at `position`. */
interface Step {
  position: number;
  rows: number;
  seed: number;
}

/** A 4-row prefill then three single-row decodes. */
const SEQUENCE: Step[] = [
  { position: 0, rows: 4, seed: 11 },
  { position: 4, rows: 1, seed: 12 },
  { position: 5, rows: 1, seed: 13 },
  { position: 6, rows: 1, seed: 14 },
];
const OTHER_SEQUENCE: Step[] = [
  { position: 0, rows: 2, seed: 21 },
  { position: 2, rows: 1, seed: 22 },
  { position: 3, rows: 1, seed: 23 },
  { position: 4, rows: 1, seed: 24 },
];


describe('stages', () => {
  let dir: string;
  let manifest: Manifest;
  let config: ModelConfig;
  const opened: Stage[] = [];
  /** layers 1..2 of the 3-layer tiny model: a stage that does not start at layer 0 */
  const LAYERS: LayerRange = { start: 1, end: 3 };

  async function newStage(layers = LAYERS): Promise<Stage> {
    const stage = createStage({ config, layers, session: await openStageSession(dir, manifest, layers) }, { ort });
    opened.push(stage);
    return stage;
  }

  const frameOf = (requestId: string, step: Step, index = 0, dims = [1, step.rows, config.dim]) =>
    encodeFrame({ requestId, step: index, position: step.position, dims, data: randomHidden(step.rows, config.dim, step.seed) });

  async function run(stage: Stage, requestId: string, steps: Step[]): Promise<Float32Array[]> {
    const outputs: Float32Array[] = [];
    for (const [i, step] of steps.entries()) outputs.push(decodeFrame(await stage.forward(frameOf(requestId, step, i))).data);
    return outputs;
  }

  /** Outputs of SEQUENCE and OTHER_SEQUENCE, each run alone on a fresh stage. */
  let solo: Float32Array[];
  let otherSolo: Float32Array[];

  beforeAll(async () => {
    ({ dir, manifest } = await compileTo(createSyntheticCheckpoint('tiny', 5), 'f32'));
    config = manifest.config;
    solo = await run(await newStage(), 'solo', SEQUENCE);
    otherSolo = await run(await newStage(), 'solo', OTHER_SEQUENCE);
  });

  afterAll(async () => {
    await Promise.all(opened.map((s) => s.release()));
    await removeTempDirs();
  });

  it('returns a frame of the same request, step, position and shape, with changed data', async () => {
    const stage = await newStage();
    const input = frameOf('r', SEQUENCE[0], 9);
    const out = decodeFrame(await stage.forward(input));
    expect(out.requestId).toBe('r');
    expect(out.step).toBe(9);
    expect(out.position).toBe(0);
    expect(out.dims).toEqual([1, 4, config.dim]);
    expect(Array.from(out.data)).toEqual(Array.from(solo[0]));
    expect(out.data.every(Number.isFinite)).toBe(true);
    expect(Array.from(out.data)).not.toEqual(Array.from(decodeFrame(input).data));
  });

  it('is deterministic: a second stage over the same layers gives bit-identical outputs', async () => {
    const again = await run(await newStage(), 'x', SEQUENCE);
    again.forEach((out, i) => expect(Array.from(out)).toEqual(Array.from(solo[i])));
  });

  /** Runs SEQUENCE on `stage` with `refuse` tried before every step; the outputs must equal the solo run. */
  async function expectServedDespite(stage: Stage, refuse: () => Promise<Error>, check: (err: Error) => void) {
    for (const [i, step] of SEQUENCE.entries()) {
      check(await refuse());
      const out = decodeFrame(await stage.forward(frameOf('live', step, i))).data;
      expect(Array.from(out)).toEqual(Array.from(solo[i]));
    }
    check(await refuse());
    expect(stage.activeRequests()).toBe(1);
  }

  it('steps a decoded frame (forwardFrame) exactly as it steps the same frame in bytes', async () => {
    const stage = await newStage();
    for (const [i, step] of SEQUENCE.entries()) {
      const out = await stage.forwardFrame({ requestId: 'decoded', step: i, position: step.position, dims: [1, step.rows, config.dim], data: randomHidden(step.rows, config.dim, step.seed) });
      expect(out.requestId).toBe('decoded');
      expect(out.step).toBe(i);
      expect(out.position).toBe(step.position);
      expect(out.dims).toEqual([1, step.rows, config.dim]);
      expect(Array.from(out.data)).toEqual(Array.from(solo[i]));
    }
  });

  it('refuses a decoded frame whose data does not fill its dims and still serves its requests', async () => {
    const stage = await newStage();
    await expectServedDespite(
      stage,
      () => rejection(stage.forwardFrame({ requestId: 'live', step: 0, position: 0, dims: [1, 2, config.dim], data: new Float32Array(config.dim) })),
      (err) => {
        expect(err).toBeInstanceOf(FrameError);
        expect(err.message).toBe(`dims [1,2,${config.dim}] hold ${2 * config.dim} values but data has ${config.dim}`);
      },
    );
  });

  it('refuses a frame with the wrong hidden size and still serves its requests', async () => {
    const stage = await newStage();
    await expectServedDespite(
      stage,
      () => rejection(stage.forward(encodeFrame({ requestId: 'live', step: 0, position: 0, dims: [1, 1, 32], data: new Float32Array(32) }))),
      (err) => {
        expect(err).toBeInstanceOf(FrameError);
        expect(err.name).toBe('FrameError');
        expect(err.message).toBe(`expected hidden state [1, seq, ${config.dim}], got [1,1,32]`);
      },
    );
  });

  it('refuses frames of the wrong rank or batch and still serves its requests', async () => {
    const stage = await newStage();
    const bad = [
      { dims: [1, config.dim], data: new Float32Array(config.dim) },
      { dims: [1, 1, 1, config.dim], data: new Float32Array(config.dim) },
      { dims: [2, 1, config.dim], data: new Float32Array(2 * config.dim) },
      { dims: [1, 0, config.dim], data: new Float32Array(0) },
    ];
    let n = 0;
    await expectServedDespite(
      stage,
      () => {
        const { dims, data } = bad[n++ % bad.length];
        return rejection(stage.forward(encodeFrame({ requestId: 'live', step: 0, position: 0, dims, data })));
      },
      (err) => {
        expect(err.name).toBe('FrameError');
        expect(err.message).toMatch(new RegExp(`^expected hidden state \\[1, seq, ${config.dim}\\], got \\[`));
      },
    );
  });

  it('refuses a first frame at a position other than 0 as an unknown request', async () => {
    const stage = await newStage();
    await expectServedDespite(
      stage,
      () => rejection(stage.forward(frameOf('stranger', { position: 3, rows: 1, seed: 1 }))),
      (err) => {
        expect(err).toBeInstanceOf(UnknownRequestError);
        expect(err.name).toBe('UnknownRequestError');
        expect(err.message).toBe('unknown request stranger (a new request starts at position 0)');
      },
    );
    expect(stage.activeRequests()).toBe(1);
  });

  it('refuses a frame whose position skips ahead (or goes back) and still serves the request', async () => {
    const stage = await newStage();
    for (const [i, step] of SEQUENCE.entries()) {
      if (i > 0) {
        for (const position of [step.position + 1, step.position + 50, step.position - 1]) {
          const err = await rejection(stage.forward(frameOf('live', { position, rows: 1, seed: 99 })));
          expect(err).toBeInstanceOf(FrameError);
          expect(err.name).toBe('FrameError');
          expect(err.message).toBe(`request live expected position ${step.position}, got ${position}`);
        }
      }
      const out = decodeFrame(await stage.forward(frameOf('live', step, i))).data;
      expect(Array.from(out)).toEqual(Array.from(solo[i]));
    }
    expect(stage.activeRequests()).toBe(1);
  });

  it('refuses positions beyond maxSeqLen, accepting a frame that ends exactly at it', async () => {
    const stage = await newStage();
    const max = config.maxSeqLen;
    await stage.forward(frameOf('long', { position: 0, rows: max - 6, seed: 31 }));
    const err = await rejection(stage.forward(frameOf('long', { position: max - 6, rows: 7, seed: 32 })));
    expect(err.name).toBe('FrameError');
    expect(err.message).toBe(`positions up to ${max + 1} exceed the context of ${max}`);
    // The refusal left the cache alone: the next 6 rows fill the context exactly.
    const out = decodeFrame(await stage.forward(frameOf('long', { position: max - 6, rows: 6, seed: 32 })));
    expect(out.dims).toEqual([1, 6, config.dim]);
    const full = await rejection(stage.forward(frameOf('long', { position: max, rows: 1, seed: 33 })));
    expect(full.message).toBe(`positions up to ${max + 1} exceed the context of ${max}`);
  });

  it('refuses a first frame longer than the context and still serves its requests', async () => {
    const stage = await newStage();
    const rows = config.maxSeqLen + 1;
    await expectServedDespite(
      stage,
      () => rejection(stage.forward(frameOf('huge', { position: 0, rows, seed: 41 }))),
      (err) => {
        expect(err.name).toBe('FrameError');
        expect(err.message).toBe(`positions up to ${rows} exceed the context of ${config.maxSeqLen}`);
      },
    );
  });

  it('does not register a request whose first frame is refused', async () => {
    const stage = await newStage();
    await rejection(stage.forward(frameOf('huge', { position: 0, rows: config.maxSeqLen + 1, seed: 41 })));
    await rejection(stage.forward(frameOf('stranger', { position: 5, rows: 1, seed: 1 })));
    await rejection(stage.forward(encodeFrame({ requestId: 'narrow', step: 0, position: 0, dims: [1, 1, 8], data: new Float32Array(8) })));
    expect(stage.activeRequests()).toBe(0);
  });

  it('keeps separate KV caches for two interleaved requests', async () => {
    const stage = await newStage();
    const a: Float32Array[] = [];
    const b: Float32Array[] = [];
    for (let i = 0; i < SEQUENCE.length; i++) {
      a.push(decodeFrame(await stage.forward(frameOf('a', SEQUENCE[i], i))).data);
      expect(stage.activeRequests()).toBe(i === 0 ? 1 : 2);
      b.push(decodeFrame(await stage.forward(frameOf('b', OTHER_SEQUENCE[i], i))).data);
      expect(stage.activeRequests()).toBe(2);
    }
    a.forEach((out, i) => expect(Array.from(out)).toEqual(Array.from(solo[i])));
    b.forEach((out, i) => expect(Array.from(out)).toEqual(Array.from(otherSolo[i])));
  });

  it('keeps requests apart when the same inputs arrive under two ids in another order', async () => {
    const stage = await newStage();
    const first = decodeFrame(await stage.forward(frameOf('p', SEQUENCE[0]))).data;
    // q starts later and catches up: q's prefill must not see p's cache.
    const p1 = decodeFrame(await stage.forward(frameOf('p', SEQUENCE[1], 1))).data;
    const q0 = decodeFrame(await stage.forward(frameOf('q', SEQUENCE[0]))).data;
    const q1 = decodeFrame(await stage.forward(frameOf('q', SEQUENCE[1], 1))).data;
    expect(Array.from(q0)).toEqual(Array.from(first));
    expect(Array.from(q1)).toEqual(Array.from(p1));
    expect(Array.from(p1)).toEqual(Array.from(solo[1]));
  });

  it('end(requestId) frees the request: the count drops and its next frame is unknown', async () => {
    const stage = await newStage();
    await stage.forward(frameOf('a', SEQUENCE[0]));
    await stage.forward(frameOf('b', OTHER_SEQUENCE[0]));
    expect(stage.activeRequests()).toBe(2);
    stage.end('a');
    expect(stage.activeRequests()).toBe(1);
    const err = await rejection(stage.forward(frameOf('a', SEQUENCE[1], 1)));
    expect(err.name).toBe('UnknownRequestError');
    expect(err.message).toBe('unknown request a (a new request starts at position 0)');
    // The other request is untouched, and ending an unknown id is a no-op.
    stage.end('never-seen');
    expect(stage.activeRequests()).toBe(1);
    expect(Array.from(decodeFrame(await stage.forward(frameOf('b', OTHER_SEQUENCE[1], 1))).data)).toEqual(Array.from(otherSolo[1]));
    // The id can start over from position 0 with a fresh cache.
    const restarted = await run(stage, 'a', SEQUENCE);
    restarted.forEach((out, i) => expect(Array.from(out)).toEqual(Array.from(solo[i])));
  });

  it('refuses a second frame for a request while its step is in flight, and the first still completes', async () => {
    const stage = await newStage();
    const first = stage.forward(frameOf('a', SEQUENCE[0]));
    const err = await rejection(stage.forward(frameOf('a', SEQUENCE[0])));
    expect(err.name).toBe('FrameError');
    expect(err.message).toMatch(/request a already has a step in flight/);
    expect(Array.from(decodeFrame(await first).data)).toEqual(Array.from(solo[0]));
    expect(stage.activeRequests()).toBe(1);
  });

  it('a request ended while its step runs stays ended', async () => {
    const stage = await newStage();
    const pending = stage.forward(frameOf('a', SEQUENCE[0]));
    stage.end('a');
    await pending;
    expect(stage.activeRequests()).toBe(0);
    const err = await rejection(stage.forward(frameOf('a', SEQUENCE[1], 1)));
    expect(err.name).toBe('UnknownRequestError');
  });

  it('a session run that fails leaves no request behind and the stage keeps serving', async () => {
    const layers = LAYERS;
    const real = await openStageSession(dir, manifest, layers);
    let failNext = true;
    const flaky = {
      inputNames: real.inputNames,
      outputNames: real.outputNames,
      release: () => real.release(),
      run: (feeds: Parameters<typeof real.run>[0]) => {
        if (failNext) {
          failNext = false;
          return Promise.reject(new Error('device lost'));
        }
        return real.run(feeds);
      },
    } as typeof real;
    const stage = createStage({ config, layers, session: flaky }, { ort });
    opened.push(stage);
    await expect(stage.forward(frameOf('a', SEQUENCE[0]))).rejects.toThrow('device lost');
    expect(stage.activeRequests()).toBe(0);
    const outputs = await run(stage, 'a', SEQUENCE);
    outputs.forEach((out, i) => expect(Array.from(out)).toEqual(Array.from(solo[i])));
  });

  it('releases its session only once the step running on it has finished', async () => {
    const layers = LAYERS;
    const real = await openStageSession(dir, manifest, layers);
    const order: string[] = [];
    let finish!: () => void;
    const held = new Promise<void>((resolve) => (finish = resolve));
    const slow = {
      inputNames: real.inputNames,
      outputNames: real.outputNames,
      release: async () => {
        order.push('release');
        await real.release();
      },
      run: async (feeds: Parameters<typeof real.run>[0]) => {
        await held;
        const out = await real.run(feeds);
        order.push('run');
        return out;
      },
    } as typeof real;
    const stage = createStage({ config, layers, session: slow }, { ort });
    const step = stage.forward(frameOf('a', SEQUENCE[0]));
    const released = stage.release();
    finish();
    await Promise.all([step, released]);
    expect(order).toEqual(['run', 'release']);
  });

  it('a stage over layers 0..0 and one over 1..2 compose to the stage over 0..2', async () => {
    const whole = await newStage({ start: 0, end: 3 });
    const first = await newStage({ start: 0, end: 1 });
    const rest = await newStage({ start: 1, end: 3 });
    for (const [i, step] of SEQUENCE.entries()) {
      const direct = decodeFrame(await whole.forward(frameOf('w', step, i))).data;
      const chained = decodeFrame(await rest.forward(await first.forward(frameOf('w', step, i)))).data;
      let diff = 0;
      for (let j = 0; j < direct.length; j++) diff = Math.max(diff, Math.abs(direct[j] - chained[j]));
      expect(diff).toBeLessThan(1e-5);
    }
  });
});
