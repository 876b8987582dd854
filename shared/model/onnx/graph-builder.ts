/**
 * A small builder for ONNX graphs: named values in, nodes added in order, initializers either
 * inline (small constants) or pointing into an external data file (weights). The layer graphs
 * (shared/model/graphs/) are written against it so they read like the maths they implement.
 */
import { AttributeType, DataType } from './schema.ts';
import type { Attribute, DataTypeId, Dimension, Model, Node, Tensor, ValueInfo } from './schema.ts';

/** A dimension: a number, or a symbolic name such as 'seq'. */
export type Dim = number | string;
export type AttrValue = number | string | number[] | { floats: number[] } | { int: number } | { float: number };

export interface ExternalRef {
  location: string;
  offset: number;
  length: number;
}

export const OPSET = 17;
export const MS_DOMAIN = 'com.microsoft';
export const IR_VERSION = 8;

export interface GraphBuilder {
  input(name: string, type: DataTypeId, dims: Dim[]): string;
  output(name: string, type: DataTypeId, dims: Dim[]): void;
  /** Adds a node and returns its output names (one fresh name per output unless given). */
  node(opType: string, inputs: string[], attrs?: Record<string, AttrValue>, options?: { outputs?: string[] | number; domain?: string }): string[];
  /** Shorthand for a single-output node. */
  op(opType: string, inputs: string[], attrs?: Record<string, AttrValue>, options?: { output?: string; domain?: string }): string;
  constFloat(values: number[] | Float32Array, dims: number[]): string;
  constInt64(values: number[], dims: number[]): string;
  externalInitializer(name: string, type: DataTypeId, dims: number[], ref: ExternalRef): string;
  build(docString?: string): Model;
}

function valueInfo(name: string, elemType: number, dims: Dim[]): ValueInfo {
  const dim: Dimension[] = dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d }));
  return { name, type: { tensorType: { elemType, shape: { dim } } } };
}

function attribute(name: string, value: AttrValue): Attribute {
  if (typeof value === 'string') return { name, type: AttributeType.STRING, s: new TextEncoder().encode(value) };
  if (Array.isArray(value)) return { name, type: AttributeType.INTS, ints: value };
  if (typeof value === 'number') {
    if (!Number.isInteger(value)) throw new Error(`attribute ${name}: use { float } for non-integer values`);
    return { name, type: AttributeType.INT, i: value };
  }
  if ('floats' in value) return { name, type: AttributeType.FLOATS, floats: value.floats };
  if ('int' in value) return { name, type: AttributeType.INT, i: value.int };
  return { name, type: AttributeType.FLOAT, f: value.float };
}

export function createGraphBuilder(graphName: string): GraphBuilder {
  const nodes: Node[] = [];
  const initializers: Tensor[] = [];
  const inputs: ValueInfo[] = [];
  const outputs: ValueInfo[] = [];
  const counts = new Map<string, number>();
  const fresh = (base: string) => {
    const n = counts.get(base) ?? 0;
    counts.set(base, n + 1);
    return `${base}_${n}`;
  };
  let usesMsDomain = false;

  const b: GraphBuilder = {
    input(name, type, dims) {
      inputs.push(valueInfo(name, type, dims));
      return name;
    },
    output(name, type, dims) {
      outputs.push(valueInfo(name, type, dims));
    },
    node(opType, ins, attrs = {}, options = {}) {
      const name = fresh(opType);
      const outs = Array.isArray(options.outputs)
        ? options.outputs
        : Array.from({ length: options.outputs ?? 1 }, (_, i) => `${name}/out${i}`);
      if (options.domain === MS_DOMAIN) usesMsDomain = true;
      nodes.push({
        name,
        opType,
        domain: options.domain,
        input: ins,
        output: outs,
        attribute: Object.entries(attrs).map(([k, v]) => attribute(k, v)),
      });
      return outs;
    },
    op(opType, ins, attrs, options = {}) {
      return b.node(opType, ins, attrs, { outputs: options.output ? [options.output] : 1, domain: options.domain })[0];
    },
    constFloat(values, dims) {
      const name = fresh('const_f');
      const data = values instanceof Float32Array ? values : Float32Array.from(values);
      initializers.push({ name, dataType: DataType.FLOAT, dims, rawData: new Uint8Array(data.slice().buffer) });
      return name;
    },
    constInt64(values, dims) {
      const name = fresh('const_i');
      const data = BigInt64Array.from(values.map((v) => BigInt(v)));
      initializers.push({ name, dataType: DataType.INT64, dims, rawData: new Uint8Array(data.buffer) });
      return name;
    },
    externalInitializer(name, type, dims, ref) {
      initializers.push({
        name,
        dataType: type,
        dims,
        dataLocation: 1,
        externalData: [
          { key: 'location', value: ref.location },
          { key: 'offset', value: String(ref.offset) },
          { key: 'length', value: String(ref.length) },
        ],
      });
      return name;
    },
    build(docString) {
      const opsetImport = [{ domain: '', version: OPSET }];
      if (usesMsDomain) opsetImport.push({ domain: MS_DOMAIN, version: 1 });
      return {
        irVersion: IR_VERSION,
        producerName: 'infermesh',
        producerVersion: '0.1.0',
        opsetImport,
        graph: { name: graphName, node: nodes, initializer: initializers, input: inputs, output: outputs, docString },
      };
    },
  };
  return b;
}
