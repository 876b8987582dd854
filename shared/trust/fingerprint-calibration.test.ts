/**
 * Calibrates the fingerprint thresholds (fingerprint.ts) on a real trained model: stories260K,
 * stage = layers 1..3 of 5, compiled to f32, q8 and q4 packages and run by in-process
 * onnxruntime stages exactly as a donor runs them (prompt prefill, then decode steps with the
 * KV cache, greedy tokens from the whole pipeline), for four requests.
 *
 * Honest: the validator replays all of the stage's inputs of a request as ONE prefill on a
 * fresh request, with onnxruntime's default thread count, with 1 intra-op thread, and with the
 * float64 TypeScript reference (a stand-in for another execution provider); every step must pass.
 *
 * Cheats, each of which must fail on every step it touches:
 *  (a) another model: (a1) a synthetic model of the same shape (seed 1), compiled to the same
 *      dtype; (a2) the stage's own trained layers in the wrong order (1, 3, 2), the cheapest
 *      "different model" that keeps every weight's statistics;
 *  (b) cheaper weights: q4 where the package is f32 or q8; for a q4 package, which has no
 *      cheaper dtype, q8 weights (a substitution the fingerprint must still see);
 *  (c) a skipped layer: the middle one (1, 3) and the last one (1, 2);
 *  (d) Gaussian noise of σ × the row's RMS added to the output; the smallest σ of a sweep that
 *      fails every step is reported;
 *  (e) a stale output: each decode step returns the previous step's output.
 * The table printed gives the honest worst figures and the cheats' best, i.e. the margins.
 */
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openCheckpoint } from '../../cli/open-checkpoint.ts';
import { openClientSide, openStageSession } from '../../worker/node/local-package.ts';
import type { ClientSide } from '../../worker/node/local-package.ts';
import { compileTo, removeTempDirs, STORIES_260K, TOK_512, track } from '../../testkit/model-fixtures.ts';
import { HEAD_IO } from '../model/graphs/embed-head.ts';
import type { Manifest } from '../model/manifest.ts';
import { createSyntheticCheckpointFromConfig } from '../model/synthetic/checkpoint.ts';
import { decodeFrame, encodeFrame } from '../protocol/frame.ts';
import { createStage } from '../runtime/stage.ts';
import type { LayerRange, Stage } from '../runtime/stage.ts';
import { referenceRange, referenceWeights } from '../../testkit/engine/reference-check.ts';
import { compareFingerprint, fingerprintHidden, thresholdsFor } from './fingerprint.ts';
import { concatSteps, seededNormal, splitSteps } from '../../testkit/seeded-steps.ts';
import { serveSteps } from '../../testkit/engine/serve-steps.ts';
import type { Fingerprint, FingerprintThresholds, FingerprintVerdict } from './fingerprint.ts';

type Dtype = 'f32' | 'q8' | 'q4';
const DTYPES: Dtype[] = ['f32', 'q8', 'q4'];
const RANGE: LayerRange = { start: 1, end: 4 };
const PROMPTS = ['Once upon a time', 'The little dog ran to the park and', 'Lily had a red ball', 'One day, a big bird'];
const DECODE_STEPS = 24;
const NOISE_SIGMAS = [0.0005, 0.001, 0.002, 0.003, 0.005, 0.01, 0.02];

/** One request as the stage under test saw it: per step, its input and output rows. */
interface Served {
  inputs: Float32Array[];
  outputs: Float32Array[];
  rows: number[];
}

interface Package {
  dir: string;
  manifest: Manifest;
}

const packages = {} as Record<Dtype, Package>;
const synthetic = {} as Record<Dtype, Package>;
let dim: number;
let nextId = 0;

beforeAll(async () => {
  for (const dtype of DTYPES) {
    packages[dtype] = await compileTo(await openCheckpoint(STORIES_260K, { tokenizer: TOK_512, seed: 0 }), dtype);
    const config = packages[dtype].manifest.config;
    synthetic[dtype] = await compileTo(createSyntheticCheckpointFromConfig(config, 1, 'synthetic:stories260K-shape'), dtype);
  }
  dim = packages.f32.manifest.config.dim;
});
afterAll(removeTempDirs);

async function openStage(pkg: Package, layers: LayerRange, threads?: number): Promise<Stage> {
  return createStage({ config: pkg.manifest.config, layers, session: await openStageSession(pkg.dir, pkg.manifest, layers, { threads }) }, { ort });
}

/** Runs step inputs through a chain of stages with a KV cache, as a donor does; returns each step's output. */
async function serve(chain: Stage[], inputs: Float32Array[]): Promise<Float32Array[]> {
  return (await serveSteps(chain, inputs, `cal-${++nextId}`, dim)).map((out) => out.data.slice());
}

