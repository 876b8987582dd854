/**
 * Engine scenarios shared by the Node tests (worker/engine.test.ts, engines in worker_threads)
 * and the browser test page (testkit/pages/engine-test/, engines in Web Workers), so both runtimes are
 * held to the same behaviour. Isomorphic: onnxruntime and the engines are injected.
 */
import type { ExecutionProvider, LoadReport, ShardEngine, ShardSource } from '../../shared/engine/api.ts';
import { parseManifest, shardOf } from '../../shared/model/manifest.ts';
import type { Manifest } from '../../shared/model/manifest.ts';
import { decodeFrame, encodeFrame } from '../../shared/protocol/frame.ts';
import { createPipeline, engineStage } from '../../shared/runtime/pipeline.ts';
import type { StageLink } from '../../shared/runtime/pipeline.ts';
import type { LayerRange } from '../../shared/runtime/stage.ts';
import { loadTokenizer } from '../../shared/tokenizer/load.ts';
import { createEmbeddingTable } from '../../shared/model/embedding.ts';
import { decodeModel } from '../../shared/model/onnx/schema.ts';
import type { EngineOrt } from '../../worker/engine.ts';

/** Reads package files by path (bytes in Node, fetch in a page). */
export type PackageReader = (path: string) => Promise<Uint8Array>;

export interface TwoStageRun {
  reports: LoadReport[];
  promptTokens: number[];
  tokens: number[];
  /** each stage's output for the prompt prefill, [promptTokens.length × dim] */
  prefillOutputs: number[][];
  /** the embedding of the prompt (stage 0's input) */
  prefillInput: number[];
}

/** Greedy generation with the blocks split over engines; embed and head run here, as a client's do. */
export async function generateThroughEngines(options: {
  ort: EngineOrt;
  read: PackageReader;
  source: ShardSource;
  engines: Pick<ShardEngine, 'load' | 'step' | 'end'>[];
  ranges: LayerRange[];
  prompt: string;
  maxTokens: number;
  executionProviders?: ExecutionProvider[];
}): Promise<TwoStageRun> {
  const manifest = await parseManifest(new TextDecoder().decode(await options.read('manifest.json')), 'manifest.json');
  const reports: LoadReport[] = [];
  for (const [i, engine] of options.engines.entries()) {
    reports.push(await engine.load({ modelId: manifest.id, layers: options.ranges[i], source: options.source, executionProviders: options.executionProviders }));
  }
  const headShard = shardOf(manifest, 'head');
  const head = await options.ort.InferenceSession.create(await options.read(headShard.graph), {
    executionProviders: [typeof window === 'undefined' ? 'cpu' : 'wasm'],
    externalData: [{ path: headShard.data, data: await options.read(headShard.data) }],
  });
  const embedShard = shardOf(manifest, 'embed');
  const embedding = createEmbeddingTable(manifest.config, decodeModel(await options.read(embedShard.graph)), await options.read(embedShard.data));
  const tokenizer = await tokenizerOf(manifest, options.read);
  const prefillOutputs: number[][] = [];
  let prefillInput: number[] = [];
  const stages: StageLink[] = options.engines.map((engine, i) => {
    const link = engineStage(engine);
    return {
      end: link.end,
      async forward(frame) {
        const input = decodeFrame(frame);
        if (i === 0 && input.position === 0) prefillInput = Array.from(input.data);
        const out = await link.forward(frame);
        if (input.position === 0) prefillOutputs[i] = Array.from(decodeFrame(out).data);
        return out;
      },
    };
  });
  const pipeline = createPipeline({ config: manifest.config, tokenizer: tokenizer.tokenizer, stopIds: tokenizer.stopIds, embedding, head, stages }, { ort: options.ort });
  const tokens: number[] = [];
  for await (const t of pipeline.generate(options.prompt, { maxTokens: options.maxTokens, temperature: 0, topP: 0.9, seed: 1 })) {
    if (t.id !== null) tokens.push(t.id);
  }
  await head.release();
  return { reports, promptTokens: tokenizer.tokenizer.encode(options.prompt), tokens, prefillOutputs, prefillInput };
}

async function tokenizerOf(manifest: Manifest, read: PackageReader) {
  const t = manifest.tokenizer;
  const config = 'configFile' in t && t.configFile ? await read(t.configFile) : undefined;
  return loadTokenizer(manifest, await read(t.file), config);
}

/** Deterministic hidden states in [-1, 1) for frames. */
export function syntheticHidden(rows: number, dim: number, seed: number): Float32Array {
  let s = seed >>> 0 || 1;
  return Float32Array.from({ length: rows * dim }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s / 2 ** 32) * 2 - 1;
  });
}

export interface InterleavedResult {
  /** true when every request's outputs equal its solo run exactly */
  identical: boolean;
  maxDifference: number;
  baselineBytes: number;
  peakBytes: number;
  /** cache bytes after all requests ended */
  finalBytes: number;
  requestsAtPeak: number;
}

/**
 * Eight requests, prefill then decode steps, interleaved round-robin in one engine; each
 * request's outputs are compared with the same request run alone, and memory is read before,
 * at the peak and after every request ended.
 */
