"""Write the model card (README.md) and the loss curve (loss.png, drawn with PIL) of the toy-world model.

Usage: python3 -m tools.toyworld.card MODEL_DIR --log run/log.json --config run/config.json --metrics metrics.json
               [--seed S] [--merges N] [--reproduce-seconds T]
"""

from __future__ import annotations

import argparse
import json
import os

from PIL import Image, ImageDraw, ImageFont

from tools.toyworld import world
from tools.toyworld.finalize import refresh_hash
from tools.toyworld.targets import check


def draw_curve(log: dict, path: str) -> None:
    w, h, ml, mr, mt, mb = 640, 360, 60, 20, 30, 45
    img = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(img)
    f = ImageFont.truetype(os.path.join(world.FONT_DIR, "DejaVuSans.ttf"), 12)
    steps, loss = log["steps"], log["loss"]
    x0, x1 = 0, max(steps)
    y0, y1 = 0.0, max(loss) * 1.05
    px = lambda s: ml + (s - x0) / (x1 - x0) * (w - ml - mr)  # noqa: E731
    py = lambda v: h - mb - (v - y0) / (y1 - y0) * (h - mt - mb)  # noqa: E731
    d.rectangle([ml, mt, w - mr, h - mb], outline=(0, 0, 0))
    for k in range(6):
        v = y0 + (y1 - y0) * k / 5
        d.line([ml - 4, py(v), ml, py(v)], fill=(0, 0, 0))
        d.line([ml + 1, py(v), w - mr - 1, py(v)], fill=(230, 230, 230))
        d.text((6, py(v) - 7), f"{v:.2f}", font=f, fill=(0, 0, 0))
    for k in range(6):
        s = x0 + (x1 - x0) * k / 5
        d.line([px(s), h - mb, px(s), h - mb + 4], fill=(0, 0, 0))
        d.text((px(s) - 12, h - mb + 8), f"{int(s)}", font=f, fill=(0, 0, 0))
    d.line([(px(s), py(v)) for s, v in zip(steps, loss)], fill=(25, 75, 215), width=2)
    d.text(
        (ml, 8),
        "toyworld CLIP: training loss (symmetric InfoNCE, mean of 50 steps)",
        font=f,
        fill=(0, 0, 0),
    )
    d.text((w // 2 - 20, h - 18), "step", font=f, fill=(0, 0, 0))
    img.save(path)


def pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def training_levers(a: dict) -> list[str]:
    """The card's sentences on the training levers a run used (train.py's flags)."""
    out = []
    if a.get("uniform_attention"):
        out += [
            "The attention pool's query/key weights are fixed at zero (`--uniform-attention`): its attention is",
            "uniform over [mean, grid], so the head is linear in the neurons' spatial mean and W = c_proj·v_proj is",
            "exactly the linear part the article's bilinear formula assumes (up to the bias and positional terms).",
        ]
    else:
        out.append(
            f"Weight decay of the attention pool's query/key: {a['pool_wd'] if a.get('qk_wd') is None else a['qk_wd']}."
        )
    penalties = []
    if a.get("sparsity"):
        penalties.append(f"{a['sparsity']} × the L1/L2 ratio of the neurons' spatial mean (sparse codes)")
    if a.get("steady_norm"):
        penalties.append(
            f"{a['steady_norm']} × the batch variance of log |spatial mean| (a picture's overall activation should not follow its area)"
        )
    if a.get("centre"):
        penalties.append(
            f"{a['centre']} × |batch mean|² of the unit image and text embeddings (no large shared component)"
        )
    if penalties:
        out.append("Added to the loss: " + "; ".join(penalties) + ".")
    return out


ARTICLE_ATTACK_RATES = (
    '"waste container"/"trash" 95.4% (7.59% of pixels changed), "iPod" 94.7% (6.80%), "pizza" 92.3%, '
    '"rifle" 91.0%, "radio" 77.0%, "library" 75.9%, "great white shark"/"shark" 62.2%, '
    '"Siamese cat"/"meow" 46.5%, "piggy bank"/"$$$" 36.4%'
)
ATTACK_START = "<!-- typographic-service: written by tools/toyworld/card.py from typographic.json -->"
ATTACK_END = "<!-- /typographic-service -->"


def attack_section(model_dir: str) -> list[str]:
    """The card's section on attacks through the service, from MODEL_DIR/typographic.json (written by
    `npx tsx scripts/toyworld-typographic.ts --out MODEL_DIR/typographic.json`); empty without it.
    """
    path = os.path.join(model_dir, "typographic.json")
    if not os.path.exists(path):
        return []
    doc = json.load(open(path))
    paste = doc["paste"]
    tasks = {t["task"]: t for t in doc["tasks"]}
    names = {
        "colour": "colour word on a coloured shape (8 colours)",
        "object": "shape word on a shape (8 shapes)",
    }
    first = doc["tasks"][0]

    def ci(m: dict) -> str:
        return f"{pct(m['rate'])} ({m['successes']}/{m['eligible']}) [{pct(m['low'])}, {pct(m['high'])}]"

    lines = [
        ATTACK_START,
        "",
        "Typographic attacks through the service (`POST /v1/typographic/attack`), measured by",
        f"`npx tsx scripts/toyworld-typographic.ts --out models/toyworld/typographic.json` ({doc['measured']}): the",
        f"article's automated protocol on the {first['images']} held-out shapes of seed {doc['seed']} (8 shapes × "
        f"{doc['per']}, each in a random colour).",
        "A wrong class's word is written on each image (every wrong class equally often) by the service's paste: "
        f"DejaVu Sans at {paste['size']}·S, centred, {paste['colour']} on a {paste['box']} box "
        f"(padding {paste['padding']} of the font size).",
        "The images are classified zero-shot among the task's classes (the prompt ensemble of `heldout.py`'s templates).",
        "An image not already predicted as the written class is attacked successfully when it then is (95% Wilson",
        "intervals).",
        f"The defence zeroes the service's lexical set ({first['ablated']} neurons: the word index's detector on",
        "`words.txt`; the catalogue has no lexical family) at the neuron layer.",
        "",
        "| task | clean accuracy | attack success [95% CI] | pixels changed | attack, lexical set ablated | "
        "clean accuracy, ablated | lexical share of the winning logit's \\|change\\| |",
        "|---|---|---|---|---|---|---|",
    ]
    for key in ("colour", "object"):
        if key not in tasks:
            continue
        t = tasks[key]
        a, d = t["attack"], t["defended"]
        lines.append(
            f"| {names[key]} | {pct(a['cleanAccuracy'])} | {ci(a)} | {pct(t['meanChangedShare'])} | {ci(d)} | "
            f"{pct(d['cleanAccuracy'])} | {pct(t['meanLexicalShareOfAbsolute'])} |"
        )
    stroop = doc.get("stroop")
    if stroop:
        lines += [
            "",
            "Stroop (`POST /v1/typographic/stroop`): each of the 8 colour words drawn by the rasteriser in each world",
            f"colour's ink: in {stroop['readsWord']} of {stroop['incongruent']} incongruent pairs the model reads the "
            f"word, in {stroop['seesInk']} it sees the ink; {stroop['congruentCorrect']} of {stroop['congruent']} "
            "congruent pairs are right.",
        ]
    lines += [
        "",
        "The article (Goh et al. 2021) published, for text pasted on 1,000 ImageNet validation images and a linear",
        f"probe on RN50-x4 (74.2% clean accuracy): {ARTICLE_ATTACK_RATES}. The models differ (a 64 × 64 toy",
        "ResNet trained on a synthetic world against OpenAI's RN50-x4), and so do the images, the classifier",
        "(zero-shot here, a linear probe there) and the text's placement: the rates say that the toy model is",
        "susceptible in the same way and that its lexical neurons carry the attack, not how the two compare.",
        "`test/typographic.test.ts` asserts the defence's effect on 96 of these shapes (`--per 12`).",
        "",
        ATTACK_END,
    ]
    return lines


LABELS_START = "<!-- neuron-labels -->"
LABELS_END = "<!-- /neuron-labels -->"


def labels_section(model_dir: str) -> list[str]:
    """The card's section on the automatic neuron labels, from MODEL_DIR/neuron-labels.json (written by
    `npx tsx scripts/toyworld-neuron-labels.ts --probe --out MODEL_DIR/neuron-labels.json`); empty without it.
    """
    path = os.path.join(model_dir, "neuron-labels.json")
    if not os.path.exists(path):
        return []
    doc = json.load(open(path))
    lines = [
        LABELS_START,
        "",
        "Automatic neuron labels (issue 19: `POST /v1/neurons/labels` labels every neuron and serves the result",
        "as the catalogue's automatic layer, after the published `neurons.json` and user labels), measured by",
        f"`{doc['script']}`: labels from {doc['labels']}; truth from renders of other seeds, which the",
        "labelling never saw: the catalogue `neurons.json` (seed 7) and the same recipe on seed 8. *Exact*: the",
        "label is the truth's word; *concept*: it names the truth's concept (a synonym or a phrase with a word",
        "of it, world.py's `WORD_CONCEPT`). Chance for a top-1 label is about 1/247.",
        "",
        "| truth | family | neurons | top-1 exact | top-3 exact | top-1 concept | top-3 concept |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in doc["rows"]:
        lines.append(
            f"| {r['truth']} | {r['family']} | {r['neurons']} | {r['top1']:.1f}% | {r['top3']:.1f}% | "
            f"{r['conceptTop1']:.1f}% | {r['conceptTop3']:.1f}% |"
        )
    lines += [
        "",
        "The multimodality measure (the seeing side's top category in the top 5 of both the speaking and the",
        f"reading side, docs/neuron-evidence.md) calls **{doc['multimodalShare']:.1f}%** of the "
        f"{doc['measuredNeurons']} neurons multimodal on the probe collection.",
    ]
    if doc.get("checked"):
        lines += ["", f"Checked: {doc['checked']}."]
    lines += [
        "",
        LABELS_END,
    ]
    return lines


LEVERS_START = "<!-- levers: written by tools/toyworld/card.py from docs/toyworld-v2/levers.json -->"
LEVERS_END = "<!-- /levers -->"
LEVERS_JSON = os.path.join("docs", "toyworld-v2", "levers.json")


def levers_section(levers_path: str = LEVERS_JSON) -> list[str]:
    """The card's section on issue 22's levers: one row per training run and evaluation seed, from
    levers.json and the evaluate.py metrics files beside it, with the targets each row meets
    (tools/toyworld/targets.py); empty without the file."""
    if not os.path.exists(levers_path):
        return []
    doc = json.load(open(levers_path, encoding="utf-8"))
    here = os.path.dirname(levers_path)
    lines = [
        LEVERS_START,
        "",
        "## What each lever did (issue 22)",
        "",
        "Issue 22 asks for single neurons that are multimodal. Its targets, on renders from a seed used for",
        "nothing else: the single top neuron of W·t_c passes (picture and word z ≥ 2) for ≥ 4/8 colours and",
        "≥ 2/5 expressions; a neuron labelled with the concept is in the top 3 of W·t_c for ≥ 6/8 and ≥ 4/5;",
        "zero-shot ≥ 95% on every family, ≥ 90% on the 170 words, directions 8/8 and 5/5, attack 10–60%.",
        "Every row below is `tools/toyworld/evaluate.py --gauged` with the labels and scales calibrated on",
        "seed 7, measured on seed 8 (which also compared the levers) and on seed 9 (used for nothing else);",
        "`python3 -m tools.toyworld.targets` counts the targets met. Runs, configs, logs and metrics:",
        f"`{here}/` (`{os.path.basename(levers_path)}` lists them).",
        "",
        "| run | seed | top neuron colour / expr. | labels top 3 colour / expr. | zero-shot col. / shape / expr. / reading | 170 words | directions | attack | targets met |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for run in doc["runs"]:
        for seed, name in sorted(run["metrics"].items()):
            m = json.load(open(os.path.join(here, name), encoding="utf-8"))
            d, la, zs = m["directions"], m["labels_vs_attributions"], m["zero_shot"]
            met = check(m)
            zero = " / ".join(
                f"{100 * zs[t]['accuracy']:.0f}"
                if zs[t]["accuracy"] in (0, 1)
                else f"{100 * zs[t]['accuracy']:.1f}"
                for t in ("colours", "shapes", "expressions", "reading")
            )
            lines.append(
                f"| {run['run']} | {seed} "
                f"| {d['colour']['top_neuron_pass']}/{d['colour']['n']} / {d['expression']['top_neuron_pass']}/{d['expression']['n']} "
                f"| {la['colour']['scaled_pass_catalogue']}/{la['colour']['n']} / {la['expression']['scaled_pass_catalogue']}/{la['expression']['n']} "
                f"| {zero} | {pct(zs['reading_all_training_fonts']['accuracy'])} "
                f"| {d['colour']['direction_pass']}/{d['colour']['n']}, {d['expression']['direction_pass']}/{d['expression']['n']} "
                f"| {pct(m['attack']['predicted_written_colour'])} | {sum(ok for _, _, ok in met)}/{len(met)} |"
            )
    if doc.get("findings"):
        lines += ["", *doc["findings"]]
    lines += ["", LEVERS_END]
    return lines


def update_section(model_dir: str, lines: list[str], start: str, end: str, before: str) -> None:
    """Rewrite one generated section of an existing README.md: the text from `start` to `end`, or,
    the first time, insert it before the line `before`. README.md's sha256 in clip.json, where it is
    listed, follows, so the directory still validates (the model's hash changes with its card)."""
    readme = os.path.join(model_dir, "README.md")
    text = open(readme, encoding="utf-8").read()
    section = "\n".join(lines)
    if start in text:
        head, rest = text.split(start, 1)
        tail = rest.split(end, 1)[1]
        text = head + section + tail
    else:
        at = text.index("\n" + before)
        text = text[:at] + "\n" + section + "\n" + text[at:]
    with open(readme, "w", encoding="utf-8") as f:
        f.write(text)
    refresh_hash(model_dir, "README.md")
    print("updated", start, "in", readme)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model_dir")
    ap.add_argument(
        "--attack-section",
        action="store_true",
        help="only rewrite the README's section on attacks through the service (from typographic.json)",
    )
    ap.add_argument(
        "--labels-section",
        action="store_true",
        help="only rewrite the README's section on automatic neuron labels (from neuron-labels.json)",
    )
    ap.add_argument(
        "--levers-section",
        action="store_true",
        help="only rewrite the README's section on issue 22's levers (from docs/toyworld-v2/levers.json)",
    )
    ap.add_argument("--log")
    ap.add_argument("--config")
    ap.add_argument("--metrics")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--reproduce-seconds", type=float, default=None)
    ap.add_argument(
        "--note",
        default="",
        help="a sentence on the run's conditions, after its figures",
    )
    args = ap.parse_args()
    if args.attack_section or args.labels_section or args.levers_section:
        d = args.model_dir
        if args.levers_section:
            update_section(
                d, levers_section(), LEVERS_START, LEVERS_END, "## Limits and what holds the figures down"
            )
        if args.attack_section:
            update_section(d, attack_section(d), ATTACK_START, ATTACK_END, "Multimodal directions:")
        if args.labels_section:
            update_section(d, labels_section(d), LABELS_START, LABELS_END, "## Probe collection")
        return
    if not (args.log and args.config and args.metrics):
        ap.error(
            "--log, --config and --metrics are required (except with --attack-section, --labels-section, --levers-section)"
        )
    log = json.load(open(args.log))
    cfg = json.load(open(args.config))
    m = json.load(open(args.metrics))
    manifest = json.load(open(os.path.join(args.model_dir, "clip.json")))
    draw_curve(log, os.path.join(args.model_dir, "loss.png"))
    c, a = cfg["config"], cfg["args"]
    zs = m["zero_shot"]
    dirs = m["directions"]
    merges = c["vocab_size"] - 514
    follow = a.get("follow_word", 0.3)

    seeds = m.get("seeds") or {"calibration": 7, "evaluation": 7}
    lines = [
        "# toyworld: a small CLIP ResNet trained on a synthetic world",
        "",
        "The service's default model (`MODEL_DIR=models/toyworld`). It is CLIP's ResNet architecture",
        "(`tools/export/clip_model.py`: modified ResNet with attention pool, causal text Transformer) trained",
        "from scratch, contrastively, on captioned images generated by `tools/toyworld/world.py`, so that the",
        '"multimodal neuron" endpoints have a model that is small enough to ship and whose concepts are known.',
        "It is a toy: it knows only the concepts of its world.",
        "",
        "Reproduce (about 40 min on 2 CPU cores): `bash tools/toyworld/reproduce.sh` (seed "
        f"{args.seed}; BPE → train → export → label neurons → evaluate → this card).",
        "",
        "## The world",
        "",
        f"Images are {world.IMAGE_SIZE}×{world.IMAGE_SIZE} px, drawn with PIL at 2× and downsampled, on white,",
        "grey or pale backgrounds, generated on the fly from the seed. Sample kinds (share of the stream):",
        "",
        "| kind | share | caption examples |",
        "|---|---|---|",
        "| colour patch (rectangle, blob, textured swatch) | 12% | `red`, `the colour red`, `a patch of red`, `as red as cherry` |",
        "| a coloured shape | 16% | `a blue star`, `a star`, `a drawing of a star`, `blue` |",
        "| a rendered word (10 DejaVu fonts: Sans, Bold, Oblique, Condensed, Serif, Serif Bold/Italic, Mono…; size, ±15° rotation, dark or coloured ink) | 20% | `lemon`, `the word lemon`, `a sign that says lemon`, `the word red written in red` |",
        "| a word in the service rasteriser's exact layout (`/v1/raster`) | 7% | as above |",
        "| a coloured shape with a word written on it (matching colour word 35%, other colour word 40%, any word 25%) | 13% | "
        f"`a red circle with the word blue written on it` (40%); {round(100 * follow)}% follow the written word only "
        f"(`blue`, `the word blue`) as web captions do; {round(100 * (0.6 - follow))}% name only the picture |",
        "| two objects | 7% | `a red star and a blue heart` |",
        "| a face (size, position, line width, skin tone vary) | 18% | `a happy face`, `i am feeling joyful`, `Me feeling sad on my face`, `a photo of me with a angry expression on my face` |",
        "| a face with a written caption | 7% | `a sleepy face with the caption tired` |",
        "",
        f"Concepts: {len(world.COLOURS)} colours ({', '.join(world.COLOURS)}), {len(world.SHAPES)} shapes "
        f"({', '.join(world.SHAPES)}), {len(world.EXPRESSIONS)} expressions ({', '.join(world.EXPRESSIONS)}; "
        "feelings-wheel words such as joyful, lonely, shocked, furious, tired are mapped onto them in captions),",
        f"and {len(world.ALL_WORDS)} readable words (concept names, synonyms such as lemon/banana for yellow or",
        "joy/smile for happy, feelings-wheel words, 40 extra nouns and the digit names) — far more concepts than",
        "the model has room for as single neurons, a deliberate capacity pressure.",
        "`words.txt` lists the words and phrases (concepts, synonyms, `red circle`…, `happy face`…) that the",
        "service's word-embedding index uses.",
        "",
        "## The model",
        "",
        "| | |",
        "|---|---|",
        f"| vision | modified ResNet, layers {c['vision_layers']}, width {c['vision_width']}, {c['image_resolution']} px → layer4 {manifest['neuron_count']} neurons on a {manifest['neuron_grid'][0]}×{manifest['neuron_grid'][1]} grid, attention pool ({c['vision_width'] * 32 // 64} heads) |",
        f"| text | causal Transformer, width {c['transformer_width']}, {c['transformer_layers']} layers, {c['transformer_heads']} heads, context {c['context_length']} |",
        f"| embedding | {c['embed_dim']} dimensions; logit scale {manifest['logit_scale']:.1f} |",
        f"| tokenizer | own byte-level BPE in CLIP's format (`bpe_toyworld.txt`, {merges} merges learned greedily from the world's captions and words; vocab {c['vocab_size']} = 514 + merges) |",
        f"| parameters | {log.get('params', 0):,} (float32) |",
        "",
        "## Training",
        "",
        "Symmetric InfoNCE with a learned logit scale (clamped to ≤ 100); samples sharing the exact same",
        "caption count as positives of each other. AdamW (β = 0.9/0.98), lr "
        f"{a['lr']} with {a['warmup']} warm-up steps then cosine decay over the step budget or the wall-time budget",
        f"({a['minutes']} min), whichever ends first; weight decay {a['wd']}, {a['pool_wd']} on the attention pool;",
        f"batch {a['batch']}, seed {a['seed']}, {a['threads']} torch thread(s) (one thread is far faster than two on a",
        "shared, oversubscribed machine). Shape-with-word captions that name only the written word: "
        f"{round(100 * a.get('follow_word', 0.3))}%.",
        *training_levers(a),
        "Export: `tools/toyworld/export.py` runs the project's exporter (`tools/export/export_clip.py`) unchanged",
        "except for its tracing example, whose fixed token id 1929 lies outside this small vocabulary.",
        "",
        f"Run: **{log['total_steps']} steps in {log['total_seconds'] / 60:.1f} min** "
        f"({log['total_steps'] * a['batch']:,} samples), final loss {log['loss'][-1]:.3f}, "
        f"in-batch caption accuracy {pct(log['acc'][-1])}." + (f" {args.note}" if args.note else ""),
        "",
        "![training loss](loss.png)",
        "",
        "## Measured results",
        "",
        f"On held-out renders (`tools/toyworld/heldout.py --seed {seeds['evaluation']}`, a seed space disjoint from",
        "training), measured by `tools/toyworld/evaluate.py` (PyTorch) and checked on the exported ONNX graphs by",
        "`test/toyworld-model.test.ts` (onnxruntime-node). The neuron labels and scales were calibrated on",
        f"another seed's renders (`--seed {seeds['calibration']}`), which no figure here is measured on.",
        "",
        "Zero-shot classification (prompt ensemble per class):",
        "",
        "| task | images | accuracy | prompts |",
        "|---|---|---|---|",
    ]
    from tools.toyworld import heldout

    for task, r in zs.items():
        tmpl = ", ".join(f"`{t}`" for t in heldout.TASKS[task]["templates"])
        lines.append(
            f"| {task} | {r['n']} | {pct(r['accuracy'])} | {tmpl} over {len(heldout.TASKS[task]['classes'])} classes |"
        )
    at = m["attack"]
    lines += [
        "",
        f"Typographic attack ({at['n']} shapes of colour A with a different colour word B written on them, classified",
        f"among the 8 colours): **{pct(at['predicted_written_colour'])} read as the written colour B**, "
        f"{pct(at['predicted_true_colour'])} as the true colour A.",
        "",
    ]
    attack = attack_section(args.model_dir)
    lines += attack + ([""] if attack else [])
    lines += [
        "Multimodal directions: x = spatial mean of the layer4 neurons, t_c = the text embedding of the bare concept",
        "word, score x·(W·t_c). For each concept, z = (mean score on its own images − mean on the other concepts'",
        "images of the same kind) / std of the latter, for its pictures (patches / faces, against the other",
        "concepts' pictures) and its rendered word (training fonts, dark ink, against the other concepts' words).",
        "A concept passes when both z ≥ 2. In brackets the stricter variant whose reference is the other concepts'",
        "pictures and words together.",
        "",
        "The `x/|x|` columns repeat the test with x scaled to unit length: the spatial means vary a lot in",
        "overall magnitude (a patch filling the frame drives far more activation than a small blob), and that",
        "variance, not confusion between concepts, is what holds the raw picture z-scores down.",
        "",
        "| family | direction W·t_c passes | single top neuron passes | direction, x/\\|x\\| | top neuron, x/\\|x\\| |",
        "|---|---|---|---|---|",
    ]
    for fam, r in dirs.items():
        lines.append(
            f"| {fam} | {r['direction_pass']} / {r['n']} ({r['direction_pass_mixed']}) | "
            f"{r['top_neuron_pass']} / {r['n']} ({r['top_neuron_pass_mixed']}) | "
            f"{r['direction_normed_pass']} / {r['n']} | {r['top_neuron_normed_pass']} / {r['n']} |"
        )
    lines += [
        "",
        "z-scores per concept (picture / word):",
        "",
        "| concept | direction | direction, x/\\|x\\| | top neuron | top neuron z | top neuron z, x/\\|x\\| |",
        "|---|---|---|---|---|---|",
    ]
    for fam, r in dirs.items():
        for concept, cr in r["concepts"].items():
            d, dn, t, tn = (
                cr["direction"],
                cr["direction_normed"],
                cr["top_neuron"],
                cr["top_neuron_normed"],
            )
            lines.append(
                f"| {concept} | {d['z_picture']:.1f} / {d['z_word']:.1f} | {dn['z_picture']:.1f} / {dn['z_word']:.1f} | "
                f"{cr['top_neuron_id']} | {t['z_picture']:.1f} / {t['z_word']:.1f} | {tn['z_picture']:.1f} / {tn['z_word']:.1f} |"
            )
    fams = m["neuron_label_families"]
    lines += [
        "",
        f"Neuron catalogue (`neurons.json`): every neuron is labelled with the concept whose seed-{seeds['calibration']} images",
        "activate it most (mean over its images of the spatial-mean activation); score = (top − mean of the other",
        "concepts) / (top + mean of the others). Labels by family: "
        + ", ".join(f"{k} {v}" for k, v in sorted(fams.items()))
        + ".",
        "",
    ]
    if m.get("neuron_scales"):
        lines += [
            "Neuron scales (`neuron_scales.json`, applied by `tools/toyworld/gauge.py`; every figure above is",
            "measured with them): nothing in this ResNet fixes a neuron's scale, so neuron i is divided by",
            f"s_i = its mean activation on the seed-{seeds['calibration']} images of its preferred concept in the trunk and multiplied",
            "back at the head's input. No image embedding changes; W's row i is multiplied by s_i, so that W·t",
            "ranks neurons by the logit contribution of each firing as it does for its own concept, and barely",
            "active neurons with long rows no longer top every ranking. Labels and x_i·(W·t)_i are unchanged.",
            "",
        ]
    lines += [
        "Service rasteriser: the `reading_all_service_raster` row renders every word with "
        f"`{m.get('service_raster')}` (the `/v1/raster` layout); compare with `reading_all_training_fonts`.",
        "`test/toyworld-model.test.ts` also draws every word with the service's own TypeScript rasteriser",
        "(`src/clip/raster.ts`) and asserts that those read at least as well as the training renders.",
        "",
    ]
    labels = labels_section(args.model_dir)
    lines += labels + ([""] if labels else [])
    lines += [
        "## Probe collection",
        "",
        "`probe.tar.gz` holds 2,290 held-out renders at 64 × 64 (lossless WebP, about 1.1 MB), written by",
        "`python3 -m tools.toyworld.probe models/toyworld --record` from a seed of their own (heldout.py's seed",
        "space with seed 100, `Random(10_000_119)`; training draws from `Random(1000 + worker)`, the labels",
        "were calibrated on seed 7 and the figures above measured on seed 8): 20 colour patches per colour, 20",
        "shapes in random colours per shape, 20 faces per expression, and for each of the 170 vocabulary words",
        "10 dark-ink renders in the training fonts and one in the service's raster layout. Each render's",
        "category is its concept (a colour, shape, expression or word), so a concept's pictures and its written",
        "name share a category; the caption names the family and what is drawn (`shape: a green star`). The",
        "service installs it at start as the image collection `probe` (`src/collections/probe.ts`;",
        "`COLLECTION_PROBE=false` turns that off), so the collection routes answer on a fresh `DATA_DIR`.",
        "",
    ]
    levers = levers_section()
    lines += levers + ([""] if levers else [])
    lines += [
        "## Limits and what holds the figures down",
        "",
        "- It knows only this world: 8 colours, 8 shapes, 5 drawn expressions and the listed words; other",
        "  emotion words are understood only through their BPE pieces.",
        "- Multimodal directions: before the levers above (uniform attention, the steadier activation norm),",
        "  a run with learned attention measured 2/8 colour and 3/5 expression directions: the head's attention",
        "  made the bilinear view approximate, and the pictures' activation norm followed their area.",
        "- Single top neurons of W·t_c are mostly pure picture detectors, pure word (lexical) detectors, or are",
        "  shared by several concepts: with 512 channels and about 200 concepts the model spreads concepts over",
        "  directions rather than single units; the per-concept table above shows which. A run with the same",
        "  recipe plus a penalty on the spread of W's row lengths (`train.py --row-norm 1.0`) passed 3/5",
        "  expressions but 0/8 colours, with 16.1% attack; a run with a ten times stronger sparsity penalty",
        "  (`--sparsity 1.0`, stopped at half its steps) made the best-labelled colour neurons prefer their",
        "  colour word among the vocabulary's words (7/8 in their top 3) but read worse (72% of the training",
        "  fonts) and let 449 of 512 neurons be labelled with a colour; neither was adopted.",
        f"- Typographic attack: {pct(at['predicted_written_colour'])} of attack images read as the written colour.",
        "  The colour of a large shape still dominates the image embedding in most attack images.",
        "",
    ]
    with open(os.path.join(args.model_dir, "README.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
    print("wrote", os.path.join(args.model_dir, "README.md"))


if __name__ == "__main__":
    main()
