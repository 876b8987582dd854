/**
 * Decode speed of a synthetic model through K in-process stages (K = 1, 2, 4) next to
 * onnxruntime running the whole model as one graph, in the same process and run. The staged
 * and whole-model runs are interleaved round by round so drift on the machine hits both alike.
 * The baseline is the whole-model graph under the same session settings as the stages; it
 * also runs under onnxruntime's default settings, reported beside it. Each round starts at a
 * different configuration: measured here, of two identical sessions alternating, the second
 * ran 5-8% faster, so a fixed order would bias the comparison by as much as it measures.
 */
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { compileCommand } from '../cli/compile-command.ts';
import { cacheDir } from '../cli/defaults.ts';
import { isCurrentPackage, openEmbedSession, openSession, openStageSession, readGraph, readPackageManifest } from '../cli/local-package.ts';
import type { WeightDtype } from '../shared/model/graphs/linear.ts';
import { blockShards, shardOf } from '../shared/model/manifest.ts';
import type { Manifest } from '../shared/model/manifest.ts';
import { composeWholeModel, composedIo } from '../shared/model/compose.ts';
import { EMBED_IO, HEAD_IO } from '../shared/model/graphs/embed-head.ts';
import { decodeFrame, encodeFrame } from '../shared/protocol/frame.ts';
import { createStage, splitLayers } from '../shared/runtime/stage.ts';
import type { Stage } from '../shared/runtime/stage.ts';
import { createKvRows } from '../shared/runtime/kv-cache.ts';
import type { KvRows } from '../shared/runtime/kv-cache.ts';
import type { OrtSession, OrtTensor } from '../shared/runtime/ort.ts';
import { machineInfo } from './compile-bench.ts';

const PROMPT_TOKENS = 16;
const STAGE_COUNTS = [1, 2, 4];

export interface LocalBenchOptions {
  preset: string;
  tokens: number;
  rounds: number;
  threads?: number;
}

async function benchPackage(preset: string, dtype: WeightDtype): Promise<string> {
  const dir = join(cacheDir(), 'bench', `synthetic-${preset}-${dtype}-seed0`);
  if (!(await isCurrentPackage(dir))) {
    process.stderr.write(`bench local: compiling synthetic:${preset} ${dtype} into ${dir}\n`);
    await compileCommand(`synthetic:${preset}`, { out: dir, dtype, seed: 0, quiet: true });
  }
  return dir;
}

function argmax(logits: Float32Array): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
  return best;
}

/** Prompt ids that avoid the special tokens (0..2) so the run never ends early. */
function promptIds(vocab: number): number[] {
  return Array.from({ length: PROMPT_TOKENS }, (_, i) => 3 + ((i * 7919) % (vocab - 3)));
}

interface Decoder {
  /** Runs the prompt then `steps` greedy decode steps; returns decode-only milliseconds. */
  run(steps: number): Promise<number>;
}

async function stagedDecoder(dir: string, manifest: Manifest, embed: OrtSession, head: OrtSession, k: number, threads?: number) {
  const { config } = manifest;
  const stages: Stage[] = [];
  for (const layers of splitLayers(config.nLayers, k)) {
    stages.push(createStage({ config, layers, session: await openStageSession(dir, manifest, layers, threads) }, { ort }));
  }
  let request = 0;
  const step = async (id: string, tokens: number[], position: number, n: number) => {
    const ids = new ort.Tensor('int64', BigInt64Array.from(tokens, BigInt), [1, tokens.length]);
    const h = (await embed.run({ [EMBED_IO.inputIds]: ids }))[EMBED_IO.hidden];
    let frame = encodeFrame({ requestId: id, step: n, position, dims: [1, tokens.length, config.dim], data: h.data as Float32Array });
    for (const s of stages) frame = await s.forward(frame);
    const last = decodeFrame(frame).data.subarray((tokens.length - 1) * config.dim);
    return (await head.run({ [HEAD_IO.hidden]: new ort.Tensor('float32', last, [1, 1, config.dim]) }))[HEAD_IO.logits].data as Float32Array;
  };
  const decoder: Decoder & { release(): Promise<void> } = {
    release: () => Promise.all(stages.map((s) => s.release())).then(() => undefined),
    async run(steps) {
      const id = `bench-${++request}`;
      const prompt = promptIds(config.vocabSize);
      let token = argmax(await step(id, prompt, 0, 0));
      const t = performance.now();
      for (let i = 0; i < steps; i++) token = argmax(await step(id, [token], prompt.length + i, i + 1));
      const ms = performance.now() - t;
      for (const s of stages) s.end(id);
      return ms;
    },
  };
  return decoder;
}

