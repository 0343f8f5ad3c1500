"""Held-out renders of the toy world for evaluation (PIL only, no torch: CI runs it cheaply).

Usage: python3 -m tools.toyworld.heldout --seed S --out DIR [--merges models/toyworld/bpe_toyworld.txt] [--per N]

Writes DIR/*.png (already at the model's size) and DIR/heldout.json:
  items:   [{file, set, label, ...}] with sets
           colour_patch   a colour patch (label: colour)
           shape          a coloured shape (label: shape; colour also given)
           face           a face (label: expression)
           word           a concept name written in dark ink, training-style fonts (label: the word)
           word_all       every vocabulary word, training-style renders (label: the word)
           service_word   every vocabulary word in the service rasteriser's layout (label: the word)
           attack         a shape of colour A with the colour word B written on it (label: A; word: B)
  tasks:   the zero-shot tasks: {name: {set(s), classes, templates}}
  prompts: every prompt text used by the tasks and the direction test, with token ids when --merges
           is given (so a consumer without a tokenizer can still run the evaluation)
The seed space is disjoint from training (training draws from random.Random(seed * 1000 + worker)).
"""

from __future__ import annotations

import argparse
import json
import os
import random

from tools.toyworld import world

TASKS = {
    "colours": {
        "sets": ["colour_patch"],
        "classes": list(world.COLOURS),
        "templates": ["{}", "the colour {}", "a {} patch"],
    },
    "shapes": {"sets": ["shape"], "classes": world.SHAPES, "templates": ["a {}", "a drawing of a {}"]},
    "expressions": {
        "sets": ["face"],
        "classes": world.EXPRESSIONS,
        "templates": ["a {} face", "i am feeling {}"],
    },
    "reading": {"sets": ["word"], "classes": world.CONCEPT_WORDS, "templates": ["the word {}", "{}"]},
    "reading_all_training_fonts": {
        "sets": ["word_all"],
        "classes": world.ALL_WORDS,
        "templates": ["the word {}", "{}"],
    },
    "reading_all_service_raster": {
        "sets": ["service_word"],
        "classes": world.ALL_WORDS,
        "templates": ["the word {}", "{}"],
    },
    "attack": {
        "sets": ["attack"],
        "classes": list(world.COLOURS),
        "templates": ["{}", "the colour {}", "a {} patch"],
    },
}
# Concept texts t_c for the multimodal-direction test: the bare concept word.
DIRECTION_FAMILIES = {
    "colour": {"classes": list(world.COLOURS), "picture_set": "colour_patch"},
    "expression": {"classes": world.EXPRESSIONS, "picture_set": "face"},
}


def dark_word(rng: random.Random, word: str):
    S = world.IMAGE_SIZE * world.SUPER
    img = world.background(rng, S)
    v = rng.randint(0, 50)
    m = rng.randint(2, S // 6)
    world.paste_text(img, rng, word, (v, v, v), (m, m, S - m, S - m))
    return world.finish(img, rng)


def generate(seed: int, out: str, per: int) -> list[dict]:
    rng = random.Random(10_000_019 + seed)
    os.makedirs(out, exist_ok=True)
    items: list[dict] = []

    def save(img, set_name: str, label: str, **extra):
        name = f"{set_name}_{len(items):05d}.png"
        img.convert("RGB").save(os.path.join(out, name))
        items.append({"file": name, "set": set_name, "label": label, **extra})

    for c in world.COLOURS:
        for _ in range(per):
            save(world.make_patch(rng, colour=c)[0], "colour_patch", c)
    for s in world.SHAPES:
        for _ in range(per):
            img, _, meta = world.make_shape(rng, shape=s)
            save(img, "shape", s, colour=meta["colour"])
    for e in world.EXPRESSIONS:
        for _ in range(per):
            save(world.make_face(rng, expression=e)[0], "face", e)
    for w in world.CONCEPT_WORDS:
        for _ in range(max(2, per // 2)):
            save(dark_word(rng, w), "word", w)
    for w in world.ALL_WORDS:
        for _ in range(2):
            save(dark_word(rng, w), "word_all", w)
        save(world.rasterize_text(w, world.IMAGE_SIZE), "service_word", w)
    colours = list(world.COLOURS)
    for a in colours:
        for b in colours:
            if a == b:
                continue
            for _ in range(2):
                img, _, _ = world.make_shape_with_word(
                    rng, shape=rng.choice(["circle", "square", "heart", "diamond"]), colour=a, word=b
                )
                save(img, "attack", a, word=b)
    return items


def prompt_texts() -> list[str]:
    texts: list[str] = []
    for task in TASKS.values():
        for t in task["templates"]:
            texts += [t.format(c) for c in task["classes"]]
    for fam in DIRECTION_FAMILIES.values():
        texts += list(fam["classes"])
    return sorted(set(texts))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", required=True)
    ap.add_argument("--per", type=int, default=24, help="images per class for pictures")
    ap.add_argument("--merges", default=None, help="add token ids of every prompt (own Python tokenizer)")
    args = ap.parse_args()
    items = generate(args.seed, args.out, args.per)
    prompts: dict[str, list[int] | None] = {t: None for t in prompt_texts()}
    if args.merges:
        from tools.toyworld.bpe import Tokenizer

        tok = Tokenizer(args.merges, 32)
        prompts = {t: tok.encode(t) for t in prompts}
    doc = {
        "seed": args.seed,
        "image_size": world.IMAGE_SIZE,
        "service_raster": world.SERVICE_RASTER,
        "tasks": TASKS,
        "directions": DIRECTION_FAMILIES,
        "prompts": prompts,
        "items": items,
    }
    with open(os.path.join(args.out, "heldout.json"), "w") as f:
        json.dump(doc, f)
    print(f"{len(items)} held-out images in {args.out}")


if __name__ == "__main__":
    main()
