/**
 * W·t as an onnxruntime graph, built in memory from the model directory's W: one Gemm node,
 *
 *     attributions [N, C] = text_embeds [N, D] · Wᵀ        (W row-major [C, D], an initializer),
 *
 * so a micro-batch of text embeddings becomes attribution vectors in one call to onnxruntime's
 * matrix kernels (on the same execution provider as the encoders) instead of N products in
 * JavaScript.
 */
import { oneNodeModel } from './onnx-graph.js';

export const BILINEAR_INPUT = 'text_embeds';
export const BILINEAR_OUTPUT = 'attributions';

/** The ONNX model bytes of `attributions = text_embeds · Wᵀ` for W of shape [C, D]. */
export function bilinearGraph(W: Float32Array, C: number, D: number): Uint8Array {
  if (W.length !== C * D) throw new Error(`W has ${W.length} values; expected ${C} × ${D}`);
  return oneNodeModel({
    name: 'bilinear',
    opType: 'Gemm',
    inputs: [{ name: BILINEAR_INPUT, dims: ['N', D] }],
    initializers: [{ name: 'W', dims: [C, D], data: W }],
    outputs: [{ name: BILINEAR_OUTPUT, dims: ['N', C] }],
    attributes: { transB: 1 },
  });
}
