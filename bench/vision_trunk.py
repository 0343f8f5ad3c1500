"""Candidate forms of visual_trunk.onnx and PyTorch's output, for bench/vision-trunk.ts.

    python3 -m bench.vision_trunk CHECKPOINT WORK [--rows 2] [--from MODEL_DIR]

Writes WORK/trunk-exported.onnx (visual_trunk.onnx as the exporter writes it: traced here, or copied
from an exported MODEL_DIR of the same checkpoint with --from),
WORK/trunk-nopad.onnx (the same graph without its no-op nodes: torch.onnx writes every AvgPool2d as a
Pad of zeros before the AveragePool, and layer1's downsample as a 1 x 1 AveragePool of stride 1,
both copies of a whole activation), and WORK/trunk-reference.bin: seeded pixels [rows, 3, S, S] and
PyTorch's float32 neurons for them (our CLIP definition in tools/export, eval mode), with
WORK/trunk-reference.json giving the shapes.
"""

import argparse
import json
import os
import shutil

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from tools.export.checkpoint import load_checkpoint
from tools.export.onnx_graphs import VisualTrunk, check_graph, graph_specs, trace

parser = argparse.ArgumentParser()
parser.add_argument("checkpoint")
parser.add_argument("work")
parser.add_argument("--rows", type=int, default=2)
parser.add_argument("--from", dest="model_dir", help="copy this model directory's visual_trunk.onnx")
args = parser.parse_args()


def without_noop_nodes(model: onnx.ModelProto) -> onnx.ModelProto:
    """Drops Pad nodes whose pads are all zero and 1 x 1 AveragePools of stride 1 (identities)."""
    graph = model.graph
    constants = {
        node.output[0]: numpy_helper.to_array(node.attribute[0].t)
        for node in graph.node
        if node.op_type == "Constant"
    }
    constants.update({init.name: numpy_helper.to_array(init) for init in graph.initializer})
    renamed: dict[str, str] = {}
    kept = []
    for node in graph.node:
        inputs = [renamed.get(name, name) for name in node.input]
        del node.input[:]
        node.input.extend(inputs)
        attributes = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        noop_pad = (
            node.op_type == "Pad"
            and len(node.input) >= 2
            and node.input[1] in constants
            and not constants[node.input[1]].any()
        )
        noop_pool = (
            node.op_type == "AveragePool"
            and list(attributes.get("kernel_shape", [])) == [1, 1]
            and list(attributes.get("strides", [1, 1])) == [1, 1]
            and not any(attributes.get("pads", []))
        )
        if noop_pad or noop_pool:
            renamed[node.output[0]] = node.input[0]
        else:
            kept.append(node)
    outputs = {name for node in kept for name in node.input} | {o.name for o in graph.output}
    kept = [n for n in kept if n.op_type != "Constant" or n.output[0] in outputs]
    del graph.node[:]
    graph.node.extend(kept)
    for output in graph.output:
        if output.name in renamed:
            raise RuntimeError(f"the graph's output {output.name} is a no-op node's")
    onnx.checker.check_model(model)
    return model


torch.set_num_threads(2)
clip = load_checkpoint(args.checkpoint).model
os.makedirs(args.work, exist_ok=True)
exported = os.path.join(args.work, "trunk-exported.onnx")
if args.model_dir:
    shutil.copyfile(os.path.join(args.model_dir, "visual_trunk.onnx"), exported)
else:
    spec = graph_specs(clip)["visual_trunk"]
    trace(VisualTrunk(clip), clip, spec, exported)
    check_graph(exported, spec)
model = onnx.load(exported)
before = len(model.graph.node)
onnx.save(without_noop_nodes(model), os.path.join(args.work, "trunk-nopad.onnx"))
print(f"trunk-nopad.onnx: {before} -> {len(model.graph.node)} nodes")

size = clip.config.image_resolution
pixels = torch.randn(args.rows, 3, size, size, generator=torch.Generator().manual_seed(0))
with torch.no_grad():
    neurons = clip.visual.trunk(pixels)
with open(os.path.join(args.work, "trunk-reference.bin"), "wb") as f:
    f.write(pixels.numpy().astype("<f4").tobytes())
    f.write(neurons.numpy().astype("<f4").tobytes())
with open(os.path.join(args.work, "trunk-reference.json"), "w", encoding="utf-8") as f:
    json.dump({"pixels": list(pixels.shape), "neurons": list(neurons.shape)}, f)
print(
    f"reference: pixels {list(pixels.shape)}, neurons {list(neurons.shape)}; {np.abs(neurons.numpy()).max():.3g} max"
)
