/**
 * `npm run bench -- engine --json`: the shard engine's decode speed next to onnxruntime running
 * the whole model as one graph, on the same execution provider, in the same page or process and
 * run: synthetic:110m (q4, f32) on WASM in headless Chromium and in Node (worker_threads,
 * onnxruntime-node), synthetic:tiny on WebGPU (SwiftShader, so correctness rather than speed).
 * Top-level `engineVsWholeModel`: WASM in Chromium, 110m q4 (target ≥ 0.9); `browserVsNative`: the
 * Chromium shard engine's tokens/s over onnxruntime-node's whole model, per dtype (targets q4 ≥ 0.5, f32 ≥ 0.6).
 */
import { join } from 'node:path';
import { availableParallelism } from 'node:os';
import * as ort from 'onnxruntime-node';
import { cacheDir } from '../cli/defaults.ts';
import { openEmbedding, openSession } from '../worker/node/local-package.ts';
import { readPackageManifest } from '../worker/node/package-files.ts';
import { packageBytes } from '../testkit/model-fixtures.ts';
import { openApp } from '../testkit/browser-app.ts';
import buildAppAndTestPages from '../testkit/web-build.ts';
import type { ExecutionProvider } from '../shared/engine/api.ts';
import type { WeightDtype } from '../shared/model/graphs/linear.ts';
import { shardOf } from '../shared/model/manifest.ts';
import { cpuKvStoreFactory } from '../shared/runtime/kv-cache.ts';
import { engineStage } from '../shared/runtime/pipeline.ts';
import { startNodeEngine } from '../worker/node/engine-host.ts';
import { syntheticConfig } from '../shared/model/synthetic/presets.ts';
import { machineInfo } from './machine.ts';
import type { EngineTestHarness } from '../testkit/pages/engine-test/main.ts';
import { pairedRatio, speed, stagesDecoder, timeInterleaved, wholeModelDecoder } from '../testkit/engine/decoders.ts';
import { benchPackage, wholeModelGraph } from './local-bench.ts';

export interface EngineBenchOptions {
  tokens: number;
  rounds: number;
}

/** `threads: 'all'`: the engine on every core, as onnxruntime-node runs (the default is a donor tab's half). */
const BROWSER_RUNS: { preset: string; dtype: WeightDtype; provider: ExecutionProvider; tokens?: number; rounds?: number; threads?: 'all' }[] = [
  { preset: '110m', dtype: 'q4', provider: 'wasm' },
  { preset: '110m', dtype: 'f32', provider: 'wasm' },
  { preset: '110m', dtype: 'q4', provider: 'wasm', threads: 'all' },
  { preset: '110m', dtype: 'f32', provider: 'wasm', threads: 'all' },
  // SwiftShader runs WebGPU on the CPU at a fraction of WASM's speed: a short run of the tiny model.
  { preset: 'tiny', dtype: 'f32', provider: 'webgpu', tokens: 16, rounds: 3 },
  { preset: 'tiny', dtype: 'q4', provider: 'webgpu', tokens: 16, rounds: 3 },
];

async function nodeRun(preset: string, dtype: WeightDtype, options: EngineBenchOptions) {
  const dir = await benchPackage(preset, dtype);
  const manifest = await readPackageManifest(dir);
  const { config } = manifest;
  const host = startNodeEngine();
  try {
    const report = await host.engine.load({ modelId: manifest.id, layers: { start: 0, end: config.nLayers }, source: await packageBytes(dir) });
    const embedding = await openEmbedding(dir, manifest);
    const head = await openSession(join(dir, shardOf(manifest, 'head').graph));
    const whole = await openSession({ model: await wholeModelGraph(dir, manifest), dir, name: 'whole model' });
    const times = await timeInterleaved(
      {
        engine: stagesDecoder({ config, ort, embedding, head, stages: [engineStage(host.engine)] }),
        wholeModel: wholeModelDecoder({ config, ort, session: whole, kv: cpuKvStoreFactory(config, ort) }),
      },
      options,
    );
    await Promise.all([head, whole].map((s) => s.release()));
    return {
      runtime: 'node',
      model: manifest.name,
      dtype,
      executionProvider: report.executionProvider,
      engine: speed(times.engine, options.tokens),
      wholeModel: speed(times.wholeModel, options.tokens),
      engineVsWholeModel: pairedRatio(times.engine, times.wholeModel),
      msPerLayerDecode: +(speed(times.engine, options.tokens).msPerToken / config.nLayers).toFixed(3),
    };
  } finally {
    await host.terminate();
  }
}

