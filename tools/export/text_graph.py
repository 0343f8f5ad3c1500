"""CLIP's text encoder written node by node as an ONNX graph for onnxruntime (the "fused" text graph).

Same contract and numbers as the graph torch.onnx traces from clip_model.py ("naive", onnx_graphs.py):
input_ids int64 [N, L] -> text_embeds float32 [N, D], read at each row's highest id (the end token),
zero padding after it changing nothing. What differs is how the same arithmetic is laid out:

  * the residual stream is 2-D, [N*L, W]: every Linear is one `Gemm` with its bias fused (the traced
    graph has 3-D MatMul + Add: a second pass over every activation), and Q, K and V are three Gemms
    (the traced graph computes one [N, L, 3W] product and copies three slices out of it);
  * no shape arithmetic traced from Python (Shape, Gather, Div, Pow, Concat per layer): the head
    split takes one [N, L, H, d] shape computed once, the causal mask is sliced once for all layers;
  * QuickGELU is onnxruntime's `QuickGelu` (com.microsoft, alpha 1.702; onnxruntime fuses the traced
    graph's x * sigmoid(1.702 x) into the same operator), LayerNorm the opset-17 `LayerNormalization`;
  * the start token is not computed at all: every prompt begins with it at position 0, where causal
    attention sees nothing but itself, so its keys and values in every block are the same in every
    prompt, constants of the model computed here once in PyTorch. The residual stream holds positions
    1 .. L-1, and each block's keys and values are the start token's followed by theirs (an Expand
    and a Concat). At 8 tokens that is an eighth of every block's rows;
  * the end token is gathered *before* the last block's query, output projection, MLP, `ln_final` and
    `text_projection`: the last block computes keys and values for all L positions (the end token
    attends over them) but everything else for one row per prompt instead of L. Its causal mask is one
    row per prompt: -inf after the end token.

Rows are independent in every step but attention, and attention is causal, so leaving out the start
token's row and gathering the end token before the last block's per-row steps leave each prompt's
numbers as they were; the parity tests hold both graphs to 1e-5 relative against PyTorch. The
contract gains one condition: every row begins with the start token (id vocab_size - 2), as CLIP's
tokenizer writes it; the service refuses other rows before they reach the graph
(src/clip/clip-model.ts). Rows hold at least the start and end tokens (L >= 2).

Measured and left out (bench/text-graph-rn50x4.sh, onnxruntime 1.30 CPU, RN50x4 at batch 64): the
fused `Attention` operator (com.microsoft, unidirectional) projects Q, K, V per batch row and head with
small GEMMs and was 6 % slower than the traced graph at 8 tokens; `SkipLayerNormalization` (residual
add, bias and LayerNorm in one operator) cost more CPU time than Add + LayerNormalization; and
`MultiHeadAttention` (unidirectional) gained nothing at 8 tokens over the plain MatMul/Softmax
attention kept here.
"""

from __future__ import annotations

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
MS_DOMAIN = "com.microsoft"
LN_EPSILON = 1e-5  # torch.nn.LayerNorm's default, used by every LayerNorm of CLIP


class _Graph:
    """A node list with initializers, handing out fresh value names."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._constants: dict[str, np.ndarray] = {}

    def const(self, name: str, array: np.ndarray) -> str:
        """An initializer; a name given twice must hold the same value (then it is stored once)."""
        if name in self._constants:
            if not np.array_equal(self._constants[name], array):
                raise ValueError(f"constant {name} given two values")
            return name
        self._constants[name] = array
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def ints(self, name: str, values) -> str:
        return self.const(name, np.asarray(values, dtype=np.int64))

    def op(self, op_type: str, inputs: list[str], domain: str = "", **attrs) -> str:
        """Appends a node with one output and returns that output's name."""
        name = f"{op_type}_{len(self.nodes)}"
        node = helper.make_node(op_type, inputs, [name], name=name, domain=domain or None, **attrs)
        self.nodes.append(node)
        return name


