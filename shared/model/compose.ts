/**
 * Stitches a package's per-layer graphs into bigger graphs at load time, without touching the
 * weights: the result references the same external data files.
 *
 * - A stage graph runs a contiguous range of blocks in one session (hidden, positions, past k/v
 *   per layer -> hidden_out, new k/v rows per layer). The package stays one graph per layer so
 *   the coordinator can hand out any range; the node that serves a range joins it here, so a
 *   decode step costs one session run per stage rather than one per layer.
 * - The whole-model graph adds the embedding and the head: the benchmark's baseline.
 */
import { AttributeType, DataType } from './onnx/schema.ts';
import type { Graph, Model, Node, Tensor, ValueInfo } from './onnx/schema.ts';
import { BLOCK_IO } from './graphs/block.ts';
import { EMBED_IO, HEAD_IO } from './graphs/embed-head.ts';
import { blockShards, shardOf } from './manifest.ts';
import type { Manifest } from './manifest.ts';

export const WHOLE_MODEL_FILE = 'whole-model.onnx';

/** Input and output names of stage and whole-model graphs; k/v names carry the model layer index. */
export const composedIo = {
  inputIds: EMBED_IO.inputIds,
  hidden: BLOCK_IO.hidden,
  positions: BLOCK_IO.positions,
  hiddenOut: BLOCK_IO.hiddenOut,
  logits: HEAD_IO.logits,
  pastKey: (layer: number) => `past_key.${layer}`,
  pastValue: (layer: number) => `past_value.${layer}`,
  newKey: (layer: number) => `new_key.${layer}`,
  newValue: (layer: number) => `new_value.${layer}`,
};

interface Parts {
  node: Node[];
  initializer: Tensor[];
  input: ValueInfo[];
  output: ValueInfo[];
}

/** Renames every value of a sub-graph with a prefix, except those mapped explicitly. */
function renamed(graph: Graph, prefix: string, map: Record<string, string>): Parts {
  const name = (n: string) => (n === '' ? n : (map[n] ?? `${prefix}/${n}`));
  const io = (v: ValueInfo) => ({ ...v, name: name(v.name) });
  return {
    node: graph.node.map((n) => ({ ...n, name: `${prefix}/${n.name}`, input: n.input.map(name), output: n.output.map(name) })),
    initializer: graph.initializer.map((t) => ({ ...t, name: name(t.name) })),
    input: graph.input.map(io),
    output: graph.output.map(io),
  };
}

/** Blocks `firstLayer ..` chained on the hidden state; hidden.<l> names the value entering layer l. */
function chainBlocks(blocks: Model[], firstLayer: number, hiddenIn: string, hiddenOut: string): Parts {
  const parts: Parts = { node: [], initializer: [], input: [], output: [] };
  const last = firstLayer + blocks.length - 1;
  blocks.forEach((block, i) => {
    const layer = firstLayer + i;
    const inName = layer === firstLayer ? hiddenIn : `hidden.${layer}`;
    const outName = layer === last ? hiddenOut : `hidden.${layer + 1}`;
    const b = renamed(block.graph, `block-${layer}`, {
      [BLOCK_IO.hidden]: inName,
      [BLOCK_IO.positions]: composedIo.positions,
      [BLOCK_IO.pastKey]: composedIo.pastKey(layer),
      [BLOCK_IO.pastValue]: composedIo.pastValue(layer),
      [BLOCK_IO.hiddenOut]: outName,
      [BLOCK_IO.newKey]: composedIo.newKey(layer),
      [BLOCK_IO.newValue]: composedIo.newValue(layer),
    });
    parts.node.push(...b.node);
    parts.initializer.push(...b.initializer);
    // The chain's own hidden input and the shared positions are declared once, by the caller.
    parts.input.push(...b.input.filter((v) => v.name !== inName && v.name !== composedIo.positions));
    parts.output.push(...b.output.filter((v) => v.name !== outName));
  });
  return parts;
}

function model(first: Model, all: Model[], graph: Graph): Model {
  const opsets = new Map<string, number>();
  for (const m of all) for (const o of m.opsetImport) opsets.set(o.domain ?? '', Math.max(opsets.get(o.domain ?? '') ?? 0, o.version));
  return {
    irVersion: first.irVersion,
    producerName: first.producerName,
    producerVersion: first.producerVersion,
    opsetImport: [...opsets].map(([domain, version]) => ({ domain, version })),
    graph,
  };
}

