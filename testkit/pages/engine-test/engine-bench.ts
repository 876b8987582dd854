/**
 * `npm run bench -- engine` in the browser: decode speed of a shard engine in a Web Worker (all
 * blocks of the model; embedding and head in the page, as a client runs them) next to
 * onnxruntime-web running the whole model as one graph in this page, on the same execution
 * provider, interleaved round by round.
 */
import type { ExecutionProvider } from '../../../shared/engine/api.ts';
import { composePackageWholeModel, composedIo } from '../../../shared/model/compose.ts';
import { blockShards, shardOf } from '../../../shared/model/manifest.ts';
import { decodeModel, encodeModel } from '../../../shared/model/onnx/schema.ts';
import { encodeFrame } from '../../../shared/protocol/frame.ts';
import { cpuKvStoreFactory } from '../../../shared/runtime/kv-cache.ts';
import { engineStage } from '../../../shared/runtime/pipeline.ts';
import type { OrtSession } from '../../../shared/runtime/ort.ts';
import { gpuKvStoreFactory } from '../../../worker/gpu-kv-store.ts';
import { pairedRatio, speed, stagesDecoder, timeInterleaved, wholeModelDecoder } from '../../engine/decoders.ts';
import { startEngineWorker } from '../../../web/engine-client.ts';
import { createEmbeddingTable } from '../../../shared/model/embedding.ts';
import { openWasmHead } from '../../../shared/runtime/wasm-head.ts';
import { manifestOf, ort, packageUrl, read } from './engine-scenarios.ts';
import { HEAD_IO } from '../../../shared/model/graphs/embed-head.ts';

export async function benchEngine(name: string, provider: ExecutionProvider, tokens: number, rounds: number, threads?: number) {
  const manifest = await manifestOf(name);
  const { config } = manifest;
  const get = read(name);
  const worker = startEngineWorker();
  try {
    // The engine's threads, as a donor tab sets them (default: half the cores).
    const engineThreads = await worker.engine.threads(threads);
    const report = await worker.engine.load({ modelId: manifest.id, layers: { start: 0, end: config.nLayers }, source: { kind: 'url', baseUrl: packageUrl(name) }, executionProviders: [provider] });
    const blocks = blockShards(manifest);
    const externalData = await Promise.all(
      [shardOf(manifest, 'embed').data, ...blocks.map((b) => b.data), shardOf(manifest, 'head').data].map(async (path) => ({ path, data: await get(path) })),
    );
    const graph = async (path: string) => decodeModel(await get(path));
    const whole = await composePackageWholeModel(manifest, graph);
    const gpuOutputs: Record<string, 'gpu-buffer'> = Object.fromEntries(blocks.flatMap((b) => [[composedIo.newKey(b.layer), 'gpu-buffer'], [composedIo.newValue(b.layer), 'gpu-buffer']]));
    const wholeSession = (await ort.InferenceSession.create(encodeModel(whole), {
      executionProviders: [provider],
      externalData,
      ...(provider === 'webgpu' ? { preferredOutputLocation: gpuOutputs } : {}),
    })) as unknown as OrtSession;
    const kv = provider === 'webgpu' ? gpuKvStoreFactory(config, { ort: ort as never, device: (await ort.env.webgpu.device) as GPUDevice }) : cpuKvStoreFactory(config, ort as never);
    // The client's head runs on the same provider as the blocks it is compared with; its embedding is a lookup.
    const headShard = shardOf(manifest, 'head');
    // As the browser SDK opens it (shared/grid/client.ts, headOnWasm): on WASM, a quantized head on infermesh's kernels.
    const headFiles = [{ path: headShard.data, data: await get(headShard.data) }];
    const headGraph = await get(headShard.graph);
    const head =
      provider === 'wasm'
        ? await openWasmHead({ config, graph: headGraph, externalData: headFiles }, ort as never)
        : ((await ort.InferenceSession.create(headGraph, { executionProviders: [provider], externalData: headFiles })) as unknown as OrtSession);
    const embedding = createEmbeddingTable(config, await graph(shardOf(manifest, 'embed').graph), await get(shardOf(manifest, 'embed').data));
    const engine = () => stagesDecoder({ config, ort: ort as never, embedding, head, stages: [engineStage(worker.engine)] });
    // The engine also runs alone each round, as a grid runs it: token by token beside the whole
    // model, each step follows one of that graph's (q4: a whole-model MatMulNBits step
    // dequantizes every weight, hundreds of MB written per token), which the next step pays for.
    const times = await timeInterleaved(
      {
        engine: engine(),
        wholeModel: wholeModelDecoder({ config, ort: ort as never, session: wholeSession, kv }),
      },
      { tokens, rounds, alone: { engineAlone: engine() } },
    );
    // The engine's own time per decode step, without the embedding, head or worker hop.
    const frame = (position: number) => encodeFrame({ requestId: 'layer-timing', step: position, position, dims: [1, 1, config.dim], data: new Float32Array(config.dim).fill(0.1) });
    await worker.engine.step(frame(0));
    const t = performance.now();
    const steps = Math.max(4, Math.min(tokens, 16));
    for (let p = 1; p <= steps; p++) await worker.engine.step(frame(p));
    const msPerLayer = (performance.now() - t) / steps / config.nLayers;
    await worker.engine.end('layer-timing');
    // The client's head alone per decode step (one row), on this page's threads: what a token costs outside the layers.
    const headRun = () => head.run({ [HEAD_IO.hidden]: new ort.Tensor('float32', new Float32Array(config.dim).fill(0.1), [1, 1, config.dim]) as never });
    await headRun();
    const th = performance.now();
    for (let i = 0; i < steps; i++) await headRun();
    const msHead = (performance.now() - th) / steps;
    await Promise.all([wholeSession, head].map((s) => s.release()));
    return {
      model: manifest.name,
      dtype: manifest.dtype,
      executionProvider: report.executionProvider,
      threads: engineThreads.threads,
      engine: speed(times.engine, tokens),
      engineAlone: speed(times.engineAlone, tokens),
      wholeModel: speed(times.wholeModel, tokens),
      engineVsWholeModel: pairedRatio(times.engine, times.wholeModel),
      msPerLayerDecode: +msPerLayer.toFixed(3),
      headThreads: ort.env.wasm.numThreads ?? 1,
      msHeadDecode: +msHead.toFixed(3),
    };
  } finally {
    worker.terminate();
  }
}

/** The device handshake as a donor tab's engine worker measures it. */
export async function handshake(options: import('../../../worker/device/handshake.ts').HandshakeOptions) {
  const worker = startEngineWorker();
  try {
    return await worker.engine.handshake(options);
  } finally {
    worker.terminate();
  }
}