function wholeDecoder(manifest: Manifest, session: OrtSession): Decoder {
  const { config } = manifest;
  const width = config.nKvHeads * config.headDim;
  const tensor = (rows: KvRows) => new ort.Tensor('float32', rows.view(), [1, rows.length, config.nKvHeads, config.headDim]);
  return {
    async run(steps) {
      const cache = Array.from({ length: config.nLayers }, () => [createKvRows(width, config.maxSeqLen), createKvRows(width, config.maxSeqLen)]);
      const step = async (tokens: number[], position: number) => {
        const feeds: Record<string, OrtTensor> = {
          [composedIo.inputIds]: new ort.Tensor('int64', BigInt64Array.from(tokens, BigInt), [1, tokens.length]),
          [composedIo.positions]: new ort.Tensor('int64', BigInt64Array.from(tokens, (_, i) => BigInt(position + i)), [1, tokens.length]),
        };
        cache.forEach(([k, v], i) => {
          feeds[composedIo.pastKey(i)] = tensor(k);
          feeds[composedIo.pastValue(i)] = tensor(v);
        });
        const out = await session.run(feeds);
        cache.forEach(([k, v], i) => {
          k.append(out[composedIo.newKey(i)].data as Float32Array);
          v.append(out[composedIo.newValue(i)].data as Float32Array);
        });
        const logits = out[composedIo.logits].data as Float32Array;
        return logits.subarray((tokens.length - 1) * config.vocabSize);
      };
      const prompt = promptIds(config.vocabSize);
      let token = argmax(await step(prompt, 0));
      const t = performance.now();
      for (let i = 0; i < steps; i++) token = argmax(await step([token], prompt.length + i));
      return performance.now() - t;
    },
  };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function benchDtype(preset: string, dtype: WeightDtype, options: LocalBenchOptions) {
  const dir = await benchPackage(preset, dtype);
  const manifest = await readPackageManifest(dir);
  const open = (f: string) => openSession(join(dir, f), options.threads);
  const embed = await openEmbedSession(dir, manifest);
  const head = await open(shardOf(manifest, 'head').graph);
  const wholeModel = composeWholeModel(
    await readGraph(dir, shardOf(manifest, 'embed').graph),
    await Promise.all(blockShards(manifest).map((b) => readGraph(dir, b.graph))),
    await readGraph(dir, shardOf(manifest, 'head').graph),
  );
  const whole = await openSession({ model: wholeModel, dir, name: 'whole model' }, options.threads);
  const wholeDefaults = await openSession({ model: wholeModel, dir, name: 'whole model' }, options.threads, {});
  const staged = [];
  const runs: Record<string, Decoder> = { whole: wholeDecoder(manifest, whole), wholeOrtDefaults: wholeDecoder(manifest, wholeDefaults) };
  for (const k of STAGE_COUNTS) staged.push((runs[`stages${k}`] = await stagedDecoder(dir, manifest, embed, head, k, options.threads)));
  const times: Record<string, number[]> = Object.fromEntries(Object.keys(runs).map((k) => [k, []]));
  for (const r of Object.values(runs)) await r.run(4); // warm-up: first runs allocate arenas
  // Each round starts at a different configuration, so none always runs right after the same neighbour.
  const names = Object.keys(runs);
  for (let round = 0; round < options.rounds; round++) {
    for (let i = 0; i < names.length; i++) {
      const name = names[(round + i) % names.length];
      times[name].push(await runs[name].run(options.tokens));
    }
  }
  await Promise.all([embed, head, whole, wholeDefaults].map((s) => s.release()));
  await Promise.all(staged.map((s) => s.release()));
  const summarize = (name: string) => {
    const ms = median(times[name]) / options.tokens;
    return { tokensPerSecond: +(1000 / ms).toFixed(2), msPerToken: +ms.toFixed(3) };
  };
  // Ratios paired within each round (same minutes, same machine state), then the median.
  const pairedRatios = (name: string, baseline: string) => times[name].map((ms, round) => times[baseline][round] / ms);
  const ratioStats = (ratios: number[]) => ({
    median: +median(ratios).toFixed(4),
    min: +Math.min(...ratios).toFixed(4),
    max: +Math.max(...ratios).toFixed(4),
  });
  const wholeSummary = summarize('whole');
  const wholeOrtDefaults = summarize('wholeOrtDefaults');
  const stages = STAGE_COUNTS.map((k) => ({
    stages: k,
    ...summarize(`stages${k}`),
    /** median of per-round ratios (the headline), with the rounds' spread */
    vsWholeModel: ratioStats(pairedRatios(`stages${k}`, 'whole')),
    /** the same comparison as median tokens/s over median tokens/s */
    vsWholeModelRatioOfMedians: +(median(times.whole) / median(times[`stages${k}`])).toFixed(4),
    vsWholeModelOrtDefaults: ratioStats(pairedRatios(`stages${k}`, 'wholeOrtDefaults')),
  }));
  return { dtype, packageId: manifest.id, wholeModel: wholeSummary, wholeModelOrtDefaults: wholeOrtDefaults, stages };
}

export async function localBench(options: LocalBenchOptions) {
  const results = [];
  for (const dtype of ['q4', 'f32'] as const) {
    process.stderr.write(`bench local: synthetic:${options.preset} ${dtype}\n`);
    results.push(await benchDtype(options.preset, dtype, options));
  }
  const f32 = results.find((r) => r.dtype === 'f32')!;
  const stageOverheadRatio = f32.stages.find((s) => s.stages === 4)!.vsWholeModel.median;
  return {
    suite: 'local',
    model: `synthetic:${options.preset}`,
    decodeTokens: options.tokens,
    promptTokens: PROMPT_TOKENS,
    rounds: options.rounds,
    threads: options.threads ?? 'onnxruntime default',
    stageOverheadRatio,
    target: { stageOverheadRatio: 0.95 },
    machine: machineInfo(),
    results,
  };
}
