#!/usr/bin/env python3
"""Export a CLIP ResNet checkpoint to a model directory that the service loads.

    python3 -m tools.export.export_clip CHECKPOINT OUT_DIR --vocab MERGES [--name NAME] [--labels FILE]
        [--text-graph fused|naive] [--head-graph fused|naive] [--force] [--trust-pickle]

OUT_DIR receives visual_trunk.onnx, visual_head.onnx, text.onnx, bilinear.f32 (W [C,D], little-endian
float32, W = (c_proj.weight @ v_proj.weight)^T so that W·t scores every neuron for text features t),
the merges file, neurons.json and clip.json (the manifest, with the sha256 of every file). See
docs/model-directory.md.

The directory is written atomically: everything goes into a temporary folder next to OUT_DIR, which is
renamed to OUT_DIR at the end. On any failure nothing is left behind and the exit status is non-zero;
expected problems (bad checkpoint, merges, labels, OUT_DIR) print one line on stderr.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import time

from tools.hashing import sha256_file

MEAN = [0.48145466, 0.4578275, 0.40821073]
STD = [0.26862954, 0.26130258, 0.27577711]
RESIZE = "bicubic shortest side to S, centre crop"


class ExportError(Exception):
    """A problem with the command line or OUT_DIR; the message is one line."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="OpenAI TorchScript archive or torch.save state dict (.pt)")
    parser.add_argument("out_dir", help="model directory to create (must not exist unless --force)")
    parser.add_argument(
        "--vocab", required=True, help="BPE merges file (gzip or text), copied under its basename"
    )
    parser.add_argument(
        "--name", help="model name in clip.json (default: RN50x4 etc. or the checkpoint's stem)"
    )
    parser.add_argument(
        "--labels", help='JSON {neuron id: label or {"label", "family"}} merged into neurons.json'
    )
    parser.add_argument(
        "--trust-pickle", action="store_true", help="unpickle any Python object (trusted files only)"
    )
    parser.add_argument(
        "--text-graph",
        choices=("fused", "naive"),
        default="fused",
        help="text.onnx as onnxruntime's fused operators (default) or as traced by torch.onnx; same numbers",
    )
    parser.add_argument(
        "--head-graph",
        choices=("fused", "naive"),
        default="fused",
        help="visual_head.onnx without the tokens' keys and values (default) or as traced; same numbers",
    )
    parser.add_argument("--force", action="store_true", help="replace an existing OUT_DIR")
    return parser.parse_args(argv)


def check_out_dir(out_dir: str, force: bool) -> str:
    out_dir = os.path.abspath(out_dir)
    parent = os.path.dirname(out_dir)
    if not os.path.isdir(parent):
        raise ExportError(f"{parent}: parent directory of OUT_DIR does not exist")
    if os.path.lexists(out_dir) and not force:
        raise ExportError(f"{out_dir}: already exists; pass --force to replace it")
    return out_dir


def default_name(config, checkpoint: str) -> str:
    from tools.export.clip_model import RELEASED_CONFIGS

    for name, released in RELEASED_CONFIGS.items():
        if released == config:
            return name
    return os.path.splitext(os.path.basename(checkpoint))[0]


def write_bilinear(clip, path: str) -> list[int]:
    """W [C,D] as little-endian float32 (row-major: neuron c's D weights are contiguous)."""
    import numpy as np

    w = clip.bilinear().detach().cpu().numpy().astype("<f4", copy=False)
    with open(path, "wb") as f:
        f.write(np.ascontiguousarray(w).tobytes())
    return list(w.shape)


