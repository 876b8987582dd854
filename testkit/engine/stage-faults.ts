/**
 * What each stage fault (stage-fault.ts) does to a shard engine: what a donor that wants to be
 * paid for less work would run instead of its layers, so tests and real browser tabs (the
 * faulty donor page) can show the validator catching each one. The faulty engine
 * (faulty-engine.ts) uses two things here around an honest engine:
 *
 * - faultShard: the graphs and weights it opens instead of the package's (other-model,
 *   q4-weights, skip-layer); the result has the honest shard's inputs and outputs.
 * - createStepFault: what it does to each step's output (noise, replay-old-output).
 *
 * Every faulted step still answers with a frame of the right shape, at the speed of an honest
 * one or faster, so the grid keeps running and only the validator's replay can tell.
 */
import { StageFaultError } from './stage-fault.ts';
import type { StageFault } from './stage-fault.ts';
import { blockTensorNames } from '../../shared/model/checkpoint.ts';
import type { ModelConfig } from '../../shared/model/config.ts';
import { buildBlockGraph, BLOCK_IO } from '../../shared/model/graphs/block.ts';
import { transpose } from '../../shared/model/graphs/linear.ts';
import { createWeightFile } from '../../shared/model/graphs/weight-file.ts';
import { createGraphBuilder } from '../../shared/model/onnx/graph-builder.ts';
import { DataType } from '../../shared/model/onnx/schema.ts';
import type { Model, Tensor } from '../../shared/model/onnx/schema.ts';
import type { Manifest } from '../../shared/model/manifest.ts';
import type { HiddenFrame } from '../../shared/protocol/frame.ts';
import type { LayerRange } from '../../shared/runtime/stage.ts';
import { Xoshiro128 } from '../../shared/model/synthetic/random.ts';

export interface ShardGraphs {
  /** block graphs of the range, in layer order */
  blocks: Model[];
  /** external weight files the graphs reference, by the path written in them */
  externalData: { path: string; data: Uint8Array }[];
}

/** The graphs and weights a faulted engine opens; the honest shard for faults that act on outputs. */
export async function faultShard(fault: StageFault | undefined, manifest: Manifest, layers: LayerRange, shard: ShardGraphs): Promise<ShardGraphs> {
  switch (fault?.kind) {
    case 'other-model':
      return permutedWeights(shard, layers);
    case 'q4-weights':
      return requantized(manifest, layers, shard);
    case 'skip-layer':
      return withoutOneLayer(manifest.config, layers, shard);
    default:
      return shard;
  }
}

/** Which layer of a range skip-layer leaves out: the middle one of 3 or more, else the last. */
export function skippedLayer(layers: LayerRange): number {
  const count = layers.end - layers.start;
  return layers.start + (count >= 3 ? Math.floor(count / 2) : count - 1);
}

interface ExternalTensor {
  tensor: Tensor;
  location: string;
  offset: number;
  length: number;
}

function externalTensors(model: Model): ExternalTensor[] {
  return model.graph.initializer
    .filter((t) => t.dataLocation === 1)
    .map((tensor) => {
      const entry = (key: string) => tensor.externalData?.find((e) => e.key === key)?.value;
      return { tensor, location: entry('location') ?? '', offset: Number(entry('offset') ?? 0), length: Number(entry('length')) };
    });
}

/** The project's seeded generator (synthetic checkpoints use it too): a fault is the same cheat on every run and host. */
function seededRandom(seed: number): () => number {
  const generator = Xoshiro128.forTensor(seed, 'stage-fault');
  return () => generator.nextFloat();
}

/**
 * other-model: every weight tensor of every block shuffled by a seeded permutation of its own
 * elements. A stage holds only its range's pieces, and a 1-layer stage has no other layer to
 * swap in, so "another model" is made from the weights at hand: the same shapes, dtype, value
 * distribution and norms as the package (what a same-architecture model a cheater already holds
 * looks like to anything but a replay), with none of the package's structure. Works on any
 * dtype: f32 values move as 4-byte elements, q4/q8 packed bytes as bytes, their scales as floats.
 */
