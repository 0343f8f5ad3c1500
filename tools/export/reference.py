#!/usr/bin/env python3
"""PyTorch reference outputs of a checkpoint for fixed inputs, to check an exported model directory.

    reference.py CHECKPOINT OUT.json [--seed N] [--images K]

Inputs (stored in OUT.json so another runtime feeds identical values):
  token_rows    id lists of different lengths, each <start> ... <end> (the last one fills the context)
  pixel_values  K seeded standard-normal images [K,3,S,S] (already normalised, as the trunk expects)
Outputs, all float32 from the float32 model in eval mode:
  text_embeds   [R,D]  each row encoded alone at its own length L
  neurons       [K,C,h,w] = visual.trunk(pixel_values)
  image_embeds  [K,D]  = visual.attnpool(neurons)
  attribution   [R,C]  = W t, W = (c_proj.weight v_proj.weight)^T, computed in float64 from float32 W, t
  top10         [R,10] neuron ids of the largest attribution, and the 10th-minus-11th margin
Arrays are {"dtype": "float32", "shape": [...], "base64": little-endian bytes}.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys

import numpy as np
import torch

from tools.export.checkpoint import CheckpointError, load_checkpoint

# Ordinary BPE ids (all < 49406) for rows of a few lengths; start/end ids are added around them.
FIXED_ROWS = [
    [],
    [320, 1125, 539, 320, 2368],
    [1929, 6898, 539, 5871, 267, 3372, 525, 1180, 14004, 631, 2254, 1195, 3155, 257, 16151, 30383, 269],
]


def encode_array(array: np.ndarray) -> dict:
    array = np.ascontiguousarray(array, dtype="<f4")
    return {
        "dtype": "float32",
        "shape": list(array.shape),
        "base64": base64.b64encode(array.tobytes()).decode(),
    }


def token_rows(vocab_size: int, context_length: int, seed: int) -> list[list[int]]:
    """Rows of lengths 2, 7, 19 and context_length, with start = vocab-2 and end = vocab-1."""
    start, end = vocab_size - 2, vocab_size - 1
    rng = np.random.default_rng(seed)
    full = rng.integers(1, start, size=context_length - 2).tolist()
    bodies = [[i % start for i in row] for row in FIXED_ROWS] + [full]
    return [[start, *body, end][:context_length] for body in bodies]


def top_k(values: np.ndarray, k: int) -> tuple[list[int], float]:
    order = np.argsort(-values, kind="stable")
    margin = float(values[order[k - 1]] - values[order[k]]) if values.size > k else float("inf")
    return [int(i) for i in order[:k]], margin


def compute(checkpoint: str, seed: int, images: int) -> dict:
    loaded = load_checkpoint(checkpoint)
    clip, config = loaded.model, loaded.config
    rows = token_rows(config.vocab_size, config.context_length, seed)
    S = config.image_resolution
    pixels = np.random.default_rng(seed).standard_normal((images, 3, S, S)).astype(np.float32)

    with torch.no_grad():
        text = torch.cat([clip.encode_text(torch.tensor([row])) for row in rows]).numpy()
        padded = torch.zeros(len(rows), config.context_length, dtype=torch.long)
        for r, row in enumerate(rows):
            padded[r, : len(row)] = torch.tensor(row)
        text_padded = clip.encode_text(padded).numpy()
        neurons = clip.visual.trunk(torch.from_numpy(pixels))
        image = clip.visual.attnpool(neurons).numpy()
        neurons = neurons.numpy()
        w = clip.bilinear().numpy().astype(np.float64)  # float32 values, float64 arithmetic
    attribution = text.astype(np.float64) @ w.T
    tops = [top_k(a, 10) for a in attribution]
    return {
        "description": "PyTorch (tools/export/clip_model.py) outputs for fixed inputs; see reference.py",
        "checkpoint": os.path.basename(checkpoint),
        "config": config.to_dict(),
        "seed": seed,
        "token_rows": rows,
        "pixel_values": encode_array(pixels),
        "text_embeds": encode_array(text),
        "text_embeds_padded_max_abs_diff": float(np.abs(text_padded - text).max()),
        "neurons": encode_array(neurons),
        "image_embeds": encode_array(image),
        "attribution": encode_array(attribution),
        "top10": [ids for ids, _ in tops],
        "top10_margin_10th_minus_11th": [margin for _, margin in tops],
        "logit_scale": float(clip.logit_scale.exp().item()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint")
    parser.add_argument("out")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--images", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    try:
        result = compute(args.checkpoint, args.seed, args.images)
    except CheckpointError as error:
        print(f"reference: {error}", file=sys.stderr)
        return 1
    tmp = f"{args.out}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(result, f)
    os.replace(tmp, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
