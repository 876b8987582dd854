/**
 * Opens a model package from a directory for local generation with onnxruntime-node:
 * reads and checks the manifest, checks every file's size (and, when asked, every piece's
 * SHA-256), splits the blocks into in-process stages and opens one session per stage.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { PackageError } from '../../shared/errors.ts';
import { blockShards, shardOf } from '../../shared/model/manifest.ts';
import { checkPackageFiles, readPackageManifest } from './package-files.ts';
import type { Manifest } from '../../shared/model/manifest.ts';
import { createPipeline, HEAD_IN_LAST_STAGE } from '../../shared/runtime/pipeline.ts';
import type { Pipeline } from '../../shared/runtime/pipeline.ts';
import { createStage, splitLayers } from '../../shared/runtime/stage.ts';
import type { LayerRange, Stage } from '../../shared/runtime/stage.ts';
import { composeStageGraph } from '../../shared/model/compose.ts';
import { decodeModel, encodeModel } from '../../shared/model/onnx/schema.ts';
import type { Model } from '../../shared/model/onnx/schema.ts';
import { PIPELINE_SESSION_OPTIONS } from '../../shared/runtime/ort.ts';
import type { OrtSession, OrtSessionOptions } from '../../shared/runtime/ort.ts';
import { createInlineSession, eventLoopTurn } from './inline-session.ts';
import { loadTokenizer } from '../../shared/tokenizer/load.ts';
import type { LoadedTokenizer } from '../../shared/tokenizer/load.ts';
import { createEmbeddingTable } from '../../shared/model/embedding.ts';
import type { EmbeddingTable } from '../../shared/model/embedding.ts';

export interface OpenPackageOptions {
  stages: number;
  /** hash every piece before running (slow for big packages; sizes are always checked) */
  verifyPieces?: boolean;
  /** intra-op threads per session; default: onnxruntime's choice */
  threads?: number;
}

/** `base`: the pipeline's settings, or `{}` for onnxruntime's defaults (a benchmark's reference). */
export function sessionOptions(threads?: number, externalDataDir?: string, base: OrtSessionOptions = PIPELINE_SESSION_OPTIONS): ort.InferenceSession.SessionOptions {
  return {
    ...base,
    ...(threads ? { intraOpNumThreads: threads } : {}),
    extra: {
      session: {
        ...(base.extra as { session?: object } | undefined)?.session,
        // Graphs composed in memory find their external weight files here.
        ...(externalDataDir ? { model_external_initializers_file_folder_path: externalDataDir } : {}),
      },
    },
  };
}

export interface SessionChoice {
  /** intra-op threads; default: onnxruntime's choice */
  threads?: number;
  /** the pipeline's settings, or `{}` for onnxruntime's defaults (a benchmark's reference) */
  base?: OrtSessionOptions;
  /** run without the event-loop turn the public API takes per run (worker/node/inline-session.ts) */
  inline?: boolean;
}

/** Opens a graph file, or a graph composed in memory whose weights live in `dir`. */
export async function openSession(graph: string | { model: Model; dir: string; name: string }, choice: SessionChoice = {}): Promise<OrtSession> {
  const source = typeof graph === 'string' ? graph : join(graph.dir, graph.name);
  const model = typeof graph === 'string' ? graph : encodeModel(graph.model);
  const options = sessionOptions(choice.threads, typeof graph === 'string' ? undefined : graph.dir, choice.base);
  try {
    if (choice.inline) return createInlineSession(model, options);
    // Two calls because create's overloads take a path or bytes, not their union.
    return typeof model === 'string' ? await ort.InferenceSession.create(model, options) : await ort.InferenceSession.create(model, options);
  } catch (err) {
    throw new PackageError(`onnxruntime cannot load graph: ${(err as Error).message.split('\n')[0]}`, { source, cause: err });
  }
}

export async function readGraph(dir: string, file: string): Promise<Model> {
  return decodeModel(new Uint8Array(await readFile(join(dir, file))));
}