function permutedWeights(shard: ShardGraphs, layers: LayerRange): ShardGraphs {
  const files = new Map(shard.externalData.map((f) => [f.path, f.data.slice()]));
  shard.blocks.forEach((block, i) => {
    externalTensors(block).forEach(({ tensor, location, offset, length }, t) => {
      const data = files.get(location);
      if (!data) return;
      const random = seededRandom(0x0face + 7919 * (layers.start + i) + t);
      // Offsets are 64-byte aligned (weight-file.ts), so floats can be moved as whole u32s.
      const elements = tensor.dataType === DataType.FLOAT ? new Uint32Array(data.buffer, data.byteOffset + offset, length / 4) : data.subarray(offset, offset + length);
      for (let a = elements.length - 1; a > 0; a--) {
        const b = Math.floor(random() * (a + 1));
        const kept = elements[a];
        elements[a] = elements[b];
        elements[b] = kept;
      }
    });
  });
  return { blocks: shard.blocks, externalData: shard.externalData.map((f) => ({ path: f.path, data: files.get(f.path)! })) };
}

/**
 * q4-weights: the f32 blocks rebuilt by the compiler's own block builder at q4 (MatMulNBits,
 * shared/model/graphs/block.ts and quantize.ts) from the package's f32 weights, so the stage
 * runs exactly what a q4 package of the same checkpoint would. Only an f32 package has weights
 * to quantize this way; on q8 or q4 the fault is refused rather than quietly doing nothing.
 */
async function requantized(manifest: Manifest, layers: LayerRange, shard: ShardGraphs): Promise<ShardGraphs> {
  if (manifest.dtype !== 'f32') {
    throw new StageFaultError(`q4-weights runs an f32 package's layers as q4; this package is ${manifest.dtype}`);
  }
  const files = new Map(shard.externalData.map((f) => [f.path, f.data]));
  const blocks: Model[] = [];
  const externalData: ShardGraphs['externalData'] = [];
  for (const [i, block] of shard.blocks.entries()) {
    const layer = layers.start + i;
    const stored = new Map<string, Float32Array>();
    for (const { tensor, location, offset, length } of externalTensors(block)) {
      const bytes = files.get(location)!.slice(offset, offset + length);
      const values = new Float32Array(bytes.buffer, 0, length / 4);
      // Linear weights are stored as W^T [in, out] for MatMul; the builder takes nn.Linear's [out, in].
      stored.set(tensor.name, tensor.dims.length === 2 ? transpose(values, tensor.dims[0], tensor.dims[1]) : values);
    }
    const n = blockTensorNames(layer);
    const biasOf: Record<string, string> = { [n.bq]: `${n.wq}.bias`, [n.bk]: `${n.wk}.bias`, [n.bv]: `${n.wv}.bias` };
    const chunks: Uint8Array[] = [];
    const file = createWeightFile(`fault-q4/block-${layer}.data`, async (bytes) => void chunks.push(bytes.slice()));
    blocks.push(
      await buildBlockGraph(manifest.config, layer, 'q4', file, async (name) => {
        const values = stored.get(name) ?? stored.get(biasOf[name]);
        if (!values) throw new StageFaultError(`q4-weights: block ${layer} has no weight ${name}`);
        return values;
      }),
    );
    const data = new Uint8Array(file.size());
    let at = 0;
    for (const c of chunks) (data.set(c, at), (at += c.byteLength));
    externalData.push({ path: file.location, data });
  }
  return { blocks, externalData };
}

/**
 * A block that does nothing: hidden_out is its input, and the k/v rows it hands the cache are
 * zeros of the right shape (the stage still appends them, so positions stay consistent).
 */
