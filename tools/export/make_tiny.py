#!/usr/bin/env python3
"""Write a deterministic random-weight CLIP ResNet checkpoint in OpenAI's key layout (for tests).

    make_tiny.py OUT.pt --seed N [--config tiny|RN50|RN101|RN50x4|RN50x16|RN50x64]
                 [--torchscript OUT_TS.pt] [--fp16]

OUT.pt is a plain `torch.save` state dict. With --torchscript, OUT_TS.pt is a traced TorchScript
archive like OpenAI's releases: `torch.jit.load(OUT_TS.pt).state_dict()` returns the same CLIP keys
plus the integer entries `input_resolution`, `context_length` and `vocab_size`.

Weights follow OpenAI's initialisation, except that every BatchNorm gets random affine parameters and
running statistics (so BatchNorm is not the identity and the residual branches are not zeroed), and
logit_scale = log(100). --fp16 stores the floating tensors as float16, as OpenAI's files do.
"""

from __future__ import annotations

import argparse
import math
import sys

import torch
from torch import nn

from tools.export.clip_model import CLIP, RELEASED_CONFIGS, ClipConfig

TINY = ClipConfig(
    embed_dim=64,
    image_resolution=64,
    vision_layers=(1, 1, 2, 1),
    vision_width=16,
    context_length=77,
    vocab_size=49408,
    transformer_width=64,
    transformer_heads=1,
    transformer_layers=2,
)
CONFIGS = {"tiny": TINY, **RELEASED_CONFIGS}


def random_clip(config: ClipConfig, seed: int) -> CLIP:
    """CLIP(config) with seeded weights and random BatchNorm statistics, in eval mode."""
    torch.manual_seed(seed)
    model = CLIP(config)
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                n = module.num_features
                module.weight.copy_(0.5 + torch.rand(n, generator=generator))
                module.bias.copy_(0.1 * torch.randn(n, generator=generator))
                module.running_mean.copy_(0.1 * torch.randn(n, generator=generator))
                module.running_var.copy_(0.5 + torch.rand(n, generator=generator))
                module.num_batches_tracked.fill_(1000)
        model.logit_scale.fill_(math.log(100.0))
    return model.eval()


class TracedClip(nn.Module):
    """Holds CLIP's submodules under their own names, plus OpenAI's integer entries as buffers.

    Its state_dict() is the CLIP state dict + input_resolution, context_length, vocab_size.
    """

    def __init__(self, clip: CLIP):
        super().__init__()
        self.visual = clip.visual
        self.transformer = clip.transformer
        self.token_embedding = clip.token_embedding
        self.positional_embedding = clip.positional_embedding
        self.ln_final = clip.ln_final
        self.text_projection = clip.text_projection
        self.logit_scale = clip.logit_scale
        config = clip.config
        self.register_buffer("input_resolution", torch.tensor(config.image_resolution))
        self.register_buffer("context_length", torch.tensor(config.context_length))
        self.register_buffer("vocab_size", torch.tensor(config.vocab_size))
        self._clip = [clip]  # a list, so the module is not registered twice

    def forward(self, pixels: torch.Tensor, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self._clip[0](pixels, ids)


def write_torchscript(model: CLIP, path: str, fp16: bool) -> None:
    config = model.config
    pixels = torch.zeros(1, 3, config.image_resolution, config.image_resolution)
    ids = torch.zeros(1, config.context_length, dtype=torch.long)
    ids[0, 0], ids[0, 1] = config.vocab_size - 2, config.vocab_size - 1
    with torch.no_grad():
        traced = torch.jit.trace(TracedClip(model), (pixels, ids), check_trace=False)
    if fp16:
        traced = traced.half()  # storage only, as in OpenAI's archives
    traced.save(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", help="path of the plain state dict to write")
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--config", choices=sorted(CONFIGS), default="tiny")
    parser.add_argument("--torchscript", metavar="OUT_TS.pt", help="also write a TorchScript archive")
    parser.add_argument("--fp16", action="store_true", help="store float16 tensors (both files)")
    args = parser.parse_args(argv)
    torch.set_num_threads(min(2, torch.get_num_threads()))

    model = random_clip(CONFIGS[args.config], args.seed)
    state = model.state_dict()
    if args.fp16:
        state = {k: (v.half() if v.is_floating_point() else v) for k, v in state.items()}
    torch.save(state, args.out)
    if args.torchscript:
        write_torchscript(model, args.torchscript, args.fp16)
    return 0


if __name__ == "__main__":
    sys.exit(main())
