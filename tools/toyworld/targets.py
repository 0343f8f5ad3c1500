"""Issue 22's targets, checked on an evaluate.py metrics file (measured on a seed that neither the
training, the neuron labels nor the scales used).

Usage: python3 -m tools.toyworld.targets METRICS.json [--model-dir DIR] [--json OUT.json]

  multimodal single neurons: the single top neuron of W.t_c scores the concept's picture and its
      rendered word both >= 2 SD above the other concepts: >= 4/8 colours, >= 2/5 expressions;
  labels agree with attributions: a neuron labelled with the concept (the catalogue's labels, from the
      calibration seed) among the top 3 of W.t_c, W with the calibration's scales only: >= 6/8
      colours, >= 4/5 expressions;
  no regression: zero-shot >= 95% on every family (colours, shapes, expressions, reading the concept
      names), >= 90% reading the 170 words in all training fonts, multimodal directions 8/8 and 5/5,
      a typographic attack rate in [10%, 60%], and (with --model-dir) the directory <= 10 MB.
"""

from __future__ import annotations

import argparse
import json
import os


def directory_bytes(path: str) -> int:
    return sum(os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(path) for f in files)


def check(metrics: dict, model_dir: str | None = None) -> list[tuple[str, str, bool]]:
    rows: list[tuple[str, str, bool]] = []
    d = metrics["directions"]
    la = metrics["labels_vs_attributions"]
    for fam, need in (("colour", 4), ("expression", 2)):
        got = d[fam]["top_neuron_pass"]
        rows.append((f"single top neuron multimodal, {fam}", f"{got}/{d[fam]['n']} (>= {need})", got >= need))
    for fam, need in (("colour", 6), ("expression", 4)):
        got = la[fam]["scaled_pass_catalogue"]
        rows.append(
            (
                f"catalogue-labelled neuron in top 3 of W.t_c, {fam}",
                f"{got}/{la[fam]['n']} (>= {need}; evaluation-seed labels {la[fam]['scaled_pass_evaluation']})",
                got >= need,
            )
        )
    zs = metrics["zero_shot"]
    for task in ("colours", "shapes", "expressions", "reading"):
        acc = zs[task]["accuracy"]
        rows.append((f"zero-shot {task}", f"{100 * acc:.1f}% (>= 95%)", acc >= 0.95))
    acc = zs["reading_all_training_fonts"]["accuracy"]
    rows.append(("reading 170 words, training fonts", f"{100 * acc:.1f}% (>= 90%)", acc >= 0.9))
    for fam in ("colour", "expression"):
        got, n = d[fam]["direction_pass"], d[fam]["n"]
        rows.append((f"multimodal directions, {fam}", f"{got}/{n}", got == n))
    rate = metrics["attack"]["predicted_written_colour"]
    rows.append(("typographic attack rate", f"{100 * rate:.1f}% (10-60%)", 0.1 <= rate <= 0.6))
    if model_dir:
        size = directory_bytes(model_dir)
        rows.append(("directory size", f"{size / 1e6:.1f} MB (<= 10 MB)", size <= 10e6))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("metrics")
    ap.add_argument("--model-dir", default=None)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    metrics = json.load(open(args.metrics))
    rows = check(metrics, args.model_dir)
    seeds = metrics.get("seeds", {})
    print(
        f"{args.metrics} (calibration seed {seeds.get('calibration')}, evaluation seed {seeds.get('evaluation')})"
    )
    for name, value, ok in rows:
        print(f"  {'PASS' if ok else 'miss'}  {name}: {value}")
    print(f"  {sum(ok for _, _, ok in rows)}/{len(rows)} targets met")
    if args.json:
        with open(args.json, "w") as f:
            json.dump([{"target": n, "value": v, "met": ok} for n, v, ok in rows], f, indent=1)


if __name__ == "__main__":
    main()