/** The handshake measures one 110m block on the host's preferred provider. */
const HANDSHAKE_OPTIONS = { layer: { config: syntheticConfig('110m'), dtype: 'q4' as const } };

export async function engineBench(options: EngineBenchOptions) {
  process.stderr.write('bench engine: node handshake\n');
  const nodeHost = startNodeEngine();
  const nodeHandshake = await nodeHost.engine.handshake(HANDSHAKE_OPTIONS).finally(() => nodeHost.terminate());
  const node: Awaited<ReturnType<typeof nodeRun>>[] = [];
  for (const dtype of ['q4', 'f32'] as const) {
    process.stderr.write(`bench engine: node synthetic:110m ${dtype}\n`);
    node.push(await nodeRun('110m', dtype, options));
  }
  for (const run of BROWSER_RUNS) await benchPackage(run.preset, run.dtype);
  await buildAppAndTestPages();
  const app = await openApp('test/engine-test/', { packagesDir: join(cacheDir(), 'bench'), waitFor: 'window.harness?.ready === true' });
  const browser: ({ runtime: string } & Awaited<ReturnType<EngineTestHarness['benchEngine']>>)[] = [];
  let chromiumHandshake: unknown;
  try {
    process.stderr.write('bench engine: chromium handshake (engine worker)\n');
    chromiumHandshake = await app.page.evaluate((o) => window.harness!.handshake(o), HANDSHAKE_OPTIONS);
    for (const run of BROWSER_RUNS) {
      process.stderr.write(`bench engine: chromium synthetic:${run.preset} ${run.dtype} on ${run.provider}${run.threads ? `, ${run.threads} cores` : ''}\n`);
      const name = `synthetic-${run.preset}-${run.dtype}-seed0`;
      const threads = run.threads === 'all' ? availableParallelism() : undefined;
      const result = await app.page.evaluate(([n, p, t, r, th]) => window.harness!.benchEngine(n, p, t, r, th), [name, run.provider, run.tokens ?? options.tokens, run.rounds ?? options.rounds, threads] as const);
      browser.push({ runtime: 'chromium', ...result });
    }
  } finally {
    await app.close();
  }
  const headline = browser.find((r) => r.executionProvider === 'wasm' && r.dtype === 'q4' && r.model === 'synthetic:110m');
  // A donor tab against native onnxruntime on the same machine: the tab's shard engine (WASM)
  // over onnxruntime-node running the whole model, per dtype, with each one's decode ms per layer.
  // The headline is the donor tab's default threads; `allCores` puts the tab on every core, as Node runs.
  const vsNative = (allCores: boolean) =>
    Object.fromEntries(
      node.map((n) => {
        const tab = browser.find((r, i) => r.executionProvider === 'wasm' && r.dtype === n.dtype && r.model === n.model && (BROWSER_RUNS[i].threads === 'all') === allCores);
        const vsNode = (speed?: { tokensPerSecond: number }) => (speed ? +(speed.tokensPerSecond / n.wholeModel.tokensPerSecond).toFixed(3) : null);
        return [n.dtype, { ratio: vsNode(tab?.engine), chromiumThreads: tab?.threads ?? null, chromiumTokensPerSecond: tab?.engine.tokensPerSecond ?? null, chromiumAloneTokensPerSecond: tab?.engineAlone.tokensPerSecond ?? null, aloneRatio: vsNode(tab?.engineAlone), nodeTokensPerSecond: n.wholeModel.tokensPerSecond, chromiumMsPerLayer: tab?.msPerLayerDecode ?? null, chromiumHeadThreads: tab?.headThreads ?? null, chromiumMsHead: tab?.msHeadDecode ?? null, nodeMsPerLayer: n.msPerLayerDecode }];
      }),
    );
  const browserVsNative = { ...vsNative(false), allCores: vsNative(true) };
  return {
    suite: 'engine',
    engineVsWholeModel: headline?.engineVsWholeModel.median ?? null,
    browserVsNative,
    target: { engineVsWholeModel: 0.9, browserVsNative: { q4: 0.5, f32: 0.6 } },
    decodeTokens: options.tokens,
    rounds: options.rounds,
    machine: machineInfo(),
    handshake: { chromium: chromiumHandshake, node: nodeHandshake },
    results: [...browser, ...node],
  };
}
