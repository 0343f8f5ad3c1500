"""Export CLIP's three inference graphs to ONNX (opset 17, float32, dynamic batch N).

    visual_trunk.onnx  pixel_values float32 [N,3,S,S] -> neurons      float32 [N,C,h,w]   (stem + layer1..4)
    visual_head.onnx   neurons      float32 [N,C,h,w] -> image_embeds float32 [N,D]       (attention pool)
    text.onnx          input_ids    int64   [N,L]     -> text_embeds  float32 [N,D]       (1 <= L <= context)

The text graph slices the positional embedding and the causal mask to the real length L and reads
each row at its highest id (the end token), so zero padding after the end token changes nothing. It
comes in two forms with the same inputs, outputs and numbers (TEXT_GRAPHS): "fused" (the default), built
node by node by text_graph.py for onnxruntime, and "naive", traced from clip_model.py by torch.onnx.

The head comes in two forms too (HEAD_GRAPHS): "fused" (the default, FusedVisualHead) computes the
attention pool without the keys and values of the 1 + h·w tokens: only the mean token's query is
used, so each head's scores are x_t·(W_kᵀ q) (q·b_k is the same for every token and cancels in the
softmax) and its output is W_v (Σ_t w_t x_t) + b_v (the weights sum to 1). Same numbers up to
rounding, about 25× fewer operations at RN50-x4 size (C = 2,560, 82 tokens): the head no longer
costs a tenth of the trunk. "naive" is the trace of clip_model.py's AttentionPool2d.
"""

from __future__ import annotations

import os
import warnings

import onnx
import torch
from torch import nn

from tools.export.clip_model import CLIP
from tools.export.text_graph import build_text_graph

OPSET = 17
TEXT_GRAPHS = ("fused", "naive")
HEAD_GRAPHS = ("fused", "naive")


class TextEncoder(nn.Module):
    def __init__(self, clip: CLIP):
        super().__init__()
        self.clip = clip

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.clip.encode_text(input_ids)


class VisualTrunk(nn.Module):
    def __init__(self, clip: CLIP):
        super().__init__()
        self.visual = clip.visual

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.visual.trunk(pixel_values)


class VisualHead(nn.Module):
    def __init__(self, clip: CLIP):
        super().__init__()
        self.attnpool = clip.visual.attnpool

    def forward(self, neurons: torch.Tensor) -> torch.Tensor:
        return self.attnpool(neurons)


class FusedVisualHead(nn.Module):
    """The attention pool rewritten so that no token's key or value is computed (module docstring)."""

    def __init__(self, clip: CLIP):
        super().__init__()
        self.attnpool = clip.visual.attnpool

    def forward(self, neurons: torch.Tensor) -> torch.Tensor:
        pool = self.attnpool
        n, c = neurons.shape[0], neurons.shape[1]
        heads = pool.num_heads
        d = c // heads
        x = neurons.flatten(start_dim=2).transpose(1, 2)  # [N, T-1, C]
        x = torch.cat([x.mean(dim=1, keepdim=True), x], dim=1) + pool.positional_embedding[None]
        q = pool.q_proj(x[:, 0]) * d**-0.5  # [N, C]
        q = q.reshape(n, heads, d).transpose(0, 1)  # [H, N, d]
        wk = pool.k_proj.weight.reshape(heads, d, c)  # [H, d, C]
        u = torch.matmul(q, wk).transpose(0, 1)  # [N, H, C]: W_kᵀ q per head
        weights = torch.softmax(torch.matmul(u, x.transpose(1, 2)), dim=-1)  # [N, H, T]
        mixed = torch.matmul(weights, x).transpose(0, 1)  # [H, N, C]: Σ_t w_t x_t per head
        wv = pool.v_proj.weight.reshape(heads, d, c).transpose(1, 2)  # [H, C, d]
        pooled = torch.matmul(mixed, wv).transpose(0, 1).reshape(n, c) + pool.v_proj.bias
        return pool.c_proj(pooled)


def graph_specs(clip: CLIP) -> dict[str, dict]:
    """File, input and output names and shapes ("N", "L" symbolic) of the three graphs."""
    c = clip.config
    S, C, g, D = c.image_resolution, c.neuron_channels, c.neuron_grid, c.embed_dim
    return {
        "visual_trunk": {
            "file": "visual_trunk.onnx",
            "input": {"name": "pixel_values", "type": "float32", "shape": ["N", 3, S, S]},
            "output": {"name": "neurons", "type": "float32", "shape": ["N", C, g, g]},
        },
        "visual_head": {
            "file": "visual_head.onnx",
            "input": {"name": "neurons", "type": "float32", "shape": ["N", C, g, g]},
            "output": {"name": "image_embeds", "type": "float32", "shape": ["N", D]},
        },
        "text": {
            "file": "text.onnx",
            "input": {"name": "input_ids", "type": "int64", "shape": ["N", "L"]},
            "output": {"name": "text_embeds", "type": "float32", "shape": ["N", D]},
        },
    }


