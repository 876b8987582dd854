/**
 * The model compiler: a Checkpoint in, a model package out (see ARCHITECTURE.md, "Model
 * package"). It walks the model one graph at a time — embed, each block, head — reading only
 * that graph's tensors, so memory stays near one layer's weights whatever the model size.
 */
import type { Checkpoint } from './checkpoint.ts';
import { expectedTensors } from './checkpoint.ts';
import { blockParameterCount, validateConfig } from './config.ts';
import { CheckpointFormatError } from '../errors.ts';
import { encodeModel } from './onnx/schema.ts';
import type { Model } from './onnx/schema.ts';
import { buildBlockGraph } from './graphs/block.ts';
import { buildEmbedGraph, buildHeadGraph } from './graphs/embed-head.ts';
import type { WeightDtype } from './graphs/linear.ts';
import { createWeightFile } from './graphs/weight-file.ts';
import type { WeightFile } from './graphs/weight-file.ts';
import { createPieceHasher, MANIFEST_FILE, manifestId, PACKAGE_FORMAT, PIECE_SIZE } from './manifest.ts';
import type { Manifest, PackageFile, PackageTokenizer, Shard } from './manifest.ts';
import type { PackageSink } from './package-sink.ts';

export interface CompileOptions {
  dtype: WeightDtype;
  /** Display name; defaults to the checkpoint source. */
  name?: string;
}

export interface CompileProgress {
  /** what is being written, e.g. "block 3/12" */
  step: string;
  /** parameters written so far and in all */
  done: number;
  total: number;
}

export interface CompileDeps {
  sink: PackageSink;
  onProgress?: (p: CompileProgress) => void;
}

export async function compilePackage(checkpoint: Checkpoint, options: CompileOptions, deps: CompileDeps): Promise<Manifest> {
  const { sink } = deps;
  const config = validateConfig(checkpoint.config, checkpoint.source);
  checkTensorShapes(checkpoint);
  const files: PackageFile[] = [];
  const shards: Shard[] = [];

  const writeWhole = async (path: string, bytes: Uint8Array) => {
    const file = await sink.create(path);
    const hasher = createPieceHasher();
    hasher.push(bytes);
    await file.write(bytes);
    await file.close();
    files.push(await hasher.finish(path));
  };

  // One graph + its external data file; the data is streamed tensor by tensor.
  const emitGraph = async (graphPath: string, dataPath: string, build: (w: WeightFile) => Promise<Model>) => {
    const out = await sink.create(dataPath);
    const hasher = createPieceHasher();
    const weights = createWeightFile(dataPath, async (bytes) => {
      hasher.push(bytes);
      await out.write(bytes);
    });
    const model = await build(weights);
    await out.close();
    files.push(await hasher.finish(dataPath));
    await writeWhole(graphPath, encodeModel(model));
  };

  const embedParams = config.vocabSize * config.dim;
  const total = embedParams * 2 + config.nLayers * blockParameterCount(config);
  let done = 0;
  const progress = (step: string, params: number) => {
    done += params;
    deps.onProgress?.({ step, done, total });
  };
  const read = (name: string) => checkpoint.read(name);

  try {
    deps.onProgress?.({ step: 'embed', done, total });
    await emitGraph('embed.onnx', 'embed.data', (w) => buildEmbedGraph(config, w, read));
    shards.push({ kind: 'embed', graph: 'embed.onnx', data: 'embed.data' });
    progress(`block 1/${config.nLayers}`, embedParams);

    for (let layer = 0; layer < config.nLayers; layer++) {
      const graph = `block-${layer}.onnx`;
      const data = `block-${layer}.data`;
      await emitGraph(graph, data, (w) => buildBlockGraph(config, layer, options.dtype, w, read));
      shards.push({ kind: 'block', layer, graph, data });
      progress(layer + 1 < config.nLayers ? `block ${layer + 2}/${config.nLayers}` : 'head', blockParameterCount(config));
    }

    await emitGraph('head.onnx', 'head.data', (w) => buildHeadGraph(config, options.dtype, w, read));
    shards.push({ kind: 'head', graph: 'head.onnx', data: 'head.data' });
    progress('manifest', embedParams);

    const tokenizer = await writeTokenizer(checkpoint, writeWhole);
    const body: Omit<Manifest, 'id'> = {
      format: PACKAGE_FORMAT,
      name: options.name ?? checkpoint.source,
      source: checkpoint.source,
      architecture: config.architecture,
      config,
      dtype: options.dtype,
      tokenizer,
      pieceSize: PIECE_SIZE,
      shards,
      files,
    };
    const manifest: Manifest = { id: await manifestId(body), ...body };
    const file = await sink.create(MANIFEST_FILE);
    await file.write(new TextEncoder().encode(`${JSON.stringify(manifest, null, 2)}\n`));
    await file.close();
    await sink.commit();
    return manifest;
  } catch (err) {
    await sink.abort();
    throw err;
  }
}

async function writeTokenizer(checkpoint: Checkpoint, writeWhole: (path: string, bytes: Uint8Array) => Promise<void>): Promise<PackageTokenizer> {
  const t = checkpoint.tokenizer;
  if (t.kind === 'llama2c') {
    await writeWhole('tokenizer.bin', t.bytes);
    return { kind: 'llama2c', file: 'tokenizer.bin' };
  }
  await writeWhole('tokenizer.json', t.tokenizerJson);
  if (!t.tokenizerConfigJson) return { kind: 'huggingface', file: 'tokenizer.json' };
  await writeWhole('tokenizer_config.json', t.tokenizerConfigJson);
  return { kind: 'huggingface', file: 'tokenizer.json', configFile: 'tokenizer_config.json' };
}

/** Fails before writing anything if the checkpoint's tensors do not fit its config. */
function checkTensorShapes(checkpoint: Checkpoint): void {
  const have = new Map(checkpoint.tensors().map((t) => [t.name, t.shape]));
  for (const want of expectedTensors(checkpoint.config)) {
    const shape = have.get(want.name);
    if (!shape) throw new CheckpointFormatError(`missing tensor ${want.name}`, { source: checkpoint.source });
    if (shape.join('x') !== want.shape.join('x')) {
      throw new CheckpointFormatError(`tensor ${want.name} has shape [${shape}], expected [${want.shape}]`, { source: checkpoint.source });
    }
  }
}
