/**
 * The subset of the ONNX protobuf schema (onnx.proto, IR version 8) that infermesh writes and
 * reads, declared for protobufjs's reflection API. Field numbers are the ONNX format's own; only
 * the messages a Llama block graph needs are declared, and unknown fields are skipped on decode.
 */
import protobuf from 'protobufjs/light.js';
import { PackageError } from '../../errors.ts';

const repeated = (type: string, id: number) => ({ rule: 'repeated', type, id });
const field = (type: string, id: number) => ({ type, id });

const descriptor = {
  nested: {
    onnx: {
      nested: {
        ModelProto: {
          fields: {
            irVersion: field('int64', 1),
            producerName: field('string', 2),
            producerVersion: field('string', 3),
            domain: field('string', 4),
            modelVersion: field('int64', 5),
            docString: field('string', 6),
            graph: field('GraphProto', 7),
            opsetImport: repeated('OperatorSetIdProto', 8),
            metadataProps: repeated('StringStringEntryProto', 14),
          },
        },
        OperatorSetIdProto: { fields: { domain: field('string', 1), version: field('int64', 2) } },
        StringStringEntryProto: { fields: { key: field('string', 1), value: field('string', 2) } },
        GraphProto: {
          fields: {
            node: repeated('NodeProto', 1),
            name: field('string', 2),
            initializer: repeated('TensorProto', 5),
            docString: field('string', 10),
            input: repeated('ValueInfoProto', 11),
            output: repeated('ValueInfoProto', 12),
            valueInfo: repeated('ValueInfoProto', 13),
          },
        },
        NodeProto: {
          fields: {
            input: repeated('string', 1),
            output: repeated('string', 2),
            name: field('string', 3),
            opType: field('string', 4),
            attribute: repeated('AttributeProto', 5),
            docString: field('string', 6),
            domain: field('string', 7),
          },
        },
        AttributeProto: {
          fields: {
            name: field('string', 1),
            f: field('float', 2),
            i: field('int64', 3),
            s: field('bytes', 4),
            t: field('TensorProto', 5),
            floats: repeated('float', 7),
            ints: repeated('int64', 8),
            strings: repeated('bytes', 9),
            type: field('int32', 20),
          },
        },
        TensorProto: {
          fields: {
            dims: repeated('int64', 1),
            dataType: field('int32', 2),
            floatData: repeated('float', 4),
            int32Data: repeated('int32', 5),
            int64Data: repeated('int64', 7),
            name: field('string', 8),
            rawData: field('bytes', 9),
            docString: field('string', 12),
            externalData: repeated('StringStringEntryProto', 13),
            dataLocation: field('int32', 14),
          },
        },
        ValueInfoProto: {
          fields: { name: field('string', 1), type: field('TypeProto', 2), docString: field('string', 3) },
        },
        TypeProto: {
          nested: {
            Tensor: { fields: { elemType: field('int32', 1), shape: field('TensorShapeProto', 2) } },
          },
          fields: { tensorType: field('Tensor', 1), denotation: field('string', 6) },
        },
        TensorShapeProto: {
          nested: {
            Dimension: {
              oneofs: { value: { oneof: ['dimValue', 'dimParam'] } },
              fields: { dimValue: field('int64', 1), dimParam: field('string', 2), denotation: field('string', 3) },
            },
          },
          fields: { dim: repeated('Dimension', 1) },
        },
      },
    },
  },
};

const root = protobuf.Root.fromJSON(descriptor);
const ModelProtoType = root.lookupType('onnx.ModelProto');

/** ONNX TensorProto.DataType values used by infermesh. */
export const DataType = {
  FLOAT: 1,
  UINT8: 2,
  INT32: 6,
  INT64: 7,
  BOOL: 9,
} as const;
export type DataTypeId = (typeof DataType)[keyof typeof DataType];

/** AttributeProto.AttributeType values. */
export const AttributeType = { FLOAT: 1, INT: 2, STRING: 3, TENSOR: 4, FLOATS: 6, INTS: 7 } as const;

export interface StringEntry { key: string; value: string }
export interface Dimension { dimValue?: number; dimParam?: string }
export interface ValueInfo {
  name: string;
  type: { tensorType: { elemType: number; shape: { dim: Dimension[] } } };
}
export interface Tensor {
  name: string;
  dataType: number;
  dims: number[];
  rawData?: Uint8Array;
  externalData?: StringEntry[];
  /** 1 = EXTERNAL */
  dataLocation?: number;
}
export interface Attribute {
  name: string;
  type: number;
  f?: number;
  i?: number;
  s?: Uint8Array;
  t?: Tensor;
  floats?: number[];
  ints?: number[];
}
export interface Node {
  name: string;
  opType: string;
  domain?: string;
  input: string[];
  output: string[];
  attribute: Attribute[];
}
export interface Graph {
  name: string;
  node: Node[];
  initializer: Tensor[];
  input: ValueInfo[];
  output: ValueInfo[];
  docString?: string;
}
export interface Model {
  irVersion: number;
  producerName: string;
  producerVersion: string;
  opsetImport: { domain: string; version: number }[];
  graph: Graph;
  metadataProps?: StringEntry[];
}

export function encodeModel(model: Model): Uint8Array {
  const err = ModelProtoType.verify(model);
  if (err) throw new Error(`invalid ONNX model: ${err}`);
  return ModelProtoType.encode(ModelProtoType.fromObject(model)).finish();
}

/** An ONNX graph's bytes as a Model; bytes that are not one (a truncated or corrupted file) are a PackageError. */
export function decodeModel(bytes: Uint8Array): Model {
  let message: protobuf.Message;
  try {
    message = ModelProtoType.decode(bytes);
  } catch (err) {
    throw new PackageError(`not an ONNX model: ${(err as Error).message}`, { cause: err });
  }
  return ModelProtoType.toObject(message, { longs: Number, bytes: Uint8Array, defaults: false, arrays: true }) as Model;
}
