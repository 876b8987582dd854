/**
 * The test-only stage faults (testkit/engine/stage-faults.ts) change what a shard engine computes, each in
 * the way it claims, and the validator's fingerprint check sees it: stories260K f32, a stage of
 * layers 1..3 fed the inputs it sees in a greedy generation (a prompt prefill, then decode
 * steps), checked step by step against a replay of all those inputs as one prefill on an honest
 * engine, as the validator replays (signaling-server/trust/replayer.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as ort from 'onnxruntime-node';
import { openCheckpoint } from '../../cli/open-checkpoint.ts';
import { openClientSide } from '../../worker/node/local-package.ts';
import { compileTo, packageBytes, removeTempDirs, STORIES_260K, TOK_512 } from '../model-fixtures.ts';
import type { ShardEngine, ShardSource } from '../../shared/engine/api.ts';
import { parseStageFault, StageFaultError } from './stage-fault.ts';
import type { StageFault } from './stage-fault.ts';
import { createFaultyEngine } from './faulty-engine.ts';
import { HEAD_IO } from '../../shared/model/graphs/embed-head.ts';
import type { Manifest } from '../../shared/model/manifest.ts';
import { decodeFrame, encodeFrame } from '../../shared/protocol/frame.ts';
import type { LayerRange } from '../../shared/runtime/stage.ts';
import { compareFingerprint, fingerprintHidden, thresholdsFor } from '../../shared/trust/fingerprint.ts';
import type { FingerprintVerdict } from '../../shared/trust/fingerprint.ts';
import type { EngineOrt } from '../../worker/engine.ts';
import { skippedLayer } from './stage-faults.ts';
import { maxRelativeError } from './reference-check.ts';
import { serveSteps } from './serve-steps.ts';
import { engineStage } from '../../shared/runtime/pipeline.ts';

const RANGE: LayerRange = { start: 1, end: 4 };
const DECODE_STEPS = 12;

interface Package {
  manifest: Manifest;
  source: ShardSource;
}

let f32: Package;
let q4: Package;
let dim: number;
/** what the stage under test is sent in a greedy generation: per step, [rows × dim] */
let inputs: Float32Array[];
/** the validator's view: all inputs replayed as one prefill on an honest engine, split by step */
let replay: Float32Array[];
let nextId = 0;

const engineFor = async (pkg: Package, layers: LayerRange, fault?: StageFault): Promise<ShardEngine> => {
  const engine = createFaultyEngine({ ort: ort as unknown as EngineOrt, defaultProviders: ['cpu'] }, fault);
  await engine.load({ modelId: pkg.manifest.id, layers, source: pkg.source });
  return engine;
};

/** Sends the steps through a chain of engines as one request, with its KV cache; returns each step's output. */
async function serve(chain: ShardEngine[], steps: Float32Array[]): Promise<Float32Array[]> {
  const outputs = await serveSteps(chain.map(engineStage), steps, `fault-${++nextId}`, dim);
  outputs.forEach((out, i) => expect(out.dims).toEqual([1, rowsOf(steps[i]), dim]));
  return outputs.map((out) => out.data.slice());
}

const rowsOf = (data: Float32Array) => data.length / dim;

/** Each step's output fingerprinted as the serving stage commits it, checked against the replay. */
const verdicts = (outputs: Float32Array[]): FingerprintVerdict[] =>
  outputs.map((out, i) => compareFingerprint(fingerprintHidden(out, rowsOf(out), dim), replay[i], thresholdsFor('f32')));

const distances: Record<string, { steps: string; failed: string; match: number; valueError: number }> = {};
/** A cheat's closest step to passing (highest match, lowest value error); an honest run's worst step. */
function record(name: string, vs: FingerprintVerdict[], touched: number[], honest = false) {
  const t = touched.map((i) => vs[i]);
  const match = t.map((v) => v.worstMatch.matchFraction);
  const value = t.map((v) => v.worstValue.valueError);
  distances[name] = {
    steps: `${touched[0]}..${touched[touched.length - 1]}`,
    failed: `${t.filter((v) => !v.ok).length}/${t.length}`,
    match: honest ? Math.min(...match) : Math.max(...match),
    valueError: +(honest ? Math.max(...value) : Math.min(...value)).toPrecision(3),
  };
}
const allSteps = () => inputs.map((_, i) => i);

