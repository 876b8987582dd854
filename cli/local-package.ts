/**
 * Opens a model package from a directory for local generation with onnxruntime-node:
 * reads and checks the manifest, checks every file's size (and, when asked, every piece's
 * SHA-256), opens one session per graph and splits the blocks into in-process stages.
 */
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { PackageError } from '../shared/errors.ts';
import { blockShards, MANIFEST_FILE, parseManifest, sha256Hex, shardOf } from '../shared/model/manifest.ts';
import type { Manifest } from '../shared/model/manifest.ts';
import { createPipeline } from '../shared/runtime/pipeline.ts';
import type { Pipeline } from '../shared/runtime/pipeline.ts';
import { createStage, splitLayers } from '../shared/runtime/stage.ts';
import type { OrtSession } from '../shared/runtime/ort.ts';
import { loadTokenizer } from '../shared/tokenizer/load.ts';

export interface OpenPackageOptions {
  stages: number;
  /** hash every piece before running (slow for big packages; sizes are always checked) */
  verifyPieces?: boolean;
  /** intra-op threads per session; default: onnxruntime's choice */
  threads?: number;
}

export async function readPackageManifest(dir: string): Promise<Manifest> {
  const path = join(dir, MANIFEST_FILE);
  const text = await readFile(path, 'utf8').catch((err: NodeJS.ErrnoException) => {
    throw new PackageError(err.code === 'ENOENT' ? 'not a model package (no manifest.json)' : `cannot read manifest: ${err.message}`, { source: dir });
  });
  return parseManifest(text, path);
}

export async function checkPackageFiles(dir: string, manifest: Manifest, verifyPieces: boolean): Promise<void> {
  for (const file of manifest.files) {
    const path = join(dir, file.path);
    const info = await stat(path).catch(() => null);
    if (!info) throw new PackageError('file listed in the manifest is missing', { source: path });
    if (info.size !== file.size) throw new PackageError(`size ${info.size} does not match the manifest (${file.size})`, { source: path });
    if (!verifyPieces) continue;
    const bytes = await readFile(path);
    for (let i = 0; i < file.pieces.length; i++) {
      const piece = bytes.subarray(i * manifest.pieceSize, (i + 1) * manifest.pieceSize);
      if ((await sha256Hex(piece)) !== file.pieces[i]) throw new PackageError(`piece ${i} fails its SHA-256 check`, { source: path });
    }
  }
}

export function sessionOptions(threads?: number): ort.InferenceSession.SessionOptions {
  return {
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
    ...(threads ? { intraOpNumThreads: threads } : {}),
  };
}

export async function openSession(path: string, threads?: number): Promise<OrtSession> {
  try {
    return await ort.InferenceSession.create(path, sessionOptions(threads));
  } catch (err) {
    throw new PackageError(`onnxruntime cannot load graph: ${(err as Error).message.split('\n')[0]}`, { source: path, cause: err });
  }
}

export async function openLocalPipeline(dir: string, options: OpenPackageOptions): Promise<{ manifest: Manifest; pipeline: Pipeline; release(): Promise<void> }> {
  const manifest = await readPackageManifest(dir);
  await checkPackageFiles(dir, manifest, options.verifyPieces ?? false);
  const { config } = manifest;
  const ranges = splitLayers(config.nLayers, options.stages);
  const tokenizerFiles = [manifest.tokenizer.file, ...('configFile' in manifest.tokenizer && manifest.tokenizer.configFile ? [manifest.tokenizer.configFile] : [])];
  const [main, extra] = await Promise.all(tokenizerFiles.map((f) => readFile(join(dir, f))));
  const tokenizer = loadTokenizer(manifest, new Uint8Array(main), extra ? new Uint8Array(extra) : undefined);

  const blocks = blockShards(manifest);
  const blockSessions = await Promise.all(blocks.map((b) => openSession(join(dir, b.graph), options.threads)));
  const stages = ranges.map((layers) => createStage({ config, layers, sessions: blockSessions.slice(layers.start, layers.end) }, { ort }));
  const embed = await openSession(join(dir, shardOf(manifest, 'embed').graph), options.threads);
  const head = await openSession(join(dir, shardOf(manifest, 'head').graph), options.threads);
  const pipeline = createPipeline({ config, tokenizer: tokenizer.tokenizer, stopIds: tokenizer.stopIds, embed, head, stages }, { ort });
  return {
    manifest,
    pipeline,
    async release() {
      await Promise.all([...stages.map((s) => s.release()), embed.release(), head.release()]);
    },
  };
}
