"""The embedded model's probe collection: held-out renders of every concept, labelled with it.

Usage: python3 -m tools.toyworld.probe MODEL_DIR [--per-picture N] [--per-word N] [--record]

Writes MODEL_DIR/probe.tar.gz, which the service installs at start as the image collection `probe`
(src/collections/probe.ts): a `manifest.csv` (file,category,caption) and one lossless WebP per
render, at the model's size, named `<kind>/<concept>/<nnn>.webp`:

  colour-patch   a patch of the colour                 (category: the colour, e.g. "red")
  shape          a shape in a random colour            (category: the shape, e.g. "star")
  face           a face with the expression            (category: the expression, e.g. "happy")
  word           the word in dark ink, training fonts  (category: the word, e.g. "red", "tiger")
  service-word   the word as the service rasters it    (category: the word)

So a category is a concept name (a colour, a shape, an expression, or any vocabulary word), and the
pictures of a concept share its category with the renders of its name: the category bars of a
multimodal neuron show both. The caption starts with the kind's family (colour, shape, expression,
word) and says what is drawn ("shape: a green star").

Seed: the renders draw from random.Random(10_000_019 + 100), heldout.py's seed space with seed 100,
which nothing else uses (training draws from Random(seed * 1000 + worker) with seed 1, the neuron
labels and scales were calibrated on held-out seed 7 and every figure of the model card is measured
on seed 8).

The archive is deterministic (sorted entries, zero times and owners, gzip without a time stamp), so
rerunning this gives the same bytes. --record writes its sha256 into MODEL_DIR/clip.json's `files`
(and nothing else there), which changes the model's sha256 (the hash of clip.json).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import json
import os
import random
import tarfile

from tools.hashing import sha256_file
from tools.toyworld import heldout, world

PROBE_SEED = 100
PROBE_FILE = "probe.tar.gz"


def renders(per_picture: int, per_word: int):
    """(kind, concept, caption, image) for every render, in a fixed order."""
    rng = random.Random(10_000_019 + PROBE_SEED)
    for c in world.COLOURS:
        for _ in range(per_picture):
            yield "colour-patch", c, f"colour: a {c} patch", world.make_patch(rng, colour=c)[0]
    for s in world.SHAPES:
        for _ in range(per_picture):
            img, _, meta = world.make_shape(rng, shape=s)
            yield "shape", s, f"shape: a {meta['colour']} {s}", img
    for e in world.EXPRESSIONS:
        for _ in range(per_picture):
            yield "face", e, f"expression: a {e} face", world.make_face(rng, expression=e)[0]
    for w in world.ALL_WORDS:
        for _ in range(per_word):
            yield "word", w, f'word: "{w}" in dark ink', heldout.dark_word(rng, w)
        yield "service-word", w, f'word: "{w}" as the service rasters it', world.rasterize_text(
            w, world.IMAGE_SIZE
        )


def build(per_picture: int, per_word: int) -> tuple[bytes, int]:
    """The archive's bytes and how many images it holds."""
    files: list[tuple[str, bytes]] = []
    rows: list[tuple[str, str, str]] = []
    counts: dict[tuple[str, str], int] = {}
    for kind, concept, caption, img in renders(per_picture, per_word):
        n = counts.get((kind, concept), 0)
        counts[(kind, concept)] = n + 1
        name = f"{kind}/{concept}/{n:03d}.webp"
        out = io.BytesIO()
        img.convert("RGB").save(out, "WEBP", lossless=True, quality=100, method=6)
        files.append((name, out.getvalue()))
        rows.append((name, concept, caption))
    table = io.StringIO()
    writer = csv.writer(table, lineterminator="\n")
    writer.writerow(["file", "category", "caption"])
    writer.writerows(rows)
    files.insert(0, ("manifest.csv", table.getvalue().encode("utf-8")))

    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 0
            info.mode = 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    packed = io.BytesIO()
    with gzip.GzipFile(fileobj=packed, mode="wb", compresslevel=9, mtime=0) as gz:
        gz.write(raw.getvalue())
    return packed.getvalue(), len(rows)


def record(model_dir: str, names: list[str]) -> str:
    """Writes the sha256 of `names` into clip.json's files map; returns clip.json's new sha256."""
    manifest_path = os.path.join(model_dir, "clip.json")
    with open(manifest_path, encoding="utf-8") as f:
        manifest = json.load(f)
    files = dict(manifest["files"])
    for name in names:
        files[name] = sha256_file(os.path.join(model_dir, name))
    manifest["files"] = dict(sorted(files.items()))
    with open(manifest_path, "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    return sha256_file(manifest_path)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model_dir")
    ap.add_argument("--per-picture", type=int, default=20, help="renders per colour, shape, expression")
    ap.add_argument("--per-word", type=int, default=10, help="dark-ink renders per vocabulary word")
    ap.add_argument("--record", action="store_true", help="write the archive's sha256 into clip.json")
    args = ap.parse_args()
    data, count = build(args.per_picture, args.per_word)
    out = os.path.join(args.model_dir, PROBE_FILE)
    with open(out, "wb") as f:
        f.write(data)
    print(f"{out}: {count} images, {len(data)} bytes")
    if args.record:
        print(f"clip.json sha256 now {record(args.model_dir, [PROBE_FILE])}")


if __name__ == "__main__":
    main()