/** Greedy generation through stages 0, RANGE, rest; records what the RANGE stage saw. */
async function generate(client: ClientSide, pkg: Package, prompt: string): Promise<Served> {
  const config = pkg.manifest.config;
  const before = await openStage(pkg, { start: 0, end: RANGE.start });
  const stage = await openStage(pkg, RANGE);
  const after = await openStage(pkg, { start: RANGE.end, end: config.nLayers });
  const served: Served = { inputs: [], outputs: [], rows: [] };
  const id = `gen-${++nextId}`;
  let tokens = client.tokenizer.tokenizer.encode(prompt);
  let position = 0;
  for (let step = 0; step <= DECODE_STEPS; step++) {
    let frame = encodeFrame({ requestId: id, step, position, dims: [1, tokens.length, dim], data: client.embedding.lookup(tokens) });
    frame = await before.forward(frame);
    served.inputs.push(decodeFrame(frame).data.slice());
    frame = await stage.forward(frame);
    served.outputs.push(decodeFrame(frame).data.slice());
    served.rows.push(tokens.length);
    const last = decodeFrame(await after.forward(frame)).data.subarray((tokens.length - 1) * dim);
    const logits = (await client.head.run({ [HEAD_IO.hidden]: new ort.Tensor('float32', last, [1, 1, dim]) }))[HEAD_IO.logits].data as Float32Array;
    let best = 0;
    for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
    position += tokens.length;
    tokens = [best];
  }
  await Promise.all([before, stage, after].map((s) => s.release()));
  return served;
}

/** Per-step verdicts of claimed outputs (fingerprinted as a stage would) against replayed steps. */
function verdicts(claimed: Float32Array[], replayed: Float32Array[], rows: number[], thresholds: FingerprintThresholds, steps?: number[]): FingerprintVerdict[] {
  return (steps ?? rows.map((_, i) => i)).map((i) => {
    const fp: Fingerprint = fingerprintHidden(claimed[i], rows[i], dim);
    return compareFingerprint(fp, replayed[i], thresholds);
  });
}

interface Summary {
  steps: number;
  failed: number;
  match: number;
  value: number;
  /** honest: smallest margin (≥ 0 passes); cheat: how far its closest step is from passing (> 0 fails) */
  margin: number;
}

function honestSummary(vs: FingerprintVerdict[]): Summary {
  return {
    steps: vs.length,
    failed: vs.filter((v) => !v.ok).length,
    match: Math.min(...vs.map((v) => v.worstMatch.matchFraction)),
    value: Math.max(...vs.map((v) => v.worstValue.valueError)),
    margin: Math.min(...vs.map((v) => Math.min(v.margins.matchFraction, v.margins.valueError))),
  };
}

function cheatSummary(vs: FingerprintVerdict[]): Summary {
  return {
    steps: vs.length,
    failed: vs.filter((v) => !v.ok).length,
    match: Math.max(...vs.map((v) => v.worstMatch.matchFraction)),
    value: Math.min(...vs.map((v) => v.worstValue.valueError)),
    margin: Math.min(...vs.map((v) => Math.max(-v.margins.matchFraction, -v.margins.valueError))),
  };
}

/** Seeded Gaussian noise, σ relative to each row's RMS. */
function addNoise(data: Float32Array, rows: number, sigma: number, seed: number): Float32Array {
  const normal = seededNormal(seed);
  const out = data.slice();
  for (let r = 0; r < rows; r++) {
    let sumSq = 0;
    for (let j = 0; j < dim; j++) sumSq += data[r * dim + j] ** 2;
    const rms = Math.sqrt(sumSq / dim);
    for (let j = 0; j < dim; j++) out[r * dim + j] += sigma * rms * normal();
  }
  return out;
}

const fmt = (s: Summary) => ({ steps: s.steps, failed: s.failed, match: +s.match.toFixed(3), valueError: +s.value.toPrecision(3), margin: +s.margin.toPrecision(3) });

