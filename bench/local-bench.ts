/**
 * Decode speed of a synthetic model through the local runner's pipeline of K in-process
 * stages (K = 1, 2, 4; the code path of `infermesh generate`) next to
 * onnxruntime running the whole model as one graph, in the same process and run, interleaved
 * token by token (testkit/engine/decoders.ts). The baseline is the whole-model graph under the same
 * session settings as the stages, run the same way: inline (worker/node/inline-session.ts), with one
 * turn of the event loop per token. It also runs as plain onnxruntime-node would (default
 * options, the public API's run), reported beside it: on its own in each round, since its
 * threads keep spinning after a run and would slow the others, and paired with them by round.
 */
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { ensureSyntheticPackage } from '../cli/compile-command.ts';
import { cacheDir } from '../cli/defaults.ts';
import { eventLoopTurn } from '../worker/node/inline-session.ts';
import { openLocalPipeline, openSession, readGraph } from '../worker/node/local-package.ts';
import { readPackageManifest } from '../worker/node/package-files.ts';
import type { WeightDtype } from '../shared/model/graphs/linear.ts';
import type { Manifest } from '../shared/model/manifest.ts';
import { composePackageWholeModel } from '../shared/model/compose.ts';
import { cpuKvStoreFactory } from '../shared/runtime/kv-cache.ts';
import { machineInfo } from './machine.ts';
import { pairedRatio, pipelineDecoder, PROMPT_TOKENS, speed, timeInterleaved, wholeModelDecoder } from '../testkit/engine/decoders.ts';
import type { Decoder } from '../testkit/engine/decoders.ts';

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
  const model = await wholeModelGraph(dir, manifest);
  const whole = await openSession({ model, dir, name: 'whole model' }, { threads: options.threads, inline: true });
  const wholeDefaults = await openSession({ model, dir, name: 'whole model' }, { threads: options.threads, base: {} });
  const kv = cpuKvStoreFactory(config, ort);
  const pipelines: { release(): Promise<void> }[] = [];
  const runs: Record<string, Decoder> = { whole: wholeModelDecoder({ config, ort, session: whole, kv, beforeStep: eventLoopTurn }) };
  for (const k of STAGE_COUNTS) {
    const local = await openLocalPipeline(dir, { stages: k, threads: options.threads });
    pipelines.push(local);
    runs[`stages${k}`] = pipelineDecoder(local.pipeline);
  }
  const times = await timeInterleaved(runs, { ...options, alone: { wholeOrtDefaults: wholeModelDecoder({ config, ort, session: wholeDefaults, kv }) } });
  await Promise.all([whole, wholeDefaults].map((s) => s.release()));
  await Promise.all(pipelines.map((p) => p.release()));
  return {
    dtype,
    packageId: manifest.id,
    wholeModel: speed(times.whole, options.tokens),
    /** timed alone in each round, after the others */
    wholeModelOrtDefaults: speed(times.wholeOrtDefaults, options.tokens),
    stages: STAGE_COUNTS.map((k) => ({
      stages: k,
      ...speed(times[`stages${k}`], options.tokens),
      /** median of per-round ratios (the headline), with the rounds' spread */
      vsWholeModel: pairedRatio(times[`stages${k}`], times.whole),
      /** the same comparison as median tokens/s over median tokens/s */
      vsWholeModelRatioOfMedians: +(speed(times[`stages${k}`], options.tokens).tokensPerSecond / speed(times.whole, options.tokens).tokensPerSecond).toFixed(4),
      /** paired by round with plain onnxruntime-node's whole-model graph, which ran alone in each round */
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
  const fourStages = f32.stages.find((s) => s.stages === 4)!;
  const stageOverheadRatio = fourStages.vsWholeModel.median;
  return {
    suite: 'local',
    model: `synthetic:${options.preset}`,
    decodeTokens: options.tokens,
    promptTokens: PROMPT_TOKENS,
    rounds: options.rounds,
    threads: options.threads ?? 'onnxruntime default',
    stageOverheadRatio,
    /** the same 4 stages over plain onnxruntime-node's whole-model graph (default options, public API) */
    stageOverheadRatioVsOrtDefaults: fourStages.vsWholeModelOrtDefaults.median,
    target: { stageOverheadRatio: 0.95 },
    method:
      'stagesK = the local runner (infermesh generate): K in-process stages, each its own onnxruntime session, handing hidden-state frames on ' +
      '(decoded: bytes only cross workers and the grid), the head in the last stage; whole = the whole-model graph under the same session options, ' +
      'run inline with one event-loop turn per token as the stages are; both greedy, interleaved token by token, ratio = median of per-round ratios. wholeOrtDefaults = the whole-model ' +
      'graph as plain onnxruntime-node runs it (default options, public API), alone after the others in each round, paired by round',
    machine: machineInfo(),
    results,
  };
}