const ioOf = (graph: Graph, name: string) => {
  const v = graph.input.find((x) => x.name === name) ?? graph.output.find((x) => x.name === name);
  if (!v) throw new Error(`graph ${graph.name} has no value ${name}`);
  return v;
};

/**
 * One graph for blocks firstLayer..firstLayer+blocks.length-1, with the block graphs' I/O names.
 * Given the head, the graph ends with it, on the last row only: hidden, positions, past k/v ->
 * logits [1, 1, vocab], new k/v rows. An in-process pipeline's last stage runs it so, saving
 * the client's head its own session run per token.
 */
export function composeStageGraph(blocks: Model[], firstLayer: number, head?: Model): Model {
  const g0 = blocks[0].graph;
  const gN = blocks[blocks.length - 1].graph;
  const name = `stage-${firstLayer}-${firstLayer + blocks.length}`;
  const input = [ioOf(g0, BLOCK_IO.hidden), ioOf(g0, BLOCK_IO.positions)];
  if (!head) {
    const chain = chainBlocks(blocks, firstLayer, composedIo.hidden, composedIo.hiddenOut);
    return model(blocks[0], blocks, {
      name,
      node: chain.node,
      initializer: chain.initializer,
      input: [...input, ...chain.input],
      output: [ioOf(gN, BLOCK_IO.hiddenOut), ...chain.output],
      docString: `infermesh stage: blocks ${firstLayer}..${firstLayer + blocks.length - 1}`,
    });
  }
  const chain = chainBlocks(blocks, firstLayer, composedIo.hidden, 'hidden.final');
  // The head reads only the last row: hidden.final[:, -1:, :].
  const lastRow = { name: 'last_row', opType: 'Gather', input: ['hidden.final', 'last_row.index'], output: ['hidden.last_row'], attribute: [{ name: 'axis', type: AttributeType.INT, i: 1 }] };
  const lastRowIndex = { name: 'last_row.index', dataType: DataType.INT64, dims: [1], rawData: new Uint8Array(BigInt64Array.of(-1n).buffer) };
  const h = renamed(head.graph, 'head', { [HEAD_IO.hidden]: 'hidden.last_row', [HEAD_IO.logits]: composedIo.logits });
  const logits = ioOf(head.graph, HEAD_IO.logits);
  const [batch, , vocab] = logits.type.tensorType.shape.dim;
  return model(blocks[0], [...blocks, head], {
    name: `${name}-head`,
    node: [...chain.node, lastRow, ...h.node],
    initializer: [...chain.initializer, lastRowIndex, ...h.initializer],
    input: [...input, ...chain.input],
    output: [{ name: composedIo.logits, type: { tensorType: { ...logits.type.tensorType, shape: { dim: [batch, { dimValue: 1 }, vocab] } } } }, ...chain.output],
    docString: `infermesh last stage: blocks ${firstLayer}..${firstLayer + blocks.length - 1} and the head on the last row`,
  });
}

/** input_ids, positions, past k/v per layer -> logits, new k/v rows per layer. */
export function composeWholeModel(embed: Model, blocks: Model[], head: Model): Model {
  const e = renamed(embed.graph, 'embed', { [EMBED_IO.inputIds]: composedIo.inputIds, [EMBED_IO.hidden]: 'hidden.0' });
  const chain = chainBlocks(blocks, 0, 'hidden.0', `hidden.${blocks.length}`);
  const h = renamed(head.graph, 'head', { [HEAD_IO.hidden]: `hidden.${blocks.length}`, [HEAD_IO.logits]: composedIo.logits });
  return model(embed, [embed, ...blocks, head], {
    name: 'whole-model',
    node: [...e.node, ...chain.node, ...h.node],
    initializer: [...e.initializer, ...chain.initializer, ...h.initializer],
    input: [...e.input, ioOf(blocks[0].graph, BLOCK_IO.positions), ...chain.input],
    output: [...h.output, ...chain.output],
    docString: 'infermesh whole-model baseline',
  });
}

/** The whole-model graph of a package, its graphs read by `read` (from disk, or fetched). */
export async function composePackageWholeModel(manifest: Manifest, read: (graphPath: string) => Promise<Model>): Promise<Model> {
  return composeWholeModel(
    await read(shardOf(manifest, 'embed').graph),
    await Promise.all(blockShards(manifest).map((b) => read(b.graph))),
    await read(shardOf(manifest, 'head').graph),
  );
}
