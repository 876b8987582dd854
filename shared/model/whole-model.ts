/**
 * Stitches a package's embed, block and head graphs into one whole-model graph
 * (input_ids, positions, past k/v per layer -> logits, present k/v per layer) that reads the
 * same external weight files. The benchmark runs it as the baseline the staged pipeline is
 * measured against: same weights, same ops, one session instead of many.
 */
import type { Graph, Model, Node, Tensor, ValueInfo } from './onnx/schema.ts';
import { BLOCK_IO } from './graphs/block.ts';
import { EMBED_IO, HEAD_IO } from './graphs/embed-head.ts';

export const WHOLE_MODEL_FILE = 'whole-model.onnx';
export const wholeModelIo = {
  inputIds: EMBED_IO.inputIds,
  positions: BLOCK_IO.positions,
  logits: HEAD_IO.logits,
  pastKey: (layer: number) => `past_key.${layer}`,
  pastValue: (layer: number) => `past_value.${layer}`,
  presentKey: (layer: number) => `present_key.${layer}`,
  presentValue: (layer: number) => `present_value.${layer}`,
};

/** Renames every value of a sub-graph with a prefix, except those mapped explicitly. */
function renamed(graph: Graph, prefix: string, map: Record<string, string>) {
  const name = (n: string) => (n === '' ? n : (map[n] ?? `${prefix}/${n}`));
  const node: Node[] = graph.node.map((n) => ({ ...n, name: `${prefix}/${n.name}`, input: n.input.map(name), output: n.output.map(name) }));
  const initializer: Tensor[] = graph.initializer.map((t) => ({ ...t, name: name(t.name) }));
  const io = (v: ValueInfo) => ({ ...v, name: name(v.name) });
  return { node, initializer, input: graph.input.map(io), output: graph.output.map(io) };
}

export function composeWholeModel(embed: Model, blocks: Model[], head: Model): Model {
  const nodes: Node[] = [];
  const initializers: Tensor[] = [];
  const inputs: ValueInfo[] = [];
  const outputs: ValueInfo[] = [];

  const e = renamed(embed.graph, 'embed', { [EMBED_IO.inputIds]: wholeModelIo.inputIds, [EMBED_IO.hidden]: 'hidden.0' });
  nodes.push(...e.node);
  initializers.push(...e.initializer);
  inputs.push(...e.input);

  blocks.forEach((block, i) => {
    const b = renamed(block.graph, `block-${i}`, {
      [BLOCK_IO.hidden]: `hidden.${i}`,
      [BLOCK_IO.positions]: wholeModelIo.positions,
      [BLOCK_IO.pastKey]: wholeModelIo.pastKey(i),
      [BLOCK_IO.pastValue]: wholeModelIo.pastValue(i),
      [BLOCK_IO.hiddenOut]: `hidden.${i + 1}`,
      [BLOCK_IO.presentKey]: wholeModelIo.presentKey(i),
      [BLOCK_IO.presentValue]: wholeModelIo.presentValue(i),
    });
    nodes.push(...b.node);
    initializers.push(...b.initializer);
    inputs.push(...b.input.filter((v) => v.name !== `hidden.${i}` && (i === 0 || v.name !== wholeModelIo.positions)));
    outputs.push(...b.output.filter((v) => v.name !== `hidden.${i + 1}`));
  });

  const h = renamed(head.graph, 'head', { [HEAD_IO.hidden]: `hidden.${blocks.length}`, [HEAD_IO.logits]: wholeModelIo.logits });
  nodes.push(...h.node);
  initializers.push(...h.initializer);
  outputs.unshift(...h.output);

  const opsets = new Map<string, number>();
  for (const m of [embed, ...blocks, head]) for (const o of m.opsetImport) opsets.set(o.domain ?? '', Math.max(opsets.get(o.domain ?? '') ?? 0, o.version));
  return {
    irVersion: embed.irVersion,
    producerName: embed.producerName,
    producerVersion: embed.producerVersion,
    opsetImport: [...opsets].map(([domain, version]) => ({ domain, version })),
    graph: { name: 'whole-model', node: nodes, initializer: initializers, input: inputs, output: outputs, docString: 'infermesh whole-model baseline' },
  };
}