export async function interleavedRequests(engine: Pick<ShardEngine, 'step' | 'end' | 'memory'>, dim: number, count = 8, decodeSteps = 4): Promise<InterleavedResult> {
  const plan = (r: number) => [
    { position: 0, rows: 3, data: syntheticHidden(3, dim, 100 + r) },
    ...Array.from({ length: decodeSteps }, (_, j) => ({ position: 3 + j, rows: 1, data: syntheticHidden(1, dim, 1000 * (r + 1) + j) })),
  ];
  const run = async (id: string, step: { position: number; rows: number; data: Float32Array }, index: number) =>
    decodeFrame(await engine.step(encodeFrame({ requestId: id, step: index, position: step.position, dims: [1, step.rows, dim], data: step.data }))).data;

  const solo: Float32Array[][] = [];
  for (let r = 0; r < count; r++) {
    const outs = [];
    for (const [i, step] of plan(r).entries()) outs.push(await run(`solo-${r}`, step, i));
    await engine.end(`solo-${r}`);
    solo.push(outs);
  }
  const baselineBytes = (await engine.memory()).cacheBytes;
  let maxDifference = 0;
  let identical = true;
  for (let i = 0; i <= decodeSteps; i++) {
    for (let r = 0; r < count; r++) {
      const out = await run(`mixed-${r}`, plan(r)[i], i);
      for (let j = 0; j < out.length; j++) {
        const d = Math.abs(out[j] - solo[r][i][j]);
        if (d !== 0) identical = false;
        maxDifference = Math.max(maxDifference, d);
      }
    }
  }
  const peak = await engine.memory();
  for (let r = 0; r < count; r++) await engine.end(`mixed-${r}`);
  return { identical, maxDifference, baselineBytes, peakBytes: peak.cacheBytes, finalBytes: (await engine.memory()).cacheBytes, requestsAtPeak: peak.requests };
}

export interface RefusalCase {
  case: string;
  /** the error's name as the caller sees it after the worker boundary */
  name: string;
  message: string;
  /** the live request's next output still equalled its solo run after this refusal */
  stillServing: boolean;
}

/**
 * Sends one bad input after another to a loaded engine while a live request ("keep") advances
 * between them; each refusal is recorded by the error's name and message, and the live
 * request's outputs are compared with a solo run to prove the engine kept serving.
 */
export async function refusals(
  engine: Pick<ShardEngine, 'load' | 'step' | 'end'>,
  options: { dim: number; modelId: string; layers: LayerRange; corruptSource: ShardSource; otherModelId: string; goodSource: ShardSource },
): Promise<RefusalCase[]> {
  const { dim } = options;
  const frame = (id: string, position: number, rows: number, seed: number, dims = [1, rows, dim]) =>
    encodeFrame({ requestId: id, step: position, position, dims, data: syntheticHidden(dims.reduce((a, b) => a * b, 1) / dim, dim, seed) });
  // The live request's expected outputs, from a solo run.
  const keepSteps = Array.from({ length: 10 }, (_, i) => (i === 0 ? frame('keep', 0, 2, 7) : frame('keep', i + 1, 1, 70 + i)));
  const solo: Float32Array[] = [];
  for (const f of keepSteps) solo.push(decodeFrame(await engine.step(f.slice())).data);
  await engine.end('keep');
  let next = 0;
  const advanceKeep = async () => {
    const out = decodeFrame(await engine.step(keepSteps[next])).data;
    const same = out.every((v, i) => v === solo[next][i]);
    next++;
    return same;
  };
  await advanceKeep();

  const badDtype = frame('x', 0, 1, 3);
  badDtype[5] = 2;
  const cases: [string, () => Promise<unknown>][] = [
    ['hidden size does not match the model', () => engine.step(frame('x', 0, 1, 1, [1, 1, dim + 1]))],
    ['wrong rank', () => engine.step(frame('x', 0, 1, 1, [2, dim]))],
    ['dtype other than f32', () => engine.step(badDtype)],
    ['truncated frame', () => engine.step(frame('x', 0, 1, 1).subarray(0, 30))],
    ['step for an unknown request', () => engine.step(frame('never-started', 5, 1, 1))],
    [
      'step for an ended request',
      async () => {
        await engine.step(frame('ended', 0, 1, 2));
        await engine.end('ended');
        return engine.step(frame('ended', 1, 1, 3));
      },
    ],
    ['shard whose piece hash does not match', () => engine.load({ modelId: options.modelId, layers: options.layers, source: options.corruptSource })],
    ['package of another model', () => engine.load({ modelId: options.otherModelId, layers: options.layers, source: options.goodSource })],
  ];
  const results: RefusalCase[] = [];
  for (const [name, attempt] of cases) {
    let error: Error | null = null;
    try {
      await attempt();
    } catch (err) {
      error = err as Error;
    }
    results.push({ case: name, name: error?.name ?? 'no error', message: error?.message ?? '', stillServing: await advanceKeep() });
  }
  await engine.end('keep');
  return results;
}