def example_input(clip: CLIP, spec: dict) -> torch.Tensor:
    """A batch of 2 for tracing; text rows hold start ... end with zero padding."""
    shape = [2 if d == "N" else (7 if d == "L" else d) for d in spec["input"]["shape"]]
    if spec["input"]["type"] == "int64":
        vocab = clip.config.vocab_size
        ids = torch.zeros(shape, dtype=torch.long)
        ids[:, 0] = vocab - 2
        ids[0, 1:4] = torch.tensor([320, 1929, 539]) % (vocab - 2)  # in range for small vocabularies too
        ids[0, 4], ids[1, 2] = vocab - 1, vocab - 1
        return ids
    return torch.randn(shape, generator=torch.Generator().manual_seed(0))


def export_graphs(
    clip: CLIP, out_dir: str, text_graph: str = "fused", head_graph: str = "fused"
) -> dict[str, dict]:
    """Write the three ONNX files into out_dir, check them, and return their specs.

    text_graph: "fused" (text_graph.py's graph for onnxruntime) or "naive" (traced by torch.onnx).
    head_graph: "fused" (FusedVisualHead) or "naive" (AttentionPool2d as written).
    """
    if head_graph not in HEAD_GRAPHS:
        raise ValueError(f"head_graph must be one of {', '.join(HEAD_GRAPHS)}; got {head_graph!r}")
    specs = graph_specs(clip)
    for key, spec in specs.items():
        path = os.path.join(out_dir, spec["file"])
        if key == "text":
            export_text_graph(clip, path, text_graph)
            spec["graph"] = text_graph
        else:
            if key == "visual_trunk":
                module: nn.Module = VisualTrunk(clip)
            else:
                module = FusedVisualHead(clip) if head_graph == "fused" else VisualHead(clip)
                spec["graph"] = head_graph
            trace(module, clip, spec, path)
            check_graph(path, spec)
    return specs


def export_text_graph(clip: CLIP, path: str, text_graph: str = "fused") -> None:
    """Write text.onnx in one of its forms (TEXT_GRAPHS) to path, and check it."""
    if text_graph not in TEXT_GRAPHS:
        raise ValueError(f"text_graph must be one of {', '.join(TEXT_GRAPHS)}; got {text_graph!r}")
    spec = graph_specs(clip)["text"]
    if text_graph == "fused":
        onnx.save(build_text_graph(clip), path)
    else:
        trace(TextEncoder(clip), clip, spec, path)
    check_graph(path, spec)


def trace(module: nn.Module, clip: CLIP, spec: dict, path: str) -> None:
    """torch.onnx.export of module with the spec's names and symbolic dimensions."""
    inp, out = spec["input"], spec["output"]
    dynamic = {
        inp["name"]: {i: d for i, d in enumerate(inp["shape"]) if isinstance(d, str)},
        out["name"]: {i: d for i, d in enumerate(out["shape"]) if isinstance(d, str)},
    }
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about shape-dependent Python ints
        torch.onnx.export(
            module.eval(),
            (example_input(clip, spec),),
            path,
            input_names=[inp["name"]],
            output_names=[out["name"]],
            dynamic_axes=dynamic,
            opset_version=OPSET,
            do_constant_folding=True,
            export_params=True,
        )


def check_graph(path: str, spec: dict) -> None:
    """onnx.checker, then the declared input/output names, types and fixed dimensions."""
    onnx.checker.check_model(path)
    model = onnx.load(path, load_external_data=False)
    for kind, values in (("input", model.graph.input), ("output", model.graph.output)):
        want = spec[kind]
        if len(values) != 1 or values[0].name != want["name"]:
            raise RuntimeError(f"{path}: {kind}s {[v.name for v in values]}; expected [{want['name']}]")
        tensor = values[0].type.tensor_type
        elem = onnx.TensorProto.INT64 if want["type"] == "int64" else onnx.TensorProto.FLOAT
        dims = [d.dim_param or d.dim_value for d in tensor.shape.dim]
        if tensor.elem_type != elem or dims != want["shape"]:
            raise RuntimeError(f"{path}: {kind} {want['name']} has dims {dims}; expected {want['shape']}")