beforeAll(async () => {
  for (const dtype of ['f32', 'q4'] as const) {
    const { dir, manifest } = await compileTo(await openCheckpoint(STORIES_260K, { tokenizer: TOK_512, seed: 0 }), dtype);
    const pkg = { manifest, source: await packageBytes(dir) };
    if (dtype === 'f32') f32 = pkg;
    else q4 = pkg;
    if (dtype !== 'f32') continue;

    // A greedy generation through honest engines 0, 1..3, 4, recording what 1..3 is sent.
    dim = manifest.config.dim;
    const client = await openClientSide(dir);
    const [before, stage, after] = await Promise.all([{ start: 0, end: RANGE.start }, RANGE, { start: RANGE.end, end: manifest.config.nLayers }].map((l) => engineFor(pkg, l)));
    inputs = [];
    let tokens = client.tokenizer.tokenizer.encode('Once upon a time');
    let position = 0;
    for (let step = 0; step <= DECODE_STEPS; step++) {
      const frame = await before.step(encodeFrame({ requestId: 'trace', step, position, dims: [1, tokens.length, dim], data: client.embedding.lookup(tokens) }));
      inputs.push(decodeFrame(frame).data.slice());
      const last = decodeFrame(await after.step(await stage.step(frame))).data.subarray((tokens.length - 1) * dim);
      const logits = (await client.head.run({ [HEAD_IO.hidden]: new ort.Tensor('float32', last, [1, 1, dim]) }))[HEAD_IO.logits].data as Float32Array;
      position += tokens.length;
      tokens = [logits.indexOf(Math.max(...logits))];
    }
    await client.head.release();

    const whole = new Float32Array(inputs.reduce((n, x) => n + x.length, 0));
    inputs.reduce((at, x) => (whole.set(x, at), at + x.length), 0);
    const [replayed] = await serve([await engineFor(pkg, RANGE)], [whole]);
    let at = 0;
    replay = inputs.map((x) => replayed.subarray(at, (at += x.length)));
  }
}, 30_000);

afterAll(async () => {
  console.log(`\nfingerprints against the honest replay (stories260K f32, layers 1..3; thresholds ${JSON.stringify(thresholdsFor('f32'))}): a cheat's closest step to passing, the honest run's worst`);
  console.table(distances);
  await removeTempDirs();
});

