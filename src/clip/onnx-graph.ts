/**
 * ONNX models of a single node, written as protobuf bytes in memory for onnxruntime: the service's
 * small matrix products (W·t per micro-batch, the word index's M·q) run on onnxruntime's kernels
 * without a file in the model directory. Only the fields such a model needs are written (onnx.proto's
 * field numbers in the comments); tensors are float32.
 */

const IR_VERSION = 8;
const OPSET = 13;
const FLOAT = 1; // TensorProto.DataType.FLOAT
const ATTRIBUTE_INT = 2; // AttributeProto.AttributeType.INT

/** TensorProto.DataType of the element types a graph input or output may have here. */
export const ELEMENT_TYPES = { float: FLOAT, uint8: 2, int8: 3, int32: 6 } as const;

/** A graph input or output: a tensor (float unless `type`); a dimension is fixed (number) or symbolic (string). */
export interface TensorSpec {
  name: string;
  dims: readonly (number | string)[];
  type?: keyof typeof ELEMENT_TYPES;
}

export interface OneNodeModel {
  name: string;
  opType: string;
  inputs: readonly TensorSpec[];
  outputs: readonly TensorSpec[];
  /** Constant inputs (onnxruntime may pre-pack them), listed by name among the node's inputs. */
  initializers?: readonly { name: string; dims: readonly number[]; data: Float32Array }[];
  /** Integer attributes of the node (e.g. Gemm's transB). */
  attributes?: Readonly<Record<string, number>>;
}

/** The ModelProto bytes of one node whose inputs are the graph's inputs and initializers, in order. */
export function oneNodeModel(model: OneNodeModel): Uint8Array {
  const initializers = model.initializers ?? [];
  const node = [
    ...[...model.inputs, ...initializers].map((input) => string(1, input.name)), // NodeProto.input
    ...model.outputs.map((output) => string(2, output.name)), // NodeProto.output
    string(4, model.opType), // NodeProto.op_type
    ...Object.entries(model.attributes ?? {}).map(
      ([name, value]) => bytes(5, join([string(1, name), varint(3, value), varint(20, ATTRIBUTE_INT)])), // attribute
    ),
  ];
  const graph = [
    bytes(1, join(node)), // GraphProto.node
    string(2, model.name), // GraphProto.name
    ...initializers.map((tensor) =>
      bytes(
        5, // GraphProto.initializer: TensorProto { dims, data_type, name, raw_data (little-endian) }
        join([
          ...tensor.dims.map((dim) => varint(1, dim)),
          varint(2, FLOAT),
          string(8, tensor.name),
          bytes(9, new Uint8Array(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength)),
        ]),
      ),
    ),
    ...model.inputs.map((input) => bytes(11, valueInfo(input))), // GraphProto.input
    ...model.outputs.map((output) => bytes(12, valueInfo(output))), // GraphProto.output
  ];
  return join([
    varint(1, IR_VERSION), // ModelProto.ir_version
    bytes(7, join(graph)), // ModelProto.graph
    bytes(8, join([string(1, ''), varint(2, OPSET)])), // ModelProto.opset_import
  ]);
}

/** ValueInfoProto { name, type: TypeProto { tensor_type: { elem_type, shape } } }. */
function valueInfo({ name, dims, type = 'float' }: TensorSpec): Uint8Array {
  const shape = join(
    dims.map((dim) =>
      // TensorShapeProto.dim: Dimension { dim_value | dim_param }
      bytes(1, typeof dim === 'number' ? varint(1, dim) : string(2, dim)),
    ),
  );
  const tensorType = join([varint(1, ELEMENT_TYPES[type]), bytes(2, shape)]);
  return join([string(1, name), bytes(2, bytes(1, tensorType))]);
}

// Protobuf wire format: a field is a key (number << 3 | wire type) followed by a varint (type 0) or
// a length and that many bytes (type 2).

function varintBytes(value: number): number[] {
  const out: number[] = [];
  let rest = value;
  while (rest >= 0x80) {
    out.push((rest % 0x80) | 0x80);
    rest = Math.floor(rest / 0x80);
  }
  out.push(rest);
  return out;
}

function varint(field: number, value: number): Uint8Array {
  return Uint8Array.from([...varintBytes(field * 8), ...varintBytes(value)]);
}

function bytes(field: number, payload: Uint8Array): Uint8Array {
  return join([Uint8Array.from([...varintBytes(field * 8 + 2), ...varintBytes(payload.length)]), payload]);
}

function string(field: number, text: string): Uint8Array {
  return bytes(field, new TextEncoder().encode(text));
}

function join(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((total, part) => total + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}
