"""Train a small CLIP ResNet (tools/export/clip_model.py) on the toy world, contrastively.

Loss: symmetric InfoNCE with a learned logit scale (as CLIP). Samples in a batch that share the
exact same caption are all counted as positives of each other (the target row is spread uniformly
over them) - in a small world "red" is drawn many times per batch, and calling identical captions
negatives would only add noise.

Usage: python3 -m tools.toyworld.train --merges bpe_toyworld.txt --out run_dir [--seed S] [--steps N] [--minutes M]
Writes run_dir/checkpoint.pt (a plain model.state_dict()), run_dir/config.json, run_dir/log.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import time

import numpy as np
import torch
import torch.nn.functional as F

from tools.export.clip_model import CLIP, ClipConfig
from tools.toyworld import world
from tools.toyworld.bpe import Tokenizer

MEAN = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(1, 3, 1, 1)
STD = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(1, 3, 1, 1)


def make_config(vocab_size: int, vision_width: int = 16) -> ClipConfig:
    return ClipConfig(
        embed_dim=128,
        image_resolution=world.IMAGE_SIZE,
        vision_layers=(1, 1, 2, 1),
        vision_width=vision_width,  # layer4: 32 * width channels ("neurons") on a 2x2 grid (16: 512)
        context_length=32,
        vocab_size=vocab_size,
        transformer_width=128,
        transformer_heads=2,
        transformer_layers=3,
    )


def to_pixels(images) -> torch.Tensor:
    arr = np.stack([np.asarray(im.convert("RGB"), dtype=np.uint8) for im in images])
    x = torch.from_numpy(arr).permute(0, 3, 1, 2).float() / 255.0
    return (x - MEAN) / STD


def pad_ids(rows: list[list[int]]) -> torch.Tensor:
    length = max(len(r) for r in rows)
    out = torch.zeros(len(rows), length, dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.tensor(r)
    return out


class Batches(torch.utils.data.IterableDataset):
    def __init__(
        self,
        seed: int,
        batch: int,
        merges: str,
        context: int,
        shares: dict[str, float],
    ):
        self.seed, self.batch, self.merges, self.context = seed, batch, merges, context
        self.shares = shares

    def __iter__(self):
        # The worker may be a fresh process (spawn on some platforms): set the world's shares here.
        for name, value in self.shares.items():
            setattr(world, name, value)
        info = torch.utils.data.get_worker_info()
        wid = info.id if info is not None else 0
        rng = random.Random(self.seed * 1000 + wid)
        tok = Tokenizer(self.merges, self.context)
        while True:
            samples = [world.sample(rng) for _ in range(self.batch)]
            captions = [s[1] for s in samples]
            yield to_pixels([s[0] for s in samples]), pad_ids([tok.encode(c) for c in captions]), captions


def stream_shares(args: argparse.Namespace) -> dict[str, float]:
    """The shares of the world's stream (tools/toyworld/world.py's module settings) that the flags set."""
    return {
        "FOLLOW_WORD_SHARE": args.follow_word,
        "TIED_SHARE": args.tied_share,
        "WORD_MATCH_SHARE": args.word_match,
        "DESCRIBE_BOTH_SHARE": args.describe_both,
    }


def param_groups(model: CLIP, wd: float, pool_wd: float, qk_wd: float):
    decay, pool, qk, no_decay = [], [], [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if p.ndim < 2 or "bn" in name or "ln" in name or name.endswith("logit_scale") or "embedding" in name:
            no_decay.append(p)
        elif name in ("visual.attnpool.q_proj.weight", "visual.attnpool.k_proj.weight"):
            qk.append(p)
        elif name.startswith("visual.attnpool"):
            pool.append(p)
        else:
            decay.append(p)
    return [
        {"params": decay, "weight_decay": wd},
        {"params": pool, "weight_decay": pool_wd},
        {"params": qk, "weight_decay": qk_wd},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def neuron_penalties(mean: torch.Tensor, sparsity: float, steady_norm: float) -> torch.Tensor:
    """Penalties on the neurons' spatial mean [N,C]: L1/L2 (scale-free sparsity, in [1/sqrt(C), 1] once
    divided by sqrt(C)), and the batch variance of log |mean| (the overall magnitude should not follow
    the area a picture covers)."""
    total = mean.new_zeros(())
    norm = mean.norm(dim=1) + 1e-6
    if sparsity > 0:
        total = total + sparsity * (mean.abs().sum(dim=1) / norm).mean() / mean.shape[1] ** 0.5
    if steady_norm > 0:
        total = total + steady_norm * torch.log(norm).var()
    return total


def sparsity_at(progress: float, base: float, peak: float, until: float) -> float:
    """The sparsity penalty's weight: `peak` at the start, decaying (cosine) to `base` at the fraction
    `until` of the run (progress in [0, 1], as the learning rate's schedule counts it), then `base` to
    the end, so that the rest of the run can recover what the strong penalty cost (reading).
    peak <= base: `base` throughout (the committed recipe)."""
    if peak <= base or until <= 0:
        return base
    t = min(1.0, progress / until)
    return base + (peak - base) * 0.5 * (1 + math.cos(math.pi * t))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--merges", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--minutes", type=float, default=40.0, help="stop (and save) after this wall time")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--wd", type=float, default=0.05)
    ap.add_argument("--pool-wd", type=float, default=0.2)
    ap.add_argument(
        "--qk-wd",
        type=float,
        default=None,
        help="weight decay of the attention pool's query/key (default: --pool-wd)",
    )
    ap.add_argument(
        "--follow-word",
        type=float,
        default=0.3,
        help="share of shape-with-word captions naming only the word",
    )
    ap.add_argument(
        "--uniform-attention",
        action="store_true",
        help="fix the attention pool's query/key weights at zero: attention is uniform and the head linear in the neurons' mean",
    )
    ap.add_argument(
        "--sparsity",
        type=float,
        default=0.0,
        help="weight of the L1/L2 sparsity penalty on the neurons' spatial mean",
    )
    ap.add_argument(
        "--steady-norm",
        type=float,
        default=0.0,
        help="weight of the penalty on the batch variance of log |neurons' mean|",
    )
    ap.add_argument(
        "--centre",
        type=float,
        default=0.0,
        help="weight of the penalty on |batch mean| of the unit image and text embeddings (their shared component)",
    )
    ap.add_argument(
        "--row-norm",
        type=float,
        default=0.0,
        help="weight of the penalty on the variance of log |W_c| over neurons (W = (c_proj.v_proj)^T)",
    )
    ap.add_argument(
        "--vision-width",
        type=int,
        default=16,
        help="ResNet width: the neuron layer (layer4) has 32 * width channels (16: 512; 6: 192; 4: 128)",
    )
    ap.add_argument(
        "--sparsity-peak",
        type=float,
        default=0.0,
        help="sparsity weight at step 0, decaying (cosine) to --sparsity at --sparsity-until (default: none)",
    )
    ap.add_argument(
        "--sparsity-until",
        type=float,
        default=0.5,
        help="fraction of the steps at which the sparsity weight is back at --sparsity",
    )
    ap.add_argument(
        "--tied-share",
        type=float,
        default=0.0,
        help="share of samples tying the modalities in one image (world.make_tied): a concept's picture "
        "with its word in matching ink, captioned with the bare concept (the article's templates for "
        "expressions)",
    )
    ap.add_argument(
        "--word-match",
        type=float,
        default=0.35,
        help="share of shape-with-word images whose word names the shape's colour (the rest are typographic "
        "conflicts: the words that train picture and word detectors apart)",
    )
    ap.add_argument(
        "--describe-both",
        type=float,
        default=0.4,
        help="share of shape-with-word captions describing both the shape and its word (--follow-word: "
        "naming only the word; the rest name only the picture)",
    )
    ap.add_argument(
        "--keep-steps",
        default="",
        help="comma-separated steps (multiples of 500) whose checkpoint is also kept as checkpoint-<step>.pt",
    )
    ap.add_argument(
        "--device",
        default="cuda" if torch.cuda.is_available() else "cpu",
        help="torch device (default: cuda when available, else cpu)",
    )
    ap.add_argument(
        "--init",
        default=None,
        help="start from these weights: a checkpoint.pt (with its --vision-width) or an exported model "
        "directory (rebuilt by from_onnx.py; its BatchNorms are folded, so they stay frozen in eval mode)",
    )
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument(
        "--threads", type=int, default=1, help="1 is much faster than 2 on a shared, oversubscribed machine"
    )
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    os.makedirs(args.out, exist_ok=True)
    tok = Tokenizer(args.merges)
    config = make_config(tok.vocab_size, args.vision_width)
    model = CLIP(config)
    frozen_bn = False
    if args.init and os.path.isdir(args.init):
        from tools.toyworld.from_onnx import load_exported

        model = load_exported(args.init)
        config = model.config
        frozen_bn = True  # folded: running statistics are the identity, batch statistics would not be
    elif args.init:
        model.load_state_dict(torch.load(args.init, map_location="cpu"))
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump({"config": config.to_dict(), "args": vars(args)}, f, indent=1)
    if args.uniform_attention:
        # q.k is then a constant, softmax uniform over [mean, grid]: the pooled token is the mean of
        # v(x + positional), so W = c_proj.v_proj is the exact linear part the article's formula assumes.
        for proj in (model.visual.attnpool.q_proj, model.visual.attnpool.k_proj):
            torch.nn.init.zeros_(proj.weight)
            proj.weight.requires_grad_(False)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"params {n_params} vocab {tok.vocab_size} device {args.device}", flush=True)
    device = torch.device(args.device)
    model.to(device)

    keep_steps = {int(x) for x in args.keep_steps.split(",") if x.strip()}
    qk_wd = args.pool_wd if args.qk_wd is None else args.qk_wd
    opt = torch.optim.AdamW(
        param_groups(model, args.wd, args.pool_wd, qk_wd), lr=args.lr, betas=(0.9, 0.98), eps=1e-6
    )

    budget = args.minutes * 60

    def lr_at(step: int, elapsed: float = 0.0) -> float:
        """Warm-up, then cosine decay over whichever runs out first: the steps or the wall-time budget
        (so a slower, shared machine still anneals fully, only with fewer steps)."""
        if step < args.warmup:
            return args.lr * (step + 1) / args.warmup
        t = max((step - args.warmup) / max(1, args.steps - args.warmup), elapsed / budget)
        return args.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))

    loader = torch.utils.data.DataLoader(
        Batches(args.seed, args.batch, args.merges, config.context_length, stream_shares(args)),
        batch_size=None,
        num_workers=1,
        prefetch_factor=4,
    )
    log = {"steps": [], "loss": [], "acc": [], "seconds": [], "logit_scale": []}
    start = time.time()
    run_loss, run_acc, run_n = 0.0, 0.0, 0
    step = 0
    model.train()
    if frozen_bn:
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.eval()
    for pixels, ids, captions in loader:
        pixels, ids = pixels.to(device, non_blocking=True), ids.to(device, non_blocking=True)
        for g in opt.param_groups:
            g["lr"] = lr_at(step, time.time() - start)
        neurons = model.visual.trunk(pixels)
        image = model.visual.attnpool(neurons)
        text = model.encode_text(ids)
        image = image / image.norm(dim=1, keepdim=True)
        text = text / text.norm(dim=1, keepdim=True)
        logits_img = model.logit_scale.exp() * image @ text.t()
        logits_txt = logits_img.t()
        same = torch.tensor(
            [[a == b for b in captions] for a in captions], dtype=torch.float32, device=device
        )
        target = same / same.sum(dim=1, keepdim=True)
        loss = 0.5 * (
            torch.sum(-target * F.log_softmax(logits_img, dim=1), dim=1).mean()
            + torch.sum(-target * F.log_softmax(logits_txt, dim=1), dim=1).mean()
        )
        progress = max(step / max(1, args.steps), (time.time() - start) / budget)
        sparsity = sparsity_at(progress, args.sparsity, args.sparsity_peak, args.sparsity_until)
        loss = loss + neuron_penalties(neurons.mean(dim=(2, 3)), sparsity, args.steady_norm)
        if args.row_norm > 0:
            # Every neuron's row of W at a similar length: W.t then ranks neurons by how well their
            # row points along t, not by how loud a rarely active neuron has to be.
            pool = model.visual.attnpool
            rows = (pool.c_proj.weight @ pool.v_proj.weight).t().norm(dim=1)
            loss = loss + args.row_norm * torch.log(rows + 1e-8).var()
        if args.centre > 0:
            # A large component shared by all embeddings adds the same image-dependent offset to
            # every concept's bilinear score x.(W t_c); keep the embeddings centred instead.
            loss = loss + args.centre * (image.mean(dim=0).square().sum() + text.mean(dim=0).square().sum())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
            pred = logits_img.argmax(dim=1)
            run_acc += same[torch.arange(len(captions), device=device), pred].mean().item()
        run_loss += loss.item()
        run_n += 1
        step += 1
        elapsed = time.time() - start
        if step % 50 == 0 or step == args.steps:
            log["steps"].append(step)
            log["loss"].append(run_loss / run_n)
            log["acc"].append(run_acc / run_n)
            log["seconds"].append(elapsed)
            log["logit_scale"].append(model.logit_scale.exp().item())
            print(
                f"step {step} loss {run_loss / run_n:.4f} batch-acc {run_acc / run_n:.3f} "
                f"scale {model.logit_scale.exp().item():.1f} lr {lr_at(step, elapsed):.2e} {elapsed:.0f}s",
                flush=True,
            )
            run_loss, run_acc, run_n = 0.0, 0.0, 0
        done = step >= args.steps or elapsed > budget
        if step % 500 == 0 or done:
            state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
            torch.save(state, os.path.join(args.out, "checkpoint.tmp"))
            os.replace(os.path.join(args.out, "checkpoint.tmp"), os.path.join(args.out, "checkpoint.pt"))
            if step in keep_steps:
                torch.save(state, os.path.join(args.out, f"checkpoint-{step}.pt"))
            log["total_steps"], log["total_seconds"], log["params"] = step, elapsed, n_params
            with open(os.path.join(args.out, "log.json"), "w") as f:
                json.dump(log, f)
        if done:
            break
    print(f"done: {step} steps in {time.time() - start:.0f}s", flush=True)


if __name__ == "__main__":
    main()