describe.each(DTYPES)('fingerprints of a %s package (stories260K, layers 1..3)', (dtype) => {
  const thresholds = thresholdsFor(dtype);
  const honest: Record<string, Summary> = {};
  const cheats: Record<string, Summary> = {};
  const requests: { served: Served; replay: Float32Array[] }[] = [];
  let smallestNoise = Infinity;

  beforeAll(async () => {
    const pkg = packages[dtype];
    const config = pkg.manifest.config;
    const client = await openClientSide(pkg.dir);
    for (const prompt of PROMPTS) {
      const served = await generate(client, pkg, prompt);
      const input = concatSteps(served.inputs);
      const fresh = await openStage(pkg, RANGE);
      requests.push({ served, replay: splitSteps((await serve([fresh], [input]))[0], served.rows, dim) });
      await fresh.release();
    }
    await client.head.release();

    // Honest replays: default threads (above), 1 thread, the float64 reference on the package's weights.
    const oneThread = await openStage(pkg, RANGE, 1);
    const weights = await referenceWeights(track(await openCheckpoint(STORIES_260K, { tokenizer: TOK_512, seed: 0 })), dtype);
    const honestRuns: Record<string, FingerprintVerdict[]> = { 'replay, default threads': [], 'replay, 1 thread': [], 'replay, TS reference': [] };
    for (const { served, replay } of requests) {
      const input = concatSteps(served.inputs);
      honestRuns['replay, default threads'].push(...verdicts(served.outputs, replay, served.rows, thresholds));
      const single = splitSteps((await serve([oneThread], [input]))[0], served.rows, dim);
      honestRuns['replay, 1 thread'].push(...verdicts(served.outputs, single, served.rows, thresholds));
      const reference = splitSteps(referenceRange(config, weights, input, RANGE.start, RANGE.end), served.rows, dim);
      honestRuns['replay, TS reference'].push(...verdicts(served.outputs, reference, served.rows, thresholds));
    }
    await oneThread.release();
    for (const [name, vs] of Object.entries(honestRuns)) honest[name] = honestSummary(vs);

    // Cheats: each chain serves the same inputs with its own KV cache, as the cheating donor would.
    const substitute = dtype === 'q4' ? packages.q8 : packages.q4;
    const chains: Record<string, () => Promise<Stage[]>> = {
      '(a1) synthetic model, same shape': async () => [await openStage(synthetic[dtype], RANGE)],
      '(a2) own layers reordered 1,3,2': async () => [await openStage(pkg, { start: 1, end: 2 }), await openStage(pkg, { start: 3, end: 4 }), await openStage(pkg, { start: 2, end: 3 })],
      [`(b) ${dtype === 'q4' ? 'q8' : 'q4'} weights`]: async () => [await openStage(substitute, RANGE)],
      '(c1) skip middle layer': async () => [await openStage(pkg, { start: 1, end: 2 }), await openStage(pkg, { start: 3, end: 4 })],
      '(c2) skip last layer': async () => [await openStage(pkg, { start: 1, end: 3 })],
    };
    for (const [name, open] of Object.entries(chains)) {
      const chain = await open();
      const vs: FingerprintVerdict[] = [];
      for (const { served, replay } of requests) vs.push(...verdicts(await serve(chain, served.inputs), replay, served.rows, thresholds));
      await Promise.all(chain.map((s) => s.release()));
      cheats[name] = cheatSummary(vs);
    }
    for (const sigma of NOISE_SIGMAS) {
      const vs: FingerprintVerdict[] = [];
      requests.forEach(({ served, replay }, r) => {
        const noisy = served.outputs.map((o, i) => addNoise(o, served.rows[i], sigma, 1000 * r + i));
        vs.push(...verdicts(noisy, replay, served.rows, thresholds));
      });
      const s = cheatSummary(vs);
      cheats[`(d) noise σ = ${sigma} × RMS`] = s;
      if (s.failed === s.steps && sigma < smallestNoise) smallestNoise = sigma;
    }
    {
      const vs: FingerprintVerdict[] = [];
      for (const { served, replay } of requests) {
        // Decode step i returns step i-1's output (for step 1: the prompt's last row).
        const stale = served.outputs.map((_, i) => (i === 0 ? served.outputs[0] : served.outputs[i - 1].subarray(served.outputs[i - 1].length - dim)));
        vs.push(...verdicts(stale, replay, served.rows, thresholds, served.rows.map((_, i) => i).slice(1)));
      }
      cheats['(e) previous step output'] = cheatSummary(vs);
    }

    console.log(`\nfingerprint calibration, ${dtype} (k = 16, f16 values), thresholds ${JSON.stringify(thresholds)}`);
    console.table(Object.fromEntries(Object.entries(honest).map(([k, v]) => [`honest: ${k}`, fmt(v)])));
    console.table(Object.fromEntries(Object.entries(cheats).map(([k, v]) => [`cheat: ${k}`, fmt(v)])));
    console.log(`smallest noise failing every step: σ = ${smallestNoise} × RMS`);
  });

  it('the donor produced real decode steps: a prompt prefill then single-token steps', () => {
    for (const { served } of requests) {
      expect(served.rows[0]).toBeGreaterThan(1);
      expect(served.rows.slice(1)).toEqual(Array(DECODE_STEPS).fill(1));
    }
  });

  it('passes every honest step, whichever thread count or implementation replays it', () => {
    for (const [name, s] of Object.entries(honest)) expect({ name, failed: s.failed }).toEqual({ name, failed: 0 });
  });

  it('leaves honest replays 100× below the value threshold, room for other execution providers', () => {
    for (const [name, s] of Object.entries(honest)) expect({ name, small: s.value < thresholds.maxValueError / 100 }).toEqual({ name, small: true });
  });

  it('fails every step of another model, cheaper weights and a skipped layer', () => {
    for (const [name, s] of Object.entries(cheats)) if (/^\([abc]/.test(name)) expect({ name, failed: s.failed }).toEqual({ name, failed: s.steps });
  });

  it('fails every step with Gaussian noise of 0.5% of the RMS or more', () => {
    expect(smallestNoise).toBeLessThanOrEqual(0.005);
    for (const [name, s] of Object.entries(cheats)) {
      const sigma = Number(/σ = ([\d.]+)/.exec(name)?.[1]);
      if (sigma >= 0.005) expect({ name, failed: s.failed }).toEqual({ name, failed: s.steps });
    }
  });

  it('fails every decode step that returns the previous step output', () => {
    const s = cheats['(e) previous step output'];
    expect(s.failed).toBe(s.steps);
  });
});
