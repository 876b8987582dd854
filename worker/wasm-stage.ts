/**
 * How a stage opens on the WASM provider, for the engine (engine.ts) and its layer probe
 * (device/layer-probe.ts) alike. onnxruntime has no quantized WASM kernel, so:
 * - q4/q8 blocks as the compiler builds them run on infermesh's own SIMD kernels against the
 *   packed weights (shared/runtime/quantized/quantized-stage.ts);
 * - any other quantized graph runs on onnxruntime with its linears unpacked to f32 once
 *   (shared/model/dequantize-linears.ts), the reason recorded;
 * - f32 graphs run on onnxruntime as they are.
 */
import type { ModelConfig } from '../shared/model/config.ts';
import { dequantizeLinears } from '../shared/model/dequantize-linears.ts';
import type { ExternalFile } from '../shared/model/dequantize-linears.ts';
import { encodeModel } from '../shared/model/onnx/schema.ts';
import type { Model } from '../shared/model/onnx/schema.ts';
import type { OrtModule, OrtSession, OrtSessionOptions } from '../shared/runtime/ort.ts';
import { graphDtype } from '../shared/runtime/quantized/compiled-graph.ts';
import { openQuantizedStage } from '../shared/runtime/quantized/quantized-stage.ts';
import type { SpawnGemvHelper } from '../shared/runtime/quantized/gemv-threads.ts';

export interface WasmStageGraphs {
  config: ModelConfig;
  firstLayer: number;
  /** the range's block graphs, in layer order */
  blocks: Model[];
  /** the same blocks stitched into one graph (shared/model/compose.ts) */
  graph: Model;
  externalData: ExternalFile[];
}

export interface OpenedWasmStage {
  session: OrtSession;
  /** bytes the weights take beyond the package's own copy, and how the stage runs */
  extra?: { bytes: number; note: string };
}

/** The threads the quantized kernels may split their products among (a donor's setting), and how to start one. */
export interface WasmKernelThreads {
  threads: number;
  spawn: SpawnGemvHelper;
}

const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(1);

export async function openWasmStage(g: WasmStageGraphs, ort: OrtModule, sessionOptions: OrtSessionOptions = {}, kernels?: WasmKernelThreads): Promise<OpenedWasmStage> {
  const dtype = graphDtype(g.blocks[0]);
  let refused = '';
  if (dtype !== 'f32') {
    try {
      const session = await openQuantizedStage({ config: g.config, firstLayer: g.firstLayer, blocks: g.blocks, externalData: g.externalData, threads: kernels?.threads }, { ort, spawn: kernels?.spawn });
      const threads = session.threads === 1 ? 'one thread' : `${session.threads} threads`;
      return { session, extra: { bytes: session.weightBytes, note: `${dtype} blocks run on infermesh's WASM SIMD kernels, on ${threads}, against the packed weights (${mib(session.weightBytes)} MiB)` } };
    } catch (err) {
      if ((err as Error).name !== 'UnsupportedGraphError') throw err;
      refused = `${(err as Error).message}, so `;
    }
  }
  const d = dequantizeLinears(g.graph, g.externalData);
  const session = await ort.InferenceSession.create(encodeModel(d.model), { ...sessionOptions, executionProviders: ['wasm'], externalData: d.externalData });
  if (d.rewritten === 0) return { session };
  return { session, extra: { bytes: d.f32Bytes - d.quantizedBytes, note: `${refused}${d.rewritten} quantized linears are unpacked to f32 for onnxruntime (${mib(d.quantizedBytes)} -> ${mib(d.f32Bytes)} MiB)` } };
}
