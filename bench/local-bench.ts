/**
 * Decode speed of a synthetic model through K in-process stages (K = 1, 2, 4) next to
 * onnxruntime running the whole model as one graph, in the same process and run, interleaved
 * round by round (bench/decoders.ts). The baseline is the whole-model graph under the same
 * session settings as the stages; it also runs under onnxruntime's defaults, reported beside it.
 */
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { ensureSyntheticPackage } from '../cli/compile-command.ts';
import { cacheDir } from '../cli/defaults.ts';
import { openEmbedding, openSession, openStageSession, readGraph } from '../cli/local-package.ts';
import { readPackageManifest } from '../cli/package-files.ts';
import type { WeightDtype } from '../shared/model/graphs/linear.ts';
import { shardOf } from '../shared/model/manifest.ts';
import type { Manifest } from '../shared/model/manifest.ts';
import { composePackageWholeModel } from '../shared/model/compose.ts';
import { createStage, splitLayers } from '../shared/runtime/stage.ts';
import type { Stage } from '../shared/runtime/stage.ts';
import { cpuKvStoreFactory } from '../shared/runtime/kv-cache.ts';
import { machineInfo } from './machine.ts';
import { pairedRatio, PROMPT_TOKENS, speed, stagesDecoder, timeInterleaved, wholeModelDecoder } from './decoders.ts';
import type { Decoder } from './decoders.ts';

const STAGE_COUNTS = [1, 2, 4];

export interface LocalBenchOptions {
  preset: string;
  tokens: number;
  rounds: number;
  threads?: number;
}

/** A synthetic package in the bench cache, compiled on first use (or when the format changed). */
export function benchPackage(preset: string, dtype: WeightDtype): Promise<string> {
  return ensureSyntheticPackage(join(cacheDir(), 'bench', `synthetic-${preset}-${dtype}-seed0`), { preset, dtype, seed: 0 }, { quiet: true });
}

export function wholeModelGraph(dir: string, manifest: Manifest) {
  return composePackageWholeModel(manifest, (graph) => readGraph(dir, graph));
}

async function benchDtype(preset: string, dtype: WeightDtype, options: LocalBenchOptions) {
  const dir = await benchPackage(preset, dtype);
  const manifest = await readPackageManifest(dir);
  const { config } = manifest;
  const embedding = await openEmbedding(dir, manifest);
  const head = await openSession(join(dir, shardOf(manifest, 'head').graph), options.threads);
  const model = await wholeModelGraph(dir, manifest);
  const whole = await openSession({ model, dir, name: 'whole model' }, options.threads);
  const wholeDefaults = await openSession({ model, dir, name: 'whole model' }, options.threads, {});
  const kv = cpuKvStoreFactory(config, ort);
  const stages: Stage[] = [];
  const runs: Record<string, Decoder> = {
    whole: wholeModelDecoder({ config, ort, session: whole, kv }),
    wholeOrtDefaults: wholeModelDecoder({ config, ort, session: wholeDefaults, kv }),
  };
  for (const k of STAGE_COUNTS) {
    const split: Stage[] = [];
    for (const layers of splitLayers(config.nLayers, k)) {
      split.push(createStage({ config, layers, session: await openStageSession(dir, manifest, layers, options.threads) }, { ort }));
    }
    stages.push(...split);
    runs[`stages${k}`] = stagesDecoder({ config, ort, embedding, head, stages: split });
  }
  const times = await timeInterleaved(runs, options);
  await Promise.all([head, whole, wholeDefaults].map((s) => s.release()));
  await Promise.all(stages.map((s) => s.release()));
  return {
    dtype,
    packageId: manifest.id,
    wholeModel: speed(times.whole, options.tokens),
    wholeModelOrtDefaults: speed(times.wholeOrtDefaults, options.tokens),
    stages: STAGE_COUNTS.map((k) => ({
      stages: k,
      ...speed(times[`stages${k}`], options.tokens),
      /** median of per-round ratios (the headline), with the rounds' spread */
      vsWholeModel: pairedRatio(times[`stages${k}`], times.whole),
      /** the same comparison as median tokens/s over median tokens/s */
      vsWholeModelRatioOfMedians: +(speed(times[`stages${k}`], options.tokens).tokensPerSecond / speed(times.whole, options.tokens).tokensPerSecond).toFixed(4),
      vsWholeModelOrtDefaults: pairedRatio(times[`stages${k}`], times.wholeOrtDefaults),
    })),
  };
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