def build_manifest(args, loaded, name, specs, merges_name, merges_used, bilinear_shape, files) -> dict:
    config = loaded.config
    clip = loaded.model
    g = config.neuron_grid
    return {
        "format_version": 1,
        "name": name,
        "image_size": config.image_resolution,
        "resize": RESIZE,
        "mean": MEAN,
        "std": STD,
        "context_length": config.context_length,
        "vocab_size": config.vocab_size,
        "embed_dim": config.embed_dim,
        "neuron_layer": "visual.layer4",
        "neuron_count": config.neuron_channels,
        "neuron_grid": [g, g],
        "logit_scale": float(math.exp(clip.logit_scale.item())),
        "tokenizer": {
            "merges": merges_name,
            "merges_used": merges_used,
            "merges_rule": "the first vocab_size - 514 lines after the header line",
            "start_id": config.vocab_size - 2,
            "end_id": config.vocab_size - 1,
        },
        "tensors": {
            **specs,
            "bilinear": {
                "file": "bilinear.f32",
                "type": "float32",
                "byte_order": "little",
                "shape": bilinear_shape,
                "definition": "W = (visual.attnpool.c_proj.weight @ visual.attnpool.v_proj.weight)^T",
            },
        },
        "config": config.to_dict(),
        "source": {
            "checkpoint": os.path.basename(args.checkpoint),
            "checkpoint_sha256": sha256_file(args.checkpoint),
            "format": loaded.format,
            "stored_dtype": loaded.stored_dtype,
        },
        "onnx_opset": 17,
        "files": files,
    }


def export(args: argparse.Namespace) -> dict:
    """Write the model directory; returns its manifest."""
    out_dir = check_out_dir(args.out_dir, args.force)
    import torch

    from tools.export.checkpoint import load_checkpoint
    from tools.export.merges import check_merges
    from tools.export.neurons import build_catalogue, write_catalogue
    from tools.export.onnx_graphs import export_graphs

    torch.set_num_threads(min(2, torch.get_num_threads()))
    loaded = load_checkpoint(args.checkpoint, args.trust_pickle)
    merges_used = check_merges(args.vocab, loaded.config.vocab_size)
    catalogue = build_catalogue(loaded.config, args.labels)
    name = args.name or default_name(loaded.config, args.checkpoint)

    parent, base = os.path.split(out_dir)
    tmp = tempfile.mkdtemp(prefix=f".{base}.tmp-", dir=parent)
    try:
        specs = export_graphs(loaded.model, tmp, args.text_graph, args.head_graph)
        bilinear_shape = write_bilinear(loaded.model, os.path.join(tmp, "bilinear.f32"))
        merges_name = os.path.basename(args.vocab)
        shutil.copyfile(args.vocab, os.path.join(tmp, merges_name))
        write_catalogue(os.path.join(tmp, "neurons.json"), catalogue)
        files = {n: sha256_file(os.path.join(tmp, n)) for n in sorted(os.listdir(tmp))}
        manifest = build_manifest(args, loaded, name, specs, merges_name, merges_used, bilinear_shape, files)
        with open(os.path.join(tmp, "clip.json"), "w", encoding="utf-8") as f:
            json.dump(manifest, f, indent=2)
            f.write("\n")
        os.chmod(tmp, 0o755)
        replace_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def replace_dir(tmp: str, out_dir: str) -> None:
    """Rename tmp to out_dir; an existing out_dir (only with --force) is moved aside first."""
    if not os.path.lexists(out_dir):
        os.rename(tmp, out_dir)
        return
    old = tempfile.mkdtemp(prefix=f".{os.path.basename(out_dir)}.old-", dir=os.path.dirname(out_dir))
    os.rename(out_dir, os.path.join(old, "previous"))
    os.rename(tmp, out_dir)
    shutil.rmtree(old, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    from tools.export.checkpoint import CheckpointError
    from tools.export.merges import MergesError
    from tools.export.neurons import LabelsError

    try:
        manifest = export(args)
    except (CheckpointError, MergesError, LabelsError, ExportError) as error:
        print(f"export_clip: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("export_clip: interrupted; nothing written", file=sys.stderr)
        return 130
    sizes = sum(os.path.getsize(os.path.join(args.out_dir, f)) for f in manifest["files"])
    print(
        f"exported {manifest['name']} to {args.out_dir}: C={manifest['neuron_count']} "
        f"D={manifest['embed_dim']} S={manifest['image_size']}, {sizes / 1e6:.1f} MB "
        f"in {time.monotonic() - started:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
