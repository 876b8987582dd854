/**
 * The shard engine: a layer range of a model package behind the ShardEngine contract
 * (shared/engine/api.ts). It runs the range as one stitched graph on the first execution
 * provider that works (WebGPU, then WASM in a browser; CPU under onnxruntime-node), keeps each
 * request's KV cache where the provider computes (GPU buffers on WebGPU), and reports why it
 * chose the provider it runs on. If the GPU device is lost it reports that, reopens the shard
 * on the next provider, and refuses the lost requests by name instead of hanging.
 *
 * Runtime-agnostic: the onnxruntime module, navigator.gpu and fetch are injected, so the same
 * engine runs in a browser Web Worker (worker/engine.worker.ts) and in Node (worker/node/engine-host.ts).
 */
import { UsageError } from '../shared/errors.ts';
import { DeviceLostError, EngineNotLoadedError } from '../shared/engine/errors.ts';
import type { EngineEvent, EngineThreads, EngineUsage, ExecutionProvider, LoadReport, LoadRequest, MemoryReport, ShardEngine } from '../shared/engine/api.ts';
import { composedIo, composeStageGraph } from '../shared/model/compose.ts';
import type { ModelConfig } from '../shared/model/config.ts';
import { encodeModel } from '../shared/model/onnx/schema.ts';
import type { Model } from '../shared/model/onnx/schema.ts';
import { createStage, DEFAULT_STAGE_LIMITS } from '../shared/runtime/stage.ts';
import type { LayerRange, Stage } from '../shared/runtime/stage.ts';
import { cpuKvStoreFactory } from '../shared/runtime/kv-cache.ts';
import type { KvStoreFactory } from '../shared/runtime/kv-cache.ts';
import type { OrtModule, OrtSession, OrtSessionOptions } from '../shared/runtime/ort.ts';
import { gpuKvStoreFactory } from './gpu-kv-store.ts';
import { loadShardFiles } from './shard-loader.ts';
import { openWasmStage } from './wasm-stage.ts';
import type { WasmKernelThreads } from './wasm-stage.ts';
import type { SpawnGemvHelper } from '../shared/runtime/quantized/gemv-threads.ts';
import type { LoadedShard } from './shard-loader.ts';
import type { DeviceHandshake, HandshakeOptions } from './device/handshake.ts';

/** The parts of onnxruntime-web / onnxruntime-node the engine uses: sessions, and WebGPU's device. */
export interface EngineOrt extends OrtModule {
  env: { webgpu?: { device?: GPUDevice | Promise<GPUDevice> } };
}

export interface EngineDeps {
  ort: EngineOrt;
  /** navigator.gpu where WebGPU may exist; absent under Node */
  gpu?: GPU | null;
  fetch?: typeof fetch;
  now?: () => number;
  /** providers tried when a load request names none */
  defaultProviders?: ExecutionProvider[];
  /** extra onnxruntime session options (e.g. onnxruntime-node thread settings) */
  sessionOptions?: OrtSessionOptions;
  /** the device handshake of this host (worker/device/handshake.ts), bound to its runtime */
  handshake?: (options: HandshakeOptions, kernels?: WasmKernelThreads) => Promise<DeviceHandshake>;
  /**
   * The graphs and weights a load opens, given the package's verified shard: the shard itself by
   * default. The test kit's cheating engines (testkit/engine/stage-faults.ts) open others here.
   */
  shardGraphs?: (shard: LoadedShard, request: LoadRequest) => Promise<Pick<LoadedShard, 'blocks' | 'externalData'>>;
  /**
   * onnxruntime's compute threads, read and set before the first session starts them: the WASM
   * threads of a browser worker (browser-deps.ts), the sessions' intra-op threads in Node
   */
  computeThreads?: { get(): number; set(threads: number): void; cores: number; isolated: boolean };
  /** starts a helper thread for the quantized WASM kernels, which then take as many threads as onnxruntime (worker/gemv-helpers.ts) */
  spawnKernelThread?: SpawnGemvHelper;
}

/**
 * A donor tab's default: half the machine's cores, at most 4 (onnxruntime-web's own default), so
 * a visitor's machine keeps the other half for itself.
 */
export const defaultThreads = (cores: number) => Math.max(1, Math.min(4, Math.ceil(cores / 2)));

interface Loaded {
  request: LoadRequest;
  config: ModelConfig;
  layers: LayerRange;
  /** the range's block graphs, in layer order */
  blocks: Model[];
  /** the stitched stage graph, as the package stores it (encoded per provider by `open`) */
  graph: Model;
  externalData: { path: string; data: Uint8Array }[];
  weightBytes: number;
  /** bytes the weights take where the provider computes (more than weightBytes where it holds another copy) */
  runtimeWeightBytes: number;
  provider: ExecutionProvider;
  stage: Stage;
  device?: GPUDevice;
}