def build_text_graph(clip) -> onnx.ModelProto:
    """The fused text graph of a float32 CLIP (tools.export.clip_model.CLIP) as an ONNX model."""
    config = clip.config
    width, heads, layers = config.transformer_width, config.transformer_heads, config.transformer_layers
    head_dim = width // heads
    state = {k: v.detach().cpu().float().numpy() for k, v in clip.state_dict().items()}
    g = _Graph()

    def weight(key: str) -> str:
        return g.const(key, state[key])

    def linear(x: str, prefix: str, part: int | None = None, bias: bool = True) -> str:
        """x [T, in] @ W^T (+ b) as Gemm, W stored [in, out]; `part` j of in_proj: rows j*W .. (j+1)*W."""
        if part is None:
            w, b, name = state[f"{prefix}.weight"], state[f"{prefix}.bias"], prefix
        else:
            rows = slice(part * width, (part + 1) * width)
            w, b = state[f"{prefix}_weight"][rows], state[f"{prefix}_bias"][rows]
            name = f"{prefix}.{'qkv'[part]}"
        inputs = [x, g.const(f"{name}.weight_t", w.T.copy())]
        return g.op("Gemm", inputs + [g.const(f"{name}.bias", b)]) if bias else g.op("MatMul", inputs)

    def layer_norm(x: str, prefix: str) -> str:
        inputs = [x, weight(f"{prefix}.weight"), weight(f"{prefix}.bias")]
        return g.op("LayerNormalization", inputs, axis=-1, epsilon=LN_EPSILON)

    def mlp(x: str, prefix: str) -> str:
        hidden = g.op("QuickGelu", [linear(x, f"{prefix}.mlp.c_fc")], MS_DOMAIN, alpha=1.702)
        return linear(hidden, f"{prefix}.mlp.c_proj")

    # The start token's row is the same in every prompt, and attention is causal: position 0 attends to
    # itself alone, so its keys and values in every block are constants of the model. The residual
    # stream holds positions 1 .. L-1 only, [N*(L-1), W], and each block's keys and values are the
    # start token's (computed here, once) followed by those rows'.
    start_keys, start_values = _start_token_keys_values(clip)

    # N and L from the ids.
    ids = "input_ids"
    scalar = g.ints("scalar_shape", [])
    shape = g.op("Shape", [ids])
    count = g.op("Slice", [shape, g.ints("0", [0]), g.ints("1", [1])])  # [N]
    length = g.op("Slice", [shape, g.ints("1", [1]), g.ints("2", [2])])  # [L]
    rest = g.op("Sub", [length, g.ints("1", [1])])  # [L-1]
    n_scalar, rest_scalar = g.op("Reshape", [count, scalar]), g.op("Reshape", [rest, scalar])
    flat = g.ints("rows_shape", [-1, width])
    per_head = g.op("Concat", [count, rest, g.ints("heads_shape", [heads, head_dim])], axis=0)
    start_key_shape = g.op("Concat", [count, g.ints("start_key_shape", [heads, head_dim, 1])], axis=0)
    start_value_shape = g.op("Concat", [count, g.ints("start_value_shape", [heads, 1, head_dim])], axis=0)
    scale = g.const("scale", np.asarray(head_dim**-0.5, dtype=np.float32))

    def keys_and_values(normed: str, block: int) -> tuple[str, str]:
        """The block's keys [N, H, d, L] and values [N, H, L, d]: the start token's, then rows 1 .. L-1."""
        p = f"transformer.resblocks.{block}"
        key = g.op(
            "Transpose",
            [g.op("Reshape", [linear(normed, f"{p}.attn.in_proj", 1), per_head])],
            perm=[0, 2, 3, 1],
        )
        value = g.op(
            "Transpose",
            [g.op("Reshape", [linear(normed, f"{p}.attn.in_proj", 2), per_head])],
            perm=[0, 2, 1, 3],
        )
        start_key = g.const(f"{p}.start_key", start_keys[block].reshape(1, heads, head_dim, 1))
        start_value = g.const(f"{p}.start_value", start_values[block].reshape(1, heads, 1, head_dim))
        key = g.op("Concat", [g.op("Expand", [start_key, start_key_shape]), key], axis=3)
        value = g.op("Concat", [g.op("Expand", [start_value, start_value_shape]), value], axis=2)
        return key, value

    body = g.op("Slice", [ids, g.ints("1", [1]), length, g.ints("1", [1])])  # [N, L-1]: after the start token
    x = g.op("Gather", [weight("token_embedding.weight"), body])  # [N, L-1, W]
    positions = g.op("Slice", [weight("positional_embedding"), g.ints("1", [1]), length])  # [L-1, W]
    x = g.op("Reshape", [g.op("Add", [x, positions]), flat])  # [N*(L-1), W]

    # The causal mask's rows 1 .. L-1 over columns 0 .. L-1.
    causal = np.triu(np.full((config.context_length,) * 2, -np.inf, dtype=np.float32), 1)
    ends = g.op("Concat", [length, length], axis=0)
    causal = g.op("Slice", [g.const("causal_mask", causal), g.ints("1_0", [1, 0]), ends])  # [L-1, L]

    # Blocks 0 .. n-2 on all N*(L-1) rows.
    for i in range(layers - 1):
        p = f"transformer.resblocks.{i}"
        normed = layer_norm(x, f"{p}.ln_1")
        q = linear(normed, f"{p}.attn.in_proj", 0)
        q = g.op("Transpose", [g.op("Reshape", [g.op("Mul", [q, scale]), per_head])], perm=[0, 2, 1, 3])
        k, v = keys_and_values(normed, i)
        scores = g.op("Add", [g.op("MatMul", [q, k]), causal])  # [N, H, L-1, L]
        attended = g.op("MatMul", [g.op("Softmax", [scores], axis=-1), v])  # [N, H, L-1, d]
        attended = g.op("Reshape", [g.op("Transpose", [attended], perm=[0, 2, 1, 3]), flat])
        x = g.op("Add", [x, linear(attended, f"{p}.attn.out_proj")])
        x = g.op("Add", [x, mlp(layer_norm(x, f"{p}.ln_2"), p)])

    # The end token of each row: its highest id (exact in float32 for ids < 2^24), position >= 1,
    # as a row of x (which starts at position 1).
    eot = g.op("ArgMax", [g.op("Cast", [ids], to=TensorProto.FLOAT)], axis=1, keepdims=0)  # [N]
    prompts = g.op("Range", [g.ints("start", 0), n_scalar, g.ints("step", 1)])  # [N]
    eot_rows = g.op("Add", [g.op("Mul", [prompts, rest_scalar]), g.op("Sub", [eot, g.ints("one", 1)])])  # [N]

    # The last block: keys and values on all rows, everything else on the end tokens' rows only.
    p = f"transformer.resblocks.{layers - 1}"
    normed = layer_norm(x, f"{p}.ln_1")
    query = linear(g.op("Gather", [normed, eot_rows]), f"{p}.attn.in_proj", 0)  # [N, W]
    query = g.op("Reshape", [g.op("Mul", [query, scale]), g.ints("query_shape", [-1, heads, 1, head_dim])])
    key, value = keys_and_values(normed, layers - 1)
    # The end token's row of the causal mask: -inf after it (where only zero padding lies).
    position = g.op(
        "Range", [g.ints("start", 0), g.op("Reshape", [length, scalar]), g.ints("step", 1)]
    )  # [L]
    after = g.op("Greater", [position, g.op("Unsqueeze", [eot, g.ints("1", [1])])])  # [N, L]
    minus_inf = g.const("minus_inf", np.asarray(-np.inf, dtype=np.float32))
    mask = g.op("Where", [after, minus_inf, g.const("zero", np.asarray(0.0, dtype=np.float32))])
    mask = g.op("Unsqueeze", [mask, g.ints("1_2", [1, 2])])  # [N, 1, 1, L]
    scores = g.op("Add", [g.op("MatMul", [query, key]), mask])  # [N, H, 1, L]
    attended = g.op("MatMul", [g.op("Softmax", [scores], axis=-1), value])  # [N, H, 1, d]
    attended = g.op("Reshape", [attended, flat])  # [N, W]
    x = g.op("Add", [g.op("Gather", [x, eot_rows]), linear(attended, f"{p}.attn.out_proj")])
    x = g.op("Add", [x, mlp(layer_norm(x, f"{p}.ln_2"), p)])
    g.op("MatMul", [layer_norm(x, "ln_final"), weight("text_projection")])
    g.nodes[-1].output[0] = "text_embeds"

    graph = helper.make_graph(
        g.nodes,
        "clip_text_fused",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["N", "L"])],
        [helper.make_tensor_value_info("text_embeds", TensorProto.FLOAT, ["N", config.embed_dim])],
        g.initializers,
    )
    opsets = [helper.make_opsetid("", OPSET), helper.make_opsetid(MS_DOMAIN, 1)]
    return helper.make_model(graph, opset_imports=opsets, producer_name="tools.export.text_graph")


def _start_token_keys_values(clip) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Each block's key and value [W] of the start token at position 0, in PyTorch (float32, as the
    model runs): the token attends to itself alone, so they are the same in every prompt."""
    config = clip.config
    start_id = config.vocab_size - 2  # CLIP's layout: <|startoftext|>, then <|endoftext|> last
    keys, values = [], []
    with torch.no_grad():
        x = (clip.token_embedding.weight[start_id] + clip.positional_embedding[0]).float()[None, None]
        alone = torch.zeros(1, 1)
        for block in clip.transformer.resblocks:
            attn = block.attn
            _, key, value = F.linear(block.ln_1(x), attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)
            keys.append(key.reshape(-1).cpu().numpy().astype(np.float32))
            values.append(value.reshape(-1).cpu().numpy().astype(np.float32))
            x = block(x, alone)
    return keys, values
