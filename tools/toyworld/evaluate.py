"""Evaluate a trained toy-world CLIP on held-out renders and label its neurons (torch, for the model card).

Usage: python3 -m tools.toyworld.evaluate --checkpoint run/checkpoint.pt --config run/config.json --heldout DIR
                   --metrics OUT.json [--neurons OUT_neurons.json] [--scales OUT_scales.json] [--gauged]

DIR is written by heldout.py (with --merges, so every prompt carries token ids).

Figures
  zero-shot accuracy per task: prompt ensemble per class (mean of the normalised text embeddings of the
      task's templates), argmax of the cosine with the image embedding;
  multimodal directions: x = spatial mean of the layer4 neurons, t_c = text embedding of the bare concept
      word, v_c = W t_c; for each concept the score x.v_c on its own pictures (patch / face) and on its
      own rendered word is compared with the scores on the other concepts' images of the same kind
      (pictures, resp. rendered words) in the family: z = (mean(own) - mean(others)) / std(others); a
      concept passes when both z >= 2. The stricter `*_mixed` figures take the other concepts' pictures
      and words together as the reference.
      The same with the single top neuron of v_c (stretch target); `*_normed`: the same with x scaled
      to unit length (spatial means vary a lot in overall magnitude, e.g. with the area a patch covers);
  typographic attack: a shape of colour A with colour word B written on it, classified among the
      colours: the share predicted B (attack works) and A;
  neuron labels (calibration images): for each neuron, the concept whose images give the highest mean
      activation (spatial mean); score = (top - mean of the others) / (top + mean of the others), in [0, 1];
      neurons that no held-out image activates are left out of the catalogue;
  neuron scales (--scales, calibration images): each neuron's mean activation on its preferred
      concept, for gauge.py;
      with --gauged every figure above is measured with the neurons divided by their scale and W's
      rows multiplied by it, as gauge.py exports the model (labels and x.(W t_c) do not change).
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np
import torch
from PIL import Image

from tools.export.clip_model import CLIP, ClipConfig

MEAN = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32)
STD = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32)


def load_model(checkpoint: str, config_path: str) -> CLIP:
    cfg = json.load(open(config_path))["config"]
    cfg["vision_layers"] = tuple(cfg["vision_layers"])
    model = CLIP(ClipConfig(**cfg))
    model.load_state_dict(torch.load(checkpoint, map_location="cpu"))
    return model.eval()


@torch.no_grad()
def encode_images(model: CLIP, paths: list[str], batch: int = 256):
    feats, means = [], []
    for i in range(0, len(paths), batch):
        arr = np.stack(
            [np.asarray(Image.open(p).convert("RGB"), dtype=np.float32) / 255.0 for p in paths[i : i + batch]]
        )
        x = torch.from_numpy(((arr - MEAN) / STD).transpose(0, 3, 1, 2).copy())
        neurons = model.visual.trunk(x)
        feats.append(model.visual.attnpool(neurons))
        means.append(neurons.mean(dim=(2, 3)))
    return torch.cat(feats), torch.cat(means)


@torch.no_grad()
def encode_texts(model: CLIP, ids: list[list[int]]) -> torch.Tensor:
    length = max(len(r) for r in ids)
    t = torch.zeros(len(ids), length, dtype=torch.long)
    for i, r in enumerate(ids):
        t[i, : len(r)] = torch.tensor(r)
    return model.encode_text(t)


def concept_means(items: list[dict], xm: np.ndarray) -> tuple[list[tuple[str, str]], np.ndarray]:
    """Mean spatial-mean activation of every neuron per (family, concept) over the concept's images."""
    concept_sets = []
    for it_i, it in enumerate(items):
        s = it["set"]
        if s == "colour_patch":
            concept_sets.append(("colour", it["label"], it_i))
        elif s == "shape":
            concept_sets.append(("shape", it["label"], it_i))
        elif s == "face":
            concept_sets.append(("expression", it["label"], it_i))
        elif s in ("word", "word_all"):
            concept_sets.append(("word", it["label"], it_i))
    keys = sorted({(f, c) for f, c, _ in concept_sets})
    act = np.zeros((len(keys), xm.shape[1]), dtype=np.float64)
    key_index = {k: j for j, k in enumerate(keys)}
    counts = np.zeros(len(keys))
    for f, c, i in concept_sets:
        act[key_index[(f, c)]] += xm[i]
        counts[key_index[(f, c)]] += 1
    return keys, act / counts[:, None]