describe('stage faults in the shard engine', () => {
  it('an engine loaded without a fault passes the fingerprint check on every step, prefill and decode', async () => {
    expect(rowsOf(inputs[0])).toBeGreaterThan(1);
    expect(inputs.slice(1).map(rowsOf)).toEqual(Array(DECODE_STEPS).fill(1));
    const vs = verdicts(await serve([await engineFor(f32, RANGE)], inputs));
    record('honest (no fault)', vs, allSteps(), true);
    expect(vs.filter((v) => !v.ok)).toHaveLength(0);
  });

  it('other-model: the layers run on weights that are not the package\'s, and every step fails', async () => {
    const outputs = await serve([await engineFor(f32, RANGE, { kind: 'other-model' })], inputs);
    expect(outputs.every((o) => o.every(Number.isFinite))).toBe(true);
    const vs = verdicts(outputs);
    record('other-model', vs, allSteps());
    expect(vs.filter((v) => v.ok)).toHaveLength(0);
  });

  it('q4-weights: an f32 package runs exactly what the compiler\'s q4 package computes, and every step fails', async () => {
    const outputs = await serve([await engineFor(f32, RANGE, { kind: 'q4-weights' })], inputs);
    const compiledQ4 = await serve([await engineFor(q4, RANGE)], inputs);
    outputs.forEach((o, i) => expect(maxRelativeError(o, compiledQ4[i])).toBeLessThan(1e-5));
    const vs = verdicts(outputs);
    record('q4-weights', vs, allSteps());
    expect(vs.filter((v) => v.ok)).toHaveLength(0);
  });

  it('q4-weights is refused by name on a package that is not f32', async () => {
    const err = await engineFor(q4, RANGE, { kind: 'q4-weights' }).catch((e: Error) => e);
    expect(err).toMatchObject({ name: 'StageFaultError', message: expect.stringMatching(/this package is q4/) });
  });

  it('skip-layer: the middle layer of three is not run (layers 1 then 3), and every step fails', async () => {
    expect(skippedLayer(RANGE)).toBe(2);
    const outputs = await serve([await engineFor(f32, RANGE, { kind: 'skip-layer' })], inputs);
    const withoutTwo = await serve([await engineFor(f32, { start: 1, end: 2 }), await engineFor(f32, { start: 3, end: 4 })], inputs);
    outputs.forEach((o, i) => expect(maxRelativeError(o, withoutTwo[i])).toBeLessThan(1e-6));
    const vs = verdicts(outputs);
    record('skip-layer', vs, allSteps());
    expect(vs.filter((v) => v.ok)).toHaveLength(0);
  });

  it('skip-layer skips the last of two layers, and a 1-layer stage returns its input', async () => {
    expect(skippedLayer({ start: 1, end: 3 })).toBe(2);
    const two = await serve([await engineFor(f32, { start: 1, end: 3 }, { kind: 'skip-layer' })], inputs);
    const first = await serve([await engineFor(f32, { start: 1, end: 2 })], inputs);
    two.forEach((o, i) => expect(maxRelativeError(o, first[i])).toBeLessThan(1e-6));
    const one = await serve([await engineFor(f32, { start: 2, end: 3 }, { kind: 'skip-layer' })], inputs);
    one.forEach((o, i) => expect(o).toEqual(inputs[i]));
  });

  it('noise: adds Gaussian noise of the stated size (σ × row RMS), and every step fails at σ = 0.01', async () => {
    const sigma = 0.01;
    const outputs = await serve([await engineFor(f32, RANGE, { kind: 'noise', sigma })], inputs);
    // The added noise, measured against the honest replay, per row relative to the row's RMS.
    const measured: number[] = [];
    outputs.forEach((o, i) => {
      for (let r = 0; r < rowsOf(o); r++) {
        let diff = 0;
        let sq = 0;
        for (let j = r * dim; j < (r + 1) * dim; j++) (diff += (o[j] - replay[i][j]) ** 2), (sq += replay[i][j] ** 2);
        measured.push(Math.sqrt(diff / sq));
      }
    });
    const mean = measured.reduce((a, b) => a + b, 0) / measured.length;
    expect(mean).toBeGreaterThan(sigma * 0.9);
    expect(mean).toBeLessThan(sigma * 1.1);
    const vs = verdicts(outputs);
    record(`noise σ = ${sigma}`, vs, allSteps());
    expect(vs.filter((v) => v.ok)).toHaveLength(0);
  });

  it('replay-old-output: from the second decode step on, returns the previous step\'s output, and those steps fail', async () => {
    const outputs = await serve([await engineFor(f32, RANGE, { kind: 'replay-old-output' })], inputs);
    for (let i = 2; i < outputs.length; i++) expect(outputs[i]).toEqual(outputs[1]);
    const vs = verdicts(outputs);
    // The prefill and the first decode step are computed honestly.
    expect(vs.slice(0, 2).every((v) => v.ok)).toBe(true);
    const touched = allSteps().slice(2);
    record('replay-old-output', vs, touched);
    expect(touched.filter((i) => vs[i].ok)).toEqual([]);
  });
});

describe('parseStageFault', () => {
  it('reads every fault kind in its URL form', () => {
    expect(parseStageFault('other-model')).toEqual({ kind: 'other-model' });
    expect(parseStageFault('q4-weights')).toEqual({ kind: 'q4-weights' });
    expect(parseStageFault('skip-layer')).toEqual({ kind: 'skip-layer' });
    expect(parseStageFault('noise:0.01')).toEqual({ kind: 'noise', sigma: 0.01 });
    expect(parseStageFault('noise:5e-3')).toEqual({ kind: 'noise', sigma: 0.005 });
    expect(parseStageFault('replay-old-output')).toEqual({ kind: 'replay-old-output' });
  });

  it('refuses unknown kinds and bad sizes with a StageFaultError naming the value', () => {
    const cases: [string, RegExp][] = [
      ['skip-layers', /bad stage fault "skip-layers": unknown fault "skip-layers"/],
      ['noise', /noise needs a size/],
      ['noise:', /noise needs a size/],
      ['noise:abc', /noise size "abc" is not a positive number/],
      ['noise:-0.1', /noise size "-0.1" is not a positive number/],
      ['noise:0', /noise size "0" is not a positive number/],
      ['noise:0.1:2', /too many ":" parts/],
      ['skip-layer:2', /skip-layer takes no value/],
      ['', /unknown fault ""/],
    ];
    for (const [text, message] of cases) {
      const err = (() => {
        try {
          parseStageFault(text);
        } catch (e) {
          return e;
        }
      })();
      expect(err).toBeInstanceOf(StageFaultError);
      expect(err).toMatchObject({ name: 'StageFaultError', message: expect.stringMatching(message) });
    }
  });
});
