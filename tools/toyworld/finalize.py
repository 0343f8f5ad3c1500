"""Finish an exported toy-world model directory.

Usage: python3 -m tools.toyworld.finalize MODEL_DIR [--neurons NEURONS_JSON]

Writes MODEL_DIR/words.txt (the service's word-embedding vocabulary: every concept word, synonym,
feelings-wheel word, extra word, and phrases such as "red circle" and "happy face"), replaces
MODEL_DIR/neurons.json with the automatic labels (evaluate.py --neurons: {id: {label, family, score,
source}}), then recomputes the `files` map of clip.json (sha256 of every file except clip.json) so
the directory validates.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil

from tools.hashing import sha256_file
from tools.toyworld import world


# Results the project's scripts write beside the model after finalize, from the finished model: not part
# of what clip.json hashes (default-composition.json names the model's own hash, which would be a cycle).
RESULTS_OF_THE_MODEL = frozenset({"default-composition.json", "neuron-labels.json", "typographic.json"})


def rehash(model_dir: str) -> dict:
    """clip.json's `files`: the sha256 of every file of the directory but clip.json itself and the
    results written from the finished model (RESULTS_OF_THE_MODEL)."""
    manifest = read_manifest(model_dir)
    manifest["files"] = {
        n: sha256_file(os.path.join(model_dir, n))
        for n in sorted(os.listdir(model_dir))
        if n != "clip.json" and n not in RESULTS_OF_THE_MODEL and os.path.isfile(os.path.join(model_dir, n))
    }
    write_manifest(model_dir, manifest)
    return manifest


def refresh_hash(model_dir: str, name: str) -> None:
    """Recompute one file's sha256 in clip.json's `files`, where it is listed (a file rewritten after
    finalize, such as a section of the model card); the other entries stay as they are."""
    manifest = read_manifest(model_dir)
    if name not in manifest.get("files", {}):
        return
    manifest["files"][name] = sha256_file(os.path.join(model_dir, name))
    write_manifest(model_dir, manifest)


def read_manifest(model_dir: str) -> dict:
    with open(os.path.join(model_dir, "clip.json"), encoding="utf-8") as f:
        return json.load(f)


def write_manifest(model_dir: str, manifest: dict) -> None:
    with open(os.path.join(model_dir, "clip.json"), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model_dir")
    ap.add_argument("--neurons", default=None)
    args = ap.parse_args()
    with open(os.path.join(args.model_dir, "words.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(world.vocabulary_phrases()) + "\n")
    if args.neurons:
        shutil.copyfile(args.neurons, os.path.join(args.model_dir, "neurons.json"))
    manifest = rehash(args.model_dir)
    total = sum(os.path.getsize(os.path.join(args.model_dir, n)) for n in manifest["files"])
    print(f"{args.model_dir}: {len(manifest['files'])} files, {total / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