@torch.no_grad()
def evaluate(
    model: CLIP, heldout_dir: str, gauged: bool = False, calibration_dir: str | None = None
) -> tuple[dict, dict, list[float]]:
    doc = json.load(open(os.path.join(heldout_dir, "heldout.json")))
    items = doc["items"]
    prompts = doc["prompts"]
    names = sorted(prompts)
    text = encode_texts(model, [prompts[n] for n in names])
    text_of = {n: text[i] for i, n in enumerate(names)}
    img, xmean = encode_images(model, [os.path.join(heldout_dir, it["file"]) for it in items])
    img_n = img / img.norm(dim=1, keepdim=True)
    by_set: dict[str, list[int]] = {}
    for i, it in enumerate(items):
        by_set.setdefault(it["set"], []).append(i)

    metrics: dict = {"zero_shot": {}, "directions": {}, "attack": {}}
    predictions = {}
    for task, spec in doc["tasks"].items():
        classes = spec["classes"]
        emb = []
        for c in classes:
            ts = torch.stack([text_of[t.format(c)] for t in spec["templates"]])
            ts = ts / ts.norm(dim=1, keepdim=True)
            m = ts.mean(0)
            emb.append(m / m.norm())
        emb = torch.stack(emb)
        idx = [i for s in spec["sets"] for i in by_set[s]]
        pred = (img_n[idx] @ emb.t()).argmax(1).tolist()
        predictions[task] = (idx, [classes[p] for p in pred])
        if task == "attack":
            continue
        correct = [classes[p] == items[i]["label"] for i, p in zip(idx, pred)]
        per_class = {}
        for c in classes:
            sel = [ok for i, ok in zip(idx, correct) if items[i]["label"] == c]
            per_class[c] = sum(sel) / max(1, len(sel))
        metrics["zero_shot"][task] = {
            "accuracy": sum(correct) / len(correct),
            "n": len(correct),
            "per_class": per_class,
        }

    idx, pred = predictions["attack"]
    written = [items[i]["word"] for i in idx]
    true = [items[i]["label"] for i in idx]
    metrics["attack"] = {
        "n": len(idx),
        "predicted_written_colour": sum(p == w for p, w in zip(pred, written)) / len(idx),
        "predicted_true_colour": sum(p == t for p, t in zip(pred, true)) / len(idx),
    }

    # Calibration: mean activation of every neuron per concept over the calibration images; a
    # neuron's scale is its mean on its preferred concept (gauge.py divides the neuron by it), its
    # label that concept. The figures below are measured on the held-out images, another seed.
    if calibration_dir and os.path.abspath(calibration_dir) != os.path.abspath(heldout_dir):
        cal_doc = json.load(open(os.path.join(calibration_dir, "heldout.json")))
        _, cal_means = encode_images(
            model, [os.path.join(calibration_dir, it["file"]) for it in cal_doc["items"]]
        )
        keys, act = concept_means(cal_doc["items"], cal_means.numpy())
        calibration_seed = cal_doc.get("seed")
    else:
        keys, act = concept_means(items, xmean.numpy())
        calibration_seed = doc.get("seed")
    preferred = act.max(axis=0)
    scales = np.where(preferred > 1e-6, preferred, 1.0)  # a dead neuron keeps its scale

    W = model.bilinear()  # [C, D]
    if gauged:
        # Measure the model as gauge.py exports it: neuron i divided by s_i, row i of W times s_i.
        xmean = xmean / torch.from_numpy(scales).to(xmean.dtype)
        W = W * torch.from_numpy(scales).to(W.dtype)[:, None]
    for fam, spec in doc["directions"].items():
        classes = spec["classes"]
        out = {"concepts": {}}
        pic_idx = by_set[spec["picture_set"]]
        word_idx = [i for i in by_set["word"] if items[i]["label"] in classes]
        for c in classes:
            v = W @ text_of[c]
            top = int(v.argmax())
            res = {"top_neuron_id": top}
            xnorm = xmean / xmean.norm(dim=1, keepdim=True)
            scores = {
                "direction": xmean @ v,  # the figure: x = spatial mean of the neurons
                "direction_normed": xnorm @ v,  # the same with x scaled to unit length
                "top_neuron": xmean[:, top],
                "top_neuron_normed": xnorm[:, top],
            }
            for kind, s in scores.items():
                s = s.numpy()

                def z(own_set, neg_set):
                    neg = [i for i in neg_set if items[i]["label"] != c]
                    mu, sd = float(s[neg].mean()), float(s[neg].std() + 1e-9)
                    return (float(s[[i for i in own_set if items[i]["label"] == c]].mean()) - mu) / sd

                # primary: against the other concepts' images of the same kind (pictures / words)
                zp, zw = z(pic_idx, pic_idx), z(word_idx, word_idx)
                # stricter variant: against the other concepts' pictures and words together
                zp_mixed, zw_mixed = z(pic_idx, pic_idx + word_idx), z(word_idx, pic_idx + word_idx)
                res[kind] = {
                    "z_picture": zp,
                    "z_word": zw,
                    "pass": bool(zp >= 2 and zw >= 2),
                    "z_picture_mixed": zp_mixed,
                    "z_word_mixed": zw_mixed,
                    "pass_mixed": bool(zp_mixed >= 2 and zw_mixed >= 2),
                }
            out["concepts"][c] = res
        for kind in ("direction_normed", "top_neuron_normed"):
            out[f"{kind}_pass"] = sum(r[kind]["pass"] for r in out["concepts"].values())
        out["direction_pass"] = sum(r["direction"]["pass"] for r in out["concepts"].values())
        out["top_neuron_pass"] = sum(r["top_neuron"]["pass"] for r in out["concepts"].values())
        out["direction_pass_mixed"] = sum(r["direction"]["pass_mixed"] for r in out["concepts"].values())
        out["top_neuron_pass_mixed"] = sum(r["top_neuron"]["pass_mixed"] for r in out["concepts"].values())
        out["n"] = len(classes)
        metrics["directions"][fam] = out

    # Neuron labels: the concept of each neuron's highest mean activation (act, above).
    neurons = {}
    family_counts: dict[str, int] = {}
    for n in range(act.shape[1]):
        col = act[:, n]
        j = int(col.argmax())
        top = col[j]
        if top <= 1e-6:
            continue  # a dead neuron: no held-out image activates it, so it gets no label
        rest = (col.sum() - top) / (len(col) - 1)
        score = float((top - rest) / (top + rest)) if top + rest > 0 else 0.0
        fam, label = keys[j]
        neurons[str(n)] = {
            "label": label,
            "family": fam,
            "score": round(score, 4),
            "source": "toyworld held-out activations",
        }
        family_counts[fam] = family_counts.get(fam, 0) + 1
    metrics["neuron_label_families"] = family_counts

    # Labels against attributions: does a neuron labelled with the concept (the catalogue's labels,
    # from the calibration images; and labels recomputed on these images) rank among the top 3 of
    # W.t_c? W as measured above (--gauged: the calibration's scales, nothing fitted on these images),
    # and the raw W of training (no scales at all).
    eval_keys, eval_act = concept_means(items, xmean.numpy())
    eval_labels = {n: eval_keys[int(eval_act[:, n].argmax())][1] for n in range(eval_act.shape[1])}
    catalogue = {int(n): v["label"] for n, v in neurons.items()}
    raw_W = model.bilinear()
    metrics["labels_vs_attributions"] = {}
    for fam, spec in doc["directions"].items():
        out = {"concepts": {}, "n": len(spec["classes"])}
        for c in spec["classes"]:
            res = {}
            for variant, w in (("scaled", W), ("raw", raw_W)):
                top3 = [int(i) for i in torch.argsort(w @ text_of[c], descending=True)[:3]]
                res[variant] = {
                    "top3": top3,
                    "catalogue_labels": [catalogue.get(i) for i in top3],
                    "evaluation_labels": [eval_labels.get(i) for i in top3],
                    "pass_catalogue": any(catalogue.get(i) == c for i in top3),
                    "pass_evaluation": any(eval_labels.get(i) == c for i in top3),
                }
            out["concepts"][c] = res
        for variant in ("scaled", "raw"):
            for which in ("catalogue", "evaluation"):
                out[f"{variant}_pass_{which}"] = sum(
                    r[variant][f"pass_{which}"] for r in out["concepts"].values()
                )
        metrics["labels_vs_attributions"][fam] = out
    metrics["logit_scale"] = float(model.logit_scale.exp())
    metrics["service_raster"] = doc.get("service_raster")
    metrics["neuron_scales"] = "preferred-concept mean activation (gauge.py)" if gauged else None
    metrics["seeds"] = {"calibration": calibration_seed, "evaluation": doc.get("seed")}
    return metrics, neurons, scales.tolist()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--config", default=None)
    ap.add_argument(
        "--model-dir",
        default=None,
        help="an exported model directory instead of --checkpoint/--config (from_onnx.py rebuilds it)",
    )
    ap.add_argument("--heldout", required=True, help="held-out renders every figure is measured on")
    ap.add_argument(
        "--calibration",
        default=None,
        help="held-out renders of another seed that give the neuron labels and scales (default: --heldout)",
    )
    ap.add_argument("--metrics", required=True)
    ap.add_argument("--neurons", default=None)
    ap.add_argument("--scales", default=None, help="write each neuron's scale (for gauge.py) here")
    ap.add_argument(
        "--gauged", action="store_true", help="measure with the neurons rescaled as gauge.py does"
    )
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("TOYWORLD_THREADS", "2")))
    if args.model_dir:
        from tools.toyworld.from_onnx import load_exported

        model = load_exported(args.model_dir)
    else:
        model = load_model(args.checkpoint, args.config)
    metrics, neurons, scales = evaluate(model, args.heldout, args.gauged, args.calibration)
    if args.scales:
        with open(args.scales, "w") as f:
            json.dump(scales, f)
    with open(args.metrics, "w") as f:
        json.dump(metrics, f, indent=1)
    if args.neurons:
        with open(args.neurons, "w") as f:
            json.dump(neurons, f, indent=1)
    zs = {k: round(v["accuracy"], 4) for k, v in metrics["zero_shot"].items()}
    print("zero-shot", zs)
    print("attack", metrics["attack"])
    for fam, d in metrics["directions"].items():
        print(
            fam,
            "direction pass",
            d["direction_pass"],
            "/",
            d["n"],
            "top neuron pass",
            d["top_neuron_pass"],
            "(mixed negatives:",
            d["direction_pass_mixed"],
            d["top_neuron_pass_mixed"],
            ") normed x:",
            d["direction_normed_pass"],
            d["top_neuron_normed_pass"],
        )
    print("neuron families", metrics["neuron_label_families"])
    for fam, d in metrics["labels_vs_attributions"].items():
        print(
            fam,
            "labelled neuron in the top 3 of W.t_c: catalogue labels",
            d["scaled_pass_catalogue"],
            "/",
            d["n"],
            "evaluation-seed labels",
            d["scaled_pass_evaluation"],
            "(raw W:",
            d["raw_pass_catalogue"],
            d["raw_pass_evaluation"],
            ")",
        )


if __name__ == "__main__":
    main()
