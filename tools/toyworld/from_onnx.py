"""Rebuild a torch CLIP (tools/export/clip_model.py) from an exported toy-world model directory.

The committed model's training checkpoint is not kept; this lets evaluate.py measure the exported
graphs with the same code as a fresh checkpoint (`evaluate.py --model-dir models/toyworld`).

  visual_trunk.onnx: the exporter folds every BatchNorm into its convolution (weight and bias); here
      each convolution gets the folded weight and its BatchNorm becomes the identity plus that bias.
      gauge.py divided neuron i by s_i (the head's `neuron_scales`); the rebuilt trunk multiplies it
      back (layer4's last BatchNorms, before the residual ReLU, which commutes with s_i > 0), so the
      rebuilt model is the ungauged one and evaluate.py --gauged re-applies the calibration's scales.
  visual_head.onnx: the attention pool's projections and positional embedding.
  text.onnx (the naive trace): named parameters, and per block the transposed weights of its four
      matrix products (in_proj, out_proj, c_fc, c_proj) in the graph's order.
"""

from __future__ import annotations

import json
import os

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from tools.export.clip_model import CLIP, ClipConfig
from tools.toyworld.train import make_config


def _initializers(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}


def _config(model_dir: str) -> tuple[ClipConfig, dict]:
    manifest = json.load(open(os.path.join(model_dir, "clip.json")))
    config = make_config(manifest["vocab_size"], manifest["neuron_count"] // 32)
    return config, manifest


@torch.no_grad()
def load_exported(model_dir: str) -> CLIP:
    config, manifest = _config(model_dir)
    model = CLIP(config).eval()
    state = model.state_dict()

    head = onnx.load(os.path.join(model_dir, "visual_head.onnx"))
    h = _initializers(head)
    scales = h["neuron_scales"].reshape(-1).astype(np.float64) if "neuron_scales" in h else None

    trunk = onnx.load(os.path.join(model_dir, "visual_trunk.onnx"))
    t = _initializers(trunk)
    convs = [n for n in trunk.graph.node if n.op_type == "Conv"]
    modules = [(name, m) for name, m in model.visual.named_modules() if isinstance(m, torch.nn.Conv2d)]
    if len(convs) != len(modules):
        raise SystemExit(f"{len(convs)} convolutions in the trunk graph, {len(modules)} in the model")
    bns = {name: m for name, m in model.visual.named_modules() if isinstance(m, torch.nn.BatchNorm2d)}
    last = f"layer4.{len(model.visual.layer4) - 1}."
    for node, (name, conv) in zip(convs, modules):
        weight, bias = t[node.input[1]], t[node.input[2]]
        if tuple(weight.shape) != tuple(conv.weight.shape):
            raise SystemExit(f"{name}: graph weight {weight.shape}, model {tuple(conv.weight.shape)}")
        conv.weight.copy_(torch.from_numpy(weight.copy()))
        if name.endswith("downsample.0"):
            bn_name = name[:-1] + "1"
        else:
            head_name, _, leaf = name.rpartition(".")
            bn_name = (head_name + "." if head_name else "") + "bn" + leaf[len("conv") :]
        bn = bns[bn_name]
        factor = np.ones_like(bias, dtype=np.float64)
        if scales is not None and (bn_name in (last + "bn3", last + "downsample.1")):
            factor = scales
        bn.running_mean.zero_()
        bn.running_var.fill_(1.0 - bn.eps)
        bn.weight.copy_(torch.from_numpy(factor.astype(np.float32)))
        bn.bias.copy_(torch.from_numpy((bias * factor).astype(np.float32)))

    pool = model.visual.attnpool
    identity = {n.output[0]: n.input[0] for n in head.graph.node if n.op_type == "Identity"}
    products = [n for n in head.graph.node if n.op_type == "MatMul"]
    for proj in ("q_proj", "k_proj", "v_proj"):
        found = [n for n in products if f"/{proj}/" in n.output[0]]
        if len(found) != 1:
            raise SystemExit(f"visual_head.onnx: {len(found)} matrix products for {proj}")
        src = identity.get(found[0].input[1], found[0].input[1])
        getattr(pool, proj).weight.copy_(torch.from_numpy(h[src].T.copy()))
        getattr(pool, proj).bias.copy_(torch.from_numpy(h[f"attnpool.{proj}.bias"]))
    pool.c_proj.weight.copy_(torch.from_numpy(h["attnpool.c_proj.weight"]))
    pool.c_proj.bias.copy_(torch.from_numpy(h["attnpool.c_proj.bias"]))
    positional = [n for n in head.graph.node if n.op_type == "Add" and n.input[1] in h]
    pool.positional_embedding.copy_(
        torch.from_numpy(h[positional[0].input[1]].reshape(pool.positional_embedding.shape))
    )

    text = onnx.load(os.path.join(model_dir, "text.onnx"))
    x = _initializers(text)
    for name, value in x.items():
        if name.startswith("clip.") and name[5:] in state:
            state_name = name[5:]
            target = dict(model.named_parameters()).get(state_name)
            if target is None:
                raise SystemExit(f"text.onnx: {name} is not a parameter")
            target.copy_(torch.from_numpy(value.reshape(target.shape)))
    products = [n.input[1] for n in text.graph.node if n.op_type == "MatMul" and n.input[1] in x]
    products = [p for p in products if not p.startswith("clip.")]
    if len(products) != 4 * len(model.transformer.resblocks):
        raise SystemExit(
            f"text.onnx: {len(products)} weight products for {len(model.transformer.resblocks)} blocks"
        )
    for i, block in enumerate(model.transformer.resblocks):
        w_in, w_out, w_fc, w_proj = (x[p] for p in products[4 * i : 4 * i + 4])
        block.attn.in_proj_weight.copy_(torch.from_numpy(w_in.T.copy()))
        block.attn.out_proj.weight.copy_(torch.from_numpy(w_out.T.copy()))
        block.mlp.c_fc.weight.copy_(torch.from_numpy(w_fc.T.copy()))
        block.mlp.c_proj.weight.copy_(torch.from_numpy(w_proj.T.copy()))
    model.logit_scale.fill_(float(np.log(manifest["logit_scale"])))
    return model.eval()