/** What an engine worker exposes over comlink: the ShardEngine contract and its device handshake. */
export interface ExposedShardEngine extends ShardEngine {
  /** Measures this host's device: what the scheduler places layers by. */
  handshake(options?: HandshakeOptions): Promise<DeviceHandshake>;
  /**
   * Sets the threads the engine computes with (before it opens anything: onnxruntime starts its
   * threads with its first session) and says what is in force. Without `threads`, only says.
   */
  threads(threads?: number): Promise<EngineThreads>;
  /** What computing has cost so far: time spent in steps, and memory held. */
  usage(): Promise<EngineUsage>;
}

/** What a package's weights take once opened on a provider that holds another copy (WASM). */
const runtimeBytes = (weightBytes: number, opened: { extra?: { bytes: number } }) => weightBytes + (opened.extra?.bytes ?? 0);

export function createShardEngine(deps: EngineDeps): ExposedShardEngine {
  const { ort } = deps;
  let loaded: Loaded | null = null;
  /** Set while the shard is being reopened after a device loss; steps wait for it. */
  let reopening: Promise<void> | null = null;
  let sweepTimer: ReturnType<typeof setInterval> | null = null;
  const events: EngineEvent[] = [];
  /** set once a session opened (a load or a handshake): threads can no longer change */
  let sessionOpened = false;
  let computeMs = 0;
  const clock = deps.now ?? (() => performance.now());
  /** The quantized kernels take the threads onnxruntime takes: the donor's setting, where the page is isolated. */
  const kernelThreads = (): WasmKernelThreads | undefined => {
    const wasm = deps.computeThreads;
    return wasm?.isolated && deps.spawnKernelThread ? { threads: wasm.get(), spawn: deps.spawnKernelThread } : undefined;
  };

  type Opening = Pick<Loaded, 'config' | 'blocks' | 'graph' | 'externalData' | 'layers'>;
  interface Opened {
    session: OrtSession;
    kv: KvStoreFactory;
    device?: GPUDevice;
    /** extra bytes the weights took on this provider, and how it runs them */
    extra?: { bytes: number; note: string };
  }

  async function open(provider: ExecutionProvider, l: Opening): Promise<Opened> {
    sessionOpened = true;
    if (provider === 'webgpu') {
      if (!deps.gpu) throw new Error('WebGPU is not available here (no navigator.gpu)');
      const adapter = await deps.gpu.requestAdapter();
      if (!adapter) throw new Error('WebGPU has no adapter (navigator.gpu.requestAdapter() returned null)');
      const gpuOutputs: Record<string, 'gpu-buffer'> = {};
      for (let layer = l.layers.start; layer < l.layers.end; layer++) {
        gpuOutputs[composedIo.newKey(layer)] = 'gpu-buffer';
        gpuOutputs[composedIo.newValue(layer)] = 'gpu-buffer';
      }
      const session = await ort.InferenceSession.create(encodeModel(l.graph), { ...deps.sessionOptions, executionProviders: ['webgpu'], externalData: l.externalData, preferredOutputLocation: gpuOutputs });
      const device = await ort.env.webgpu?.device;
      if (!device) throw new Error('onnxruntime did not expose its WebGPU device');
      return { session, device, kv: gpuKvStoreFactory(l.config, { ort, device }) };
    }
    if (provider === 'wasm') {
      const { session, extra } = await openWasmStage({ ...l, firstLayer: l.layers.start }, ort, deps.sessionOptions, kernelThreads());
      return { session, kv: cpuKvStoreFactory(l.config, ort), extra };
    }
    const session = await ort.InferenceSession.create(encodeModel(l.graph), { ...deps.sessionOptions, executionProviders: [provider], externalData: l.externalData });
    return { session, kv: cpuKvStoreFactory(l.config, ort) };
  }

  /** Opens on the first provider that works; the reason records every one that did not. */
  async function openFirst(providers: ExecutionProvider[], l: Opening) {
    const failures: string[] = [];
    for (const provider of providers) {
      try {
        const opened = await open(provider, l);
        const chosen = failures.length === 0 ? `${provider} is the first choice and works` : `${failures.join('; ')}; using ${provider}`;
        const reason = opened.extra ? `${chosen}; ${opened.extra.note}` : chosen;
        return { provider, reason, ...opened };
      } catch (err) {
        failures.push(`${provider} unavailable: ${(err as Error).message.split('\n')[0]}`);
      }
    }
    throw new UsageError(`no execution provider could run the shard (${failures.join('; ')})`);
  }

  function makeStage(l: Pick<Loaded, 'config' | 'layers' | 'request'>, session: OrtSession, kv: KvStoreFactory): Stage {
    return createStage(
      { config: l.config, layers: l.layers, session, limits: { idleTimeoutMs: l.request.idleTimeoutMs, maxCacheBytes: l.request.maxCacheBytes } },
      { ort, kv, now: deps.now, onEvict: (ids, reason) => events.push({ kind: 'evicted', message: `evicted for ${reason === 'idle' ? 'idle timeout' : 'memory pressure'}`, requestIds: ids }) },
    );
  }

  function watchDevice(l: Loaded) {
    l.device?.lost.then((info) => {
      if (loaded !== l) return; // an old shard's device
      const lost = l.stage.activeRequests();
      events.push({ kind: 'device-lost', message: `GPU device lost (${info.reason}): ${info.message || 'no message'}; ${lost} request cache(s) lost` });
      const remaining = (l.request.executionProviders ?? deps.defaultProviders ?? ['webgpu', 'wasm']).filter((p) => p !== 'webgpu');
      reopening = (async () => {
        const opened = await openFirst(remaining.length ? remaining : ['wasm'], l);
        const stage = makeStage(l, opened.session, opened.kv);
        loaded = { ...l, provider: opened.provider, stage, device: opened.device, runtimeWeightBytes: runtimeBytes(l.weightBytes, opened) };
        events.push({ kind: 'fallback', message: `reopened on ${opened.provider} after the device loss: ${opened.reason}` });
        l.stage.release().catch(() => undefined);
      })().finally(() => {
        reopening = null;
      });
    });
  }

  const requireLoaded = async (): Promise<Loaded> => {
    if (reopening) await reopening;
    if (!loaded) throw new EngineNotLoadedError('no shard is loaded; call load() first');
    return loaded;
  };

  return {
    async load(request) {
      const started = deps.now?.() ?? Date.now();
      const shard = await loadShardFiles(request, { fetch: deps.fetch });
      const graphs = deps.shardGraphs ? await deps.shardGraphs(shard, request) : shard;
      const l = {
        request,
        config: shard.manifest.config,
        layers: request.layers,
        blocks: graphs.blocks,
        graph: composeStageGraph(graphs.blocks, request.layers.start),
        externalData: graphs.externalData,
      };
      const providers = request.executionProviders ?? deps.defaultProviders ?? ['webgpu', 'wasm'];
      const opened = await openFirst(providers, l);
      await this.unload();
      const next: Loaded = { ...l, weightBytes: shard.weightBytes, runtimeWeightBytes: runtimeBytes(shard.weightBytes, opened), provider: opened.provider, stage: makeStage(l, opened.session, opened.kv), device: opened.device };
      loaded = next;
      watchDevice(next);
      if (opened.provider !== providers[0]) events.push({ kind: 'fallback', message: opened.reason });
      const idle = request.idleTimeoutMs ?? DEFAULT_STAGE_LIMITS.idleTimeoutMs;
      sweepTimer = setInterval(() => loaded?.stage.sweep(), Math.max(50, Math.min(idle / 2, 30_000)));
      (sweepTimer as { unref?: () => void }).unref?.();
      return {
        modelId: shard.manifest.id,
        layers: request.layers,
        executionProvider: opened.provider,
        reason: opened.reason,
        piecesVerified: shard.piecesVerified,
        weightBytes: shard.weightBytes,
        runtimeWeightBytes: next.runtimeWeightBytes,
        loadMs: (deps.now?.() ?? Date.now()) - started,
      } satisfies LoadReport;
    },
    async step(bytes) {
      const l = await requireLoaded();
      try {
        // The engine's one parse of the frame (in Stage.forward): it crossed the worker boundary as
        // bytes, so the stage server's parse on the other side cannot be handed over
        // (shared/grid/stage-server.ts). The output is encoded once.
        const t0 = clock();
        try {
          return await l.stage.forward(bytes);
        } finally {
          computeMs += clock() - t0;
        }
      } catch (err) {
        if (l.device && loaded !== l) throw new DeviceLostError('the GPU device was lost during this step; start the request again', { cause: err });
        throw err;
      }
    },
    async usage() {
      return { computeMs, memoryBytes: (loaded?.runtimeWeightBytes ?? 0) + (loaded?.stage.cacheBytes() ?? 0) };
    },
    async end(requestId) {
      const l = await requireLoaded();
      l.stage.end(requestId);
    },
    async memory(): Promise<MemoryReport> {
      if (reopening) await reopening;
      return {
        cacheBytes: loaded?.stage.cacheBytes() ?? 0,
        requests: loaded?.stage.activeRequests() ?? 0,
        weightBytes: loaded?.runtimeWeightBytes ?? 0,
        executionProvider: loaded?.provider ?? null,
      };
    },
    async events() {
      return events.splice(0);
    },
    async unload() {
      if (sweepTimer) clearInterval(sweepTimer);
      sweepTimer = null;
      const old = loaded;
      loaded = null;
      await old?.stage.release();
    },
    async handshake(options = {}) {
      if (!deps.handshake) throw new UsageError('this engine host was started without a device handshake');
      sessionOpened = true;
      // Its layer probe opens a block as a stage would: on the same kernel threads.
      return deps.handshake(options, kernelThreads());
    },
    async threads(threads) {
      const wasm = deps.computeThreads;
      if (!wasm) throw new UsageError('this engine host was started with its threads fixed (no computeThreads)');
      if (threads !== undefined) {
        if (!Number.isInteger(threads) || threads < 1 || threads > wasm.cores) {
          throw new UsageError(`threads must be a whole number from 1 to this machine's ${wasm.cores} cores, got ${threads}`);
        }
        if (sessionOpened) throw new UsageError('threads are set before the engine opens anything: onnxruntime starts them with its first session');
        wasm.set(wasm.isolated ? threads : 1);
      }
      return { threads: wasm.isolated ? wasm.get() : 1, cores: wasm.cores, isolated: wasm.isolated };
    },
  };
}