function passThroughBlock(config: ModelConfig, layer: number): Model {
  const g = createGraphBuilder(`skipped-block-${layer}`);
  const x = g.input(BLOCK_IO.hidden, DataType.FLOAT, [1, 'seq', config.dim]);
  const positions = g.input(BLOCK_IO.positions, DataType.INT64, [1, 'seq']);
  g.input(BLOCK_IO.pastKey, DataType.FLOAT, [1, 'past', config.nKvHeads, config.headDim]);
  g.input(BLOCK_IO.pastValue, DataType.FLOAT, [1, 'past', config.nKvHeads, config.headDim]);
  g.op('Identity', [x], {}, { output: BLOCK_IO.hiddenOut });
  const shape = g.op('Concat', [g.op('Shape', [positions]), g.constInt64([config.nKvHeads, config.headDim], [2])], { axis: 0 });
  g.op('ConstantOfShape', [shape], {}, { output: BLOCK_IO.newKey });
  g.op('ConstantOfShape', [shape], {}, { output: BLOCK_IO.newValue });
  g.output(BLOCK_IO.hiddenOut, DataType.FLOAT, [1, 'seq', config.dim]);
  g.output(BLOCK_IO.newKey, DataType.FLOAT, [1, 'seq', config.nKvHeads, config.headDim]);
  g.output(BLOCK_IO.newValue, DataType.FLOAT, [1, 'seq', config.nKvHeads, config.headDim]);
  return g.build(`infermesh skipped block ${layer} (fault)`);
}

/**
 * skip-layer: one block of the range replaced by a pass-through. The middle one of three or
 * more, so the cheat is not only "stop early"; the last one of two; on a 1-layer stage the
 * stage returns its input. Its weights are not opened at all.
 */
function withoutOneLayer(config: ModelConfig, layers: LayerRange, shard: ShardGraphs): ShardGraphs {
  const index = skippedLayer(layers) - layers.start;
  const dropped = new Set(externalTensors(shard.blocks[index]).map((t) => t.location));
  return {
    blocks: shard.blocks.map((b, i) => (i === index ? passThroughBlock(config, layers.start + i) : b)),
    externalData: shard.externalData.filter((f) => !dropped.has(f.path)),
  };
}

/** A fault on each step's output: the engine hands it the parsed frame and the honest forward to call, or not. */
export interface StepFault {
  forward(frame: HiddenFrame, honest: (frame: HiddenFrame) => Promise<HiddenFrame>): Promise<HiddenFrame>;
  end(requestId: string): void;
}

/** The step fault of a load request's fault; null when the fault acts on weights or there is none. */
export function createStepFault(fault: StageFault | undefined, seed = 0x5eed): StepFault | null {
  if (fault?.kind === 'noise') return noiseFault(fault.sigma, seed);
  if (fault?.kind === 'replay-old-output') return replayFault();
  return null;
}

/** noise: Gaussian noise (Box-Muller) of sigma × each row's RMS added to every output value. */
function noiseFault(sigma: number, seed: number): StepFault {
  const random = seededRandom(seed);
  const gaussian = () => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
  return {
    async forward(frame, honest) {
      const out = await honest(frame);
      const width = out.dims[out.dims.length - 1];
      const data = out.data.slice();
      for (let row = 0; row < data.length / width; row++) {
        let sumSq = 0;
        for (let j = row * width; j < (row + 1) * width; j++) sumSq += data[j] * data[j];
        const scale = sigma * Math.sqrt(sumSq / width);
        for (let j = row * width; j < (row + 1) * width; j++) data[j] += scale * gaussian();
      }
      return { ...out, data };
    },
    end() {},
  };
}

/** Requests remembered by replay-old-output; beyond this, the oldest is forgotten (it then computes once more). */
const REPLAY_MEMORY = 1024;

/**
 * replay-old-output: the first decode step is computed (the prefill's output has the prompt's
 * rows, the wrong shape for a decode step); from the second on, the stage returns the output it
 * gave one step earlier for the same request and runs nothing, so its KV cache stops growing.
 */
function replayFault(): StepFault {
  const last = new Map<string, { steps: number; rows: number; data: Float32Array }>();
  return {
    async forward(input, honest) {
      const seen = last.get(input.requestId);
      const rows = input.dims[1];
      if (seen && seen.steps >= 2 && rows === 1 && seen.rows === 1) {
        seen.steps++;
        return { ...input, data: seen.data.slice() };
      }
      const output = await honest(input);
      last.delete(input.requestId);
      last.set(input.requestId, { steps: (seen?.steps ?? 0) + 1, rows, data: output.data.slice() });
      if (last.size > REPLAY_MEMORY) last.delete(last.keys().next().value!);
      return output;
    },
    end(requestId) {
      last.delete(requestId);
    },
  };
}
