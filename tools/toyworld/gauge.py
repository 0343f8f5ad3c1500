"""Put an exported model's neurons on a common scale, without changing what the model computes.

Usage: python3 -m tools.toyworld.gauge MODEL_DIR --scales SCALES_JSON

In this toy ResNet nothing fixes a neuron's scale: the neurons are ReLU(conv3 + downsample) of the
last block (batch norm folded into the convolutions), and the attention-pool head is linear in them
up to its positional embedding. Dividing neuron i by s_i > 0 in the trunk and multiplying it back by
s_i at the head's input leaves every image embedding as it was, but changes W = (c_proj . v_proj)^T
row by row (W_i * s_i). The article's attribution W.t ranks neurons by W's rows, so a neuron that
is barely active anywhere but has a long row tops every ranking; trained with a sparsity penalty, a
few such neurons did exactly that for every colour word. With s_i = the neuron's mean activation on
the held-out images of its preferred concept (evaluate.py --scales), every neuron answers its own
concept at 1, and (W.t)_i is the logit contribution of the neuron firing as it does for that
concept. x_i . a_i, the per-neuron contribution of an image, is unchanged.

SCALES_JSON: a list of C positive numbers. Rewrites, in place:
  visual_trunk.onnx  the two convolutions summed before the final ReLU: output channel i (weights
                     and bias) divided by s_i, so the `neurons` output is the old one divided by s;
  visual_head.onnx   a Mul by s (an initializer [1, C, 1, 1]) in front of everything that read `neurons`;
  bilinear.f32       row i multiplied by s_i.
Run finalize.py afterwards: the files' hashes (and so every cache key of the model) change.
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np
import onnx
from onnx import helper, numpy_helper


def initializer(graph: onnx.GraphProto, name: str) -> onnx.TensorProto:
    for tensor in graph.initializer:
        if tensor.name == name:
            return tensor
    raise SystemExit(f"no initializer {name!r}")


def scale_trunk(path: str, inverse: np.ndarray) -> None:
    model = onnx.load(path)
    graph = model.graph
    producers = {out: node for node in graph.node for out in node.output}
    relu = producers["neurons"]
    add = producers[relu.input[0]]
    if relu.op_type != "Relu" or add.op_type != "Add":
        raise SystemExit(
            f"{path}: expected neurons = Relu(Add(conv, conv)), found {relu.op_type}({add.op_type})"
        )
    for branch in add.input:
        conv = producers[branch]
        if conv.op_type != "Conv" or len(conv.input) != 3:
            raise SystemExit(f"{path}: {branch} is not a Conv with a bias")
        for name, shape in ((conv.input[1], (-1, 1, 1, 1)), (conv.input[2], (-1,))):
            tensor = initializer(graph, name)
            values = numpy_helper.to_array(tensor).astype(np.float32)
            if values.shape[0] != inverse.size:
                raise SystemExit(f"{path}: {name} has {values.shape[0]} output channels, not {inverse.size}")
            tensor.CopyFrom(numpy_helper.from_array(values * inverse.reshape(shape), name))
    onnx.checker.check_model(model)
    onnx.save(model, path)


def scale_head(path: str, scales: np.ndarray) -> None:
    model = onnx.load(path)
    graph = model.graph
    restored = "neurons_rescaled"
    for node in graph.node:
        node.input[:] = [restored if name == "neurons" else name for name in node.input]
    factor = numpy_helper.from_array(scales.reshape(1, -1, 1, 1).astype(np.float32), "neuron_scales")
    graph.initializer.append(factor)
    graph.node.insert(
        0, helper.make_node("Mul", ["neurons", "neuron_scales"], [restored], name="neuron_scales_mul")
    )
    onnx.checker.check_model(model)
    onnx.save(model, path)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model_dir")
    ap.add_argument("--scales", required=True)
    args = ap.parse_args()
    scales = np.asarray(json.load(open(args.scales)), dtype=np.float64)
    if scales.ndim != 1 or not np.all(np.isfinite(scales)) or np.any(scales <= 0):
        raise SystemExit("scales must be a list of positive numbers")
    manifest = json.load(open(os.path.join(args.model_dir, "clip.json")))
    C, D = manifest["neuron_count"], manifest["embed_dim"]
    if scales.size != C:
        raise SystemExit(f"{scales.size} scales for {C} neurons")
    scale_trunk(os.path.join(args.model_dir, "visual_trunk.onnx"), (1.0 / scales).astype(np.float32))
    scale_head(os.path.join(args.model_dir, "visual_head.onnx"), scales.astype(np.float32))
    bilinear = os.path.join(args.model_dir, "bilinear.f32")
    W = np.fromfile(bilinear, dtype="<f4").reshape(C, D).astype(np.float64)
    (W * scales[:, None]).astype("<f4").tofile(bilinear)
    print(f"{args.model_dir}: {C} neurons rescaled (s from {scales.min():.3f} to {scales.max():.3f})")


if __name__ == "__main__":
    main()
