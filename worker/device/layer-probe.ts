/**
 * The engine's own speed for a model shape, for the device handshake: milliseconds one
 * transformer block takes per decode step on a given execution provider. The scheduler
 * multiplies it by a node's layer count, which is what matmul GFLOP/s alone cannot predict
 * (attention, RoPE, norms, kernel launch and runtime overheads all count).
 *
 * It compiles one block of a synthetic checkpoint with the config's shape into memory
 * (seeded random weights: speed depends on the shape, not the values), opens it with the
 * injected onnxruntime as the engine opens a one-block stage (worker/wasm-stage.ts on WASM),
 * runs a prefill and then decode steps feeding the KV cache back exactly as a stage does
 * (shared/runtime/stage.ts), and reports the median decode step.
 */
import type { ExecutionProvider } from '../../shared/engine/api.ts';
import { compilePackage } from '../../shared/model/compiler.ts';
import type { ModelConfig } from '../../shared/model/config.ts';
import { composedIo, composeStageGraph } from '../../shared/model/compose.ts';
import type { WeightDtype } from '../../shared/model/graphs/linear.ts';
import { blockShards } from '../../shared/model/manifest.ts';
import { createMemorySink } from '../../shared/model/memory-sink.ts';
import { decodeModel, encodeModel } from '../../shared/model/onnx/schema.ts';
import { createSyntheticCheckpointFromConfig } from '../../shared/model/synthetic/checkpoint.ts';
import { fillNormal } from '../../shared/model/synthetic/random.ts';
import { MIN_SYNTHETIC_VOCAB } from '../../shared/model/synthetic/tokenizer.ts';
import { createKvRows } from '../../shared/runtime/kv-cache.ts';
import type { KvRows } from '../../shared/runtime/kv-cache.ts';
import { DeviceProbeError } from './errors.ts';
import type { OrtInferenceSession, OrtModule, OrtSessionOptions } from './ort-module.ts';
import { defaultClock, median } from './timing.ts';
import type { Clock } from './timing.ts';
import { openWasmStage } from '../wasm-stage.ts';
import type { WasmKernelThreads } from '../wasm-stage.ts';

/** The shape that decides a block's cost, as the handshake reports it. */
export interface LayerShape {
  dim: number;
  hiddenDim: number;
  nHeads: number;
  nKvHeads: number;
  headDim: number;
}

export interface LayerProbeReport {
  shape: LayerShape;
  dtype: WeightDtype;
  executionProvider: ExecutionProvider;
  /** median milliseconds of one block's decode step (one token, cache of prefillTokens + i) */
  msPerLayerDecode: number;
  decodeSteps: number;
  /** milliseconds of the block's prefill of prefillTokens tokens (the first run, so it includes warm-up) */
  prefillMs: number;
  prefillTokens: number;
  /** weight bytes of the block as compiled (its .data file) */
  weightBytes: number;
  /** milliseconds to compile the block and open its session */
  loadMs: number;
}

export interface LayerProbeOptions {
  config: ModelConfig;
  dtype: WeightDtype;
  executionProvider: ExecutionProvider;
  /** default 16 */
  prefillTokens?: number;
  /** timed decode steps after one untimed warm-up step (default 16) */
  decodeSteps?: number;
  seed?: number;
  /** merged into the session options (threads, spinning, WebGPU output location) */
  sessionOptions?: OrtSessionOptions;
}

export interface LayerProbeDeps {
  ort: OrtModule;
  clock?: Clock;
  /** the threads the quantized WASM kernels take, as the engine gives them (default: one) */
  kernels?: WasmKernelThreads;
  /**
   * Opens the block as a one-block stage (composedIo names, layer 0), given its encoded stage
   * graph. By default as the engine opens a stage: on WASM by worker/wasm-stage.ts, else
   * `ort.InferenceSession.create(graph, { externalData })` (onnxruntime-web and onnxruntime-node
   * both take the data in memory).
   */
  openSession?: (graph: Uint8Array, external: { path: string; data: Uint8Array }, options: OrtSessionOptions) => Promise<OrtInferenceSession>;
}

const SOURCE = 'layer probe';

export function layerShape(config: ModelConfig): LayerShape {
  const { dim, hiddenDim, nHeads, nKvHeads, headDim } = config;
  return { dim, hiddenDim, nHeads, nKvHeads, headDim };
}

/**
 * The config the probe compiles: one layer, and the smallest vocabulary the synthetic
 * tokenizer allows, since the package's embedding and head (32k × dim each for Llama 2) are
 * never run here and would only cost compile time and memory.
 */
export function probeConfig(config: ModelConfig): ModelConfig {
  return { ...config, nLayers: 1, vocabSize: MIN_SYNTHETIC_VOCAB, tiedEmbeddings: false };
}