/** The client's embedding: a lookup into embed.data (shared/model/embedding.ts). */
export async function openEmbedding(dir: string, manifest: Manifest): Promise<EmbeddingTable> {
  const shard = shardOf(manifest, 'embed');
  return createEmbeddingTable(manifest.config, await readGraph(dir, shard.graph), new Uint8Array(await readFile(join(dir, shard.data))));
}

/**
 * One session for blocks range.start..range.end-1, stitched from their per-layer graphs; with
 * `head`, ending in the head on the last row (the last stage of an in-process pipeline).
 */
export async function openStageSession(dir: string, manifest: Manifest, range: LayerRange, choice: Omit<SessionChoice, 'base'> & { head?: boolean } = {}): Promise<OrtSession> {
  const blocks = blockShards(manifest).slice(range.start, range.end);
  const head = choice.head ? await readGraph(dir, shardOf(manifest, 'head').graph) : undefined;
  const model = composeStageGraph(await Promise.all(blocks.map((b) => readGraph(dir, b.graph))), range.start, head);
  return openSession({ model, dir, name: `stage ${range.start}..${range.end - 1}${head ? ' and head' : ''}` }, { threads: choice.threads, inline: choice.inline });
}

/** What a client runs itself: the tokenizer, the embedding lookup and the head of a package. */
export interface ClientSide {
  manifest: Manifest;
  tokenizer: LoadedTokenizer;
  embedding: EmbeddingTable;
  head: OrtSession;
}

/** A package's manifest (checked against its files), tokenizer and embedding lookup. */
async function openClientEnd(dir: string, options: { verifyPieces?: boolean }): Promise<Omit<ClientSide, 'head'>> {
  const manifest = await readPackageManifest(dir);
  await checkPackageFiles(dir, manifest, options.verifyPieces ?? false);
  const tokenizerFiles = [manifest.tokenizer.file, ...('configFile' in manifest.tokenizer && manifest.tokenizer.configFile ? [manifest.tokenizer.configFile] : [])];
  const [main, extra] = await Promise.all(tokenizerFiles.map((f) => readFile(join(dir, f))));
  const tokenizer = loadTokenizer(manifest, new Uint8Array(main), extra ? new Uint8Array(extra) : undefined);
  return { manifest, tokenizer, embedding: await openEmbedding(dir, manifest) };
}

export async function openClientSide(dir: string, options: { verifyPieces?: boolean; threads?: number } = {}): Promise<ClientSide> {
  const end = await openClientEnd(dir, options);
  return { ...end, head: await openSession(join(dir, shardOf(end.manifest, 'head').graph), { threads: options.threads }) };
}

/**
 * The local runner: the blocks split into in-process stages that pass hidden-state frames as
 * grid stages do. Unlike a grid client, it runs the head in the last stage's session rather
 * than in its own: one session run less per token, which on 2 vCPUs was ~4% of a 110m decode
 * step (each run wakes its session's thread pool; bench local). Its sessions run inline
 * (worker/node/inline-session.ts) and the event loop turns once per token instead of once per stage.
 */
export async function openLocalPipeline(dir: string, options: OpenPackageOptions): Promise<{ manifest: Manifest; pipeline: Pipeline; release(): Promise<void> }> {
  const { manifest, tokenizer, embedding } = await openClientEnd(dir, options);
  const { config } = manifest;
  const ranges = splitLayers(config.nLayers, options.stages);
  const stages: Stage[] = [];
  for (const [i, layers] of ranges.entries()) {
    const session = await openStageSession(dir, manifest, layers, { threads: options.threads, head: i === ranges.length - 1, inline: true });
    stages.push(createStage({ config, layers, session }, { ort }));
  }
  const pipeline = createPipeline({ config, tokenizer: tokenizer.tokenizer, stopIds: tokenizer.stopIds, embedding, head: HEAD_IN_LAST_STAGE, stages }, { ort, beforeStep: eventLoopTurn });
  return {
    manifest,
    pipeline,
    async release() {
      await Promise.all(stages.map((s) => s.release()));
    },
  };
}
