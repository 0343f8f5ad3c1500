"""Both forms of text.onnx and PyTorch's outputs, for bench/text-graph-rn50x4.sh.

    python3 -m bench.text_graphs CHECKPOINT WORK [--rows 16]

Writes WORK/text-naive.onnx (traced by torch.onnx), WORK/text-fused.onnx (tools/export/text_graph.py)
and WORK/text-reference.json: for L = 8 and L = 77, rows <start> ... <end> of seeded random lengths
2 .. L zero-padded to L (the service pads a batch to its longest row), their ids and PyTorch's float32
text features (our CLIP definition in tools/export, eval mode).
"""

import argparse
import json
import os

import numpy as np
import torch

from tools.export.checkpoint import load_checkpoint
from tools.export.onnx_graphs import TEXT_GRAPHS, export_text_graph

parser = argparse.ArgumentParser()
parser.add_argument("checkpoint")
parser.add_argument("work")
parser.add_argument("--rows", type=int, default=16)
parser.add_argument("--lengths", type=int, nargs="+", default=[8, 77])
args = parser.parse_args()

torch.set_num_threads(2)
clip = load_checkpoint(args.checkpoint).model
for form in TEXT_GRAPHS:
    export_text_graph(clip, os.path.join(args.work, f"text-{form}.onnx"), form)

vocab = clip.config.vocab_size
rng = np.random.default_rng(0)
batches = []
with torch.no_grad():
    for length in args.lengths:
        ids = torch.zeros(args.rows, length, dtype=torch.long)
        for r in range(args.rows):
            n = length if r == 0 else int(rng.integers(2, length + 1))  # the first row fills L
            ids[r, :n] = torch.from_numpy(rng.integers(1, vocab - 2, n))
            ids[r, 0], ids[r, n - 1] = vocab - 2, vocab - 1
        features = clip.encode_text(ids)
        batches.append({"length": length, "ids": ids.tolist(), "text_embeds": features.flatten().tolist()})
with open(os.path.join(args.work, "text-reference.json"), "w", encoding="utf-8") as f:
    json.dump({"vocab_size": vocab, "embed_dim": clip.config.embed_dim, "batches": batches}, f)