/** Compiles one block of `config` into memory: its graph and external data. */
export async function compileProbeBlock(config: ModelConfig, dtype: WeightDtype, seed = 1): Promise<{ graph: Uint8Array; data: { path: string; data: Uint8Array } }> {
  const sink = createMemorySink(SOURCE);
  const checkpoint = createSyntheticCheckpointFromConfig(probeConfig(config), seed, `${SOURCE}: synthetic block`);
  const manifest = await compilePackage(checkpoint, { dtype }, { sink });
  const [block] = blockShards(manifest);
  return { graph: sink.read(block.graph), data: { path: block.data, data: sink.read(block.data) } };
}

export async function probeLayer(options: LayerProbeOptions, deps: LayerProbeDeps): Promise<LayerProbeReport> {
  const { config, dtype, executionProvider } = options;
  const prefillTokens = options.prefillTokens ?? 16;
  const decodeSteps = options.decodeSteps ?? 16;
  if (prefillTokens < 1 || decodeSteps < 1 || prefillTokens + decodeSteps + 1 > config.maxSeqLen) {
    throw new DeviceProbeError(`prefill ${prefillTokens} + decode ${decodeSteps} steps must be positive and fit the context of ${config.maxSeqLen}`, { source: SOURCE });
  }
  const clock = deps.clock ?? defaultClock;
  const { Tensor } = deps.ort;

  const loadStart = clock();
  const block = await compileProbeBlock(config, dtype, options.seed);
  // Severity 3 (errors): onnxruntime warns that it placed shape ops on the CPU, which is by design.
  const sessionOptions: OrtSessionOptions = { executionProviders: [executionProvider], graphOptimizationLevel: 'all', logSeverityLevel: 3, ...options.sessionOptions };
  const blockModel = decodeModel(block.graph);
  const stageGraph = composeStageGraph([blockModel], 0);
  const open =
    deps.openSession ??
    (async (graph, external, opts) =>
      executionProvider === 'wasm'
        ? (await openWasmStage({ config: probeConfig(config), firstLayer: 0, blocks: [blockModel], graph: stageGraph, externalData: [external] }, deps.ort, opts, deps.kernels)).session
        : deps.ort.InferenceSession.create(graph, { ...opts, externalData: [external] }));
  let session: OrtInferenceSession;
  try {
    session = await open(encodeModel(stageGraph), block.data, sessionOptions);
  } catch (err) {
    throw new DeviceProbeError(`onnxruntime (${executionProvider}) cannot open a ${dtype} block: ${(err as Error).message.split('\n')[0]}`, { source: SOURCE, cause: err });
  }
  const loadMs = clock() - loadStart;

  try {
    const { dim, nKvHeads, headDim } = config;
    const rowWidth = nKvHeads * headDim;
    const keys = createKvRows(rowWidth, config.maxSeqLen);
    const values = createKvRows(rowWidth, config.maxSeqLen);
    const cache = (rows: KvRows) => new Tensor('float32', rows.view(), [1, rows.length, nKvHeads, headDim]);
    // Hidden states of RMS 1, as the embedding hands a block; the values only need to be tame.
    const hidden = fillNormal(new Float32Array((prefillTokens + decodeSteps + 1) * dim), options.seed ?? 1, 'layer-probe.hidden', 1, 0);

    const step = async (position: number, seq: number): Promise<number> => {
      const positions = BigInt64Array.from({ length: seq }, (_, i) => BigInt(position + i));
      const feeds = {
        [composedIo.hidden]: new Tensor('float32', hidden.subarray(position * dim, (position + seq) * dim), [1, seq, dim]),
        [composedIo.positions]: new Tensor('int64', positions, [1, seq]),
        [composedIo.pastKey(0)]: cache(keys),
        [composedIo.pastValue(0)]: cache(values),
      };
      const start = clock();
      const out = await session.run(feeds);
      const ms = clock() - start;
      const output = out[composedIo.hiddenOut]?.data;
      if (!(output instanceof Float32Array) || output.length !== seq * dim || !output.every(Number.isFinite)) {
        throw new DeviceProbeError(`block step at position ${position} returned no finite hidden state of ${seq}×${dim}`, { source: SOURCE });
      }
      keys.append(out[composedIo.newKey(0)].data as Float32Array);
      values.append(out[composedIo.newValue(0)].data as Float32Array);
      return ms;
    };

    const prefillMs = await step(0, prefillTokens);
    await step(prefillTokens, 1); // the first decode shape (seq 1) may pick or compile new kernels
    const samples: number[] = [];
    for (let i = 1; i <= decodeSteps; i++) samples.push(await step(prefillTokens + i, 1));
    return {
      shape: layerShape(config),
      dtype,
      executionProvider,
      msPerLayerDecode: median(samples),
      decodeSteps,
      prefillMs,
      prefillTokens,
      weightBytes: block.data.data.byteLength,
      loadMs,
    };
  } finally {
    await session.release();
  }
}
