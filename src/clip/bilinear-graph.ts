/**
 * W·t as an onnxruntime graph, built in memory from the model directory's W: one Gemm node,
 *
 *     attributions [N, C] = text_embeds [N, D] · Wᵀ        (W row-major [C, D], an initializer),
 *
 * so a micro-batch of text embeddings becomes attribution vectors in one call to onnxruntime's
 * matrix kernels (on the same execution provider as the encoders) instead of N products in
 * JavaScript. The graph is written as ONNX protobuf bytes by the few lines below: only the fields
 * a Gemm model needs (onnx.proto field numbers in the comments).
 */

export const BILINEAR_INPUT = 'text_embeds';
export const BILINEAR_OUTPUT = 'attributions';
const OPSET = 13;
const IR_VERSION = 8;
const FLOAT = 1; // TensorProto.DataType.FLOAT
const ATTRIBUTE_INT = 2; // AttributeProto.AttributeType.INT

/** The ONNX model bytes of `attributions = text_embeds · Wᵀ` for W of shape [C, D]. */
export function bilinearGraph(W: Float32Array, C: number, D: number): Uint8Array {
  if (W.length !== C * D) throw new Error(`W has ${W.length} values; expected ${C} × ${D}`);
  const weights = new Uint8Array(W.buffer, W.byteOffset, W.byteLength);
  const gemm = message([
    string(1, BILINEAR_INPUT), // NodeProto.input
    string(1, 'W'),
    string(2, BILINEAR_OUTPUT), // NodeProto.output
    string(4, 'Gemm'), // NodeProto.op_type
    bytes(5, message([string(1, 'transB'), varint(3, 1), varint(20, ATTRIBUTE_INT)])), // attribute
  ]);
  const initializer = message([
    varint(1, C), // TensorProto.dims
    varint(1, D),
    varint(2, FLOAT), // TensorProto.data_type
    string(8, 'W'), // TensorProto.name
    bytes(9, weights), // TensorProto.raw_data (little-endian float32, as the machine's own)
  ]);
  const graph = message([
    bytes(1, gemm), // GraphProto.node
    string(2, 'bilinear'), // GraphProto.name
    bytes(5, initializer), // GraphProto.initializer
    bytes(11, valueInfo(BILINEAR_INPUT, D)), // GraphProto.input
    bytes(12, valueInfo(BILINEAR_OUTPUT, C)), // GraphProto.output
  ]);
  return message([
    varint(1, IR_VERSION), // ModelProto.ir_version
    string(2, 'multimodal-neurons'), // ModelProto.producer_name
    bytes(7, graph), // ModelProto.graph
    bytes(8, message([string(1, ''), varint(2, OPSET)])), // ModelProto.opset_import
  ]);
}

/** ValueInfoProto of a float tensor [N, width] with a dynamic batch dimension N. */
function valueInfo(name: string, width: number): Uint8Array {
  const shape = message([
    bytes(1, message([string(2, 'N')])), // TensorShapeProto.dim { dim_param }
    bytes(1, message([varint(1, width)])), // TensorShapeProto.dim { dim_value }
  ]);
  const tensorType = message([varint(1, FLOAT), bytes(2, shape)]); // TypeProto.Tensor
  return message([string(1, name), bytes(2, message([bytes(1, tensorType)]))]); // ValueInfoProto
}

// Protobuf wire format: a field is a key (number << 3 | wire type) and a varint or a
// length-delimited payload.

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
  return message([Uint8Array.from([...varintBytes(field * 8 + 2), ...varintBytes(payload.length)]), payload]);
}

function string(field: number, text: string): Uint8Array {
  return bytes(field, new TextEncoder().encode(text));
}

function message(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((total, part) => total + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}
