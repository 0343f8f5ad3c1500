"""Load a CLIP ResNet checkpoint and infer its architecture from the tensor shapes.

Accepted files:
  * OpenAI's TorchScript archives (`RN50.pt`, ...): `torch.jit.load(...).state_dict()`;
  * plain state dicts written with `torch.save(model.state_dict())`, optionally wrapped in a dict
    under 'state_dict' or 'model', optionally with a DataParallel 'module.' prefix.
Weights may be stored as float16 or float32; they are always returned as float32.

The configuration is read from the shapes, as OpenAI's `build_model` does:
    vision_layers[b]   = number of distinct i in keys `visual.layer{b+1}.{i}.*`
    vision_width       = visual.layer1.0.conv1.weight.shape[0]
    grid               = sqrt(visual.attnpool.positional_embedding.shape[0] - 1)
    image_resolution   = 32 * grid
    embed_dim          = text_projection.shape[1]
    context_length     = positional_embedding.shape[0]
    vocab_size         = token_embedding.weight.shape[0]
    transformer_width  = ln_final.weight.shape[0];  transformer_heads = max(1, width // 64)
    transformer_layers = number of distinct i in keys `transformer.resblocks.{i}.*`
The integer entries `input_resolution`, `context_length` and `vocab_size` that OpenAI's archives carry
are honoured (and must agree with the shapes), then removed before loading.
"""

from __future__ import annotations

import math
import os
import pickle
import zipfile
from dataclasses import dataclass

import torch

from tools.export.clip_model import CLIP, ClipConfig

RESNET_NAMES = "RN50, RN101, RN50x4, RN50x16, RN50x64"
INTEGER_KEYS = ("input_resolution", "context_length", "vocab_size")
VIT_MARKERS = ("visual.proj", "visual.class_embedding", "visual.transformer.")
REQUIRED_KEYS = (
    "visual.layer1.0.conv1.weight",
    "visual.attnpool.positional_embedding",
    "visual.attnpool.v_proj.weight",
    "visual.attnpool.c_proj.weight",
    "text_projection",
    "positional_embedding",
    "token_embedding.weight",
    "ln_final.weight",
)


class CheckpointError(Exception):
    """A checkpoint that cannot be used; the message is one line: what was found, what was expected."""


@dataclass
class LoadedCheckpoint:
    model: CLIP  # float32, eval mode
    config: ClipConfig
    format: str  # "torchscript" or "state_dict"
    stored_dtype: str  # e.g. "float16"


def load_checkpoint(path: str, trust_pickle: bool = False) -> LoadedCheckpoint:
    """Read `path`, infer its ClipConfig and return the float32 CLIP model with its weights.

    torch.save files are unpickled with `weights_only=True` (tensors and plain containers only) unless
    `trust_pickle` allows arbitrary Python objects (for trusted files with extra metadata).
    """
    state, fmt = read_state_dict(path, trust_pickle)
    state = {k[len("module.") :] if k.startswith("module.") else k: v for k, v in state.items()}
    config = infer_config(state, path)
    for key in INTEGER_KEYS:
        state.pop(key, None)
    floating = [v for v in state.values() if torch.is_tensor(v) and v.is_floating_point()]
    stored_dtype = str(floating[0].dtype).replace("torch.", "") if floating else "unknown"
    state = {k: (v.float() if v.is_floating_point() else v) for k, v in state.items()}
    model = CLIP(config)
    check_keys(model, state, path)
    model.load_state_dict(state, strict=False)  # keys checked above; only num_batches_tracked may be absent
    model.float().eval()
    return LoadedCheckpoint(model, config, fmt, stored_dtype)


def read_state_dict(path: str, trust_pickle: bool = False) -> tuple[dict, str]:
    """The raw {key: tensor} of a TorchScript archive or of a torch.save file."""
    if not os.path.exists(path):
        raise CheckpointError(f"{path}: no such file; expected a CLIP ResNet checkpoint (.pt)")
    if os.path.isdir(path):
        raise CheckpointError(f"{path}: is a directory; expected a CLIP ResNet checkpoint file (.pt)")
    if os.path.getsize(path) == 0:
        raise CheckpointError(f"{path}: is empty; expected a CLIP ResNet checkpoint (.pt)")
    if is_torchscript(path):
        try:
            return dict(torch.jit.load(path, map_location="cpu").state_dict()), "torchscript"
        except Exception as error:  # noqa: BLE001 - any failure here means a damaged archive
            raise CheckpointError(
                f"{path}: TorchScript archive cannot be read ({first_line(error)})"
            ) from None
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=not trust_pickle)
    except pickle.UnpicklingError as error:
        if "weights only" not in str(error).lower():
            raise CheckpointError(f"{path}: truncated or corrupt ({first_line(error)})") from None
        detail = str(error).split("WeightsUnpickler error:")[-1].strip()
        raise CheckpointError(
            f"{path}: holds Python objects besides tensors ({detail}); expected a state dict "
            "(pass --trust-pickle only if you trust the file)"
        ) from None
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError, OSError) as error:
        raise CheckpointError(
            f"{path}: truncated or corrupt ({first_line(error)}); "
            "expected a TorchScript archive or a torch.save state dict"
        ) from None
    if isinstance(loaded, torch.nn.Module):  # a whole pickled model (only with trust_pickle)
        loaded = loaded.state_dict()
    for wrapper in ("state_dict", "model"):
        if isinstance(loaded, dict) and isinstance(loaded.get(wrapper), dict):
            loaded = loaded[wrapper]
    if not isinstance(loaded, dict) or not any(torch.is_tensor(v) for v in loaded.values()):
        raise CheckpointError(
            f"{path}: holds a {type(loaded).__name__} without tensors; expected a state dict"
        )
    return dict(loaded), "state_dict"


def is_torchscript(path: str) -> bool:
    """TorchScript archives are zip files with a `code/` folder and `constants.pkl`."""
    if not zipfile.is_zipfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return False
    return any(n.endswith("/constants.pkl") for n in names) and any("/code/" in n for n in names)


def infer_config(state: dict, path: str) -> ClipConfig:
    """The ClipConfig that the tensor shapes (and OpenAI's integer entries) describe."""
    if any(key.startswith(VIT_MARKERS) for key in state):
        raise CheckpointError(
            f"{path}: ViT CLIP checkpoints are not supported yet; expected a CLIP ResNet ({RESNET_NAMES})"
        )
    missing = [key for key in REQUIRED_KEYS if key not in state]
    if missing:
        found = ", ".join(list(state)[:3]) + (", ..." if len(state) > 3 else "")
        raise CheckpointError(
            f"{path}: not a CLIP ResNet state dict ({len(state)} entries like {found}; "
            f"missing {missing[0]}); expected OpenAI's CLIP layout ({RESNET_NAMES})"
        )
    vision_layers = tuple(count_blocks(state, f"visual.layer{b}.") for b in (1, 2, 3, 4))
    grid_tokens = state["visual.attnpool.positional_embedding"].shape[0] - 1
    grid = math.isqrt(grid_tokens)
    if grid * grid != grid_tokens or min(vision_layers) == 0:
        raise CheckpointError(
            f"{path}: visual tower has layers {vision_layers} and {grid_tokens} attention-pool positions; "
            "expected four non-empty stages and a square grid"
        )
    width = state["ln_final.weight"].shape[0]
    config = ClipConfig(
        embed_dim=state["text_projection"].shape[1],
        image_resolution=integer_entry(state, "input_resolution", grid * 32, path),
        vision_layers=vision_layers,
        vision_width=state["visual.layer1.0.conv1.weight"].shape[0],
        context_length=integer_entry(state, "context_length", state["positional_embedding"].shape[0], path),
        vocab_size=integer_entry(state, "vocab_size", state["token_embedding.weight"].shape[0], path),
        transformer_width=width,
        transformer_heads=max(1, width // 64),
        transformer_layers=count_blocks(state, "transformer.resblocks."),
    )
    return config


def count_blocks(state: dict, prefix: str) -> int:
    """Number of distinct block indices i in keys `{prefix}{i}.*`."""
    return len({key[len(prefix) :].split(".")[0] for key in state if key.startswith(prefix)})


def integer_entry(state: dict, key: str, from_shapes: int, path: str) -> int:
    """OpenAI's archives store a few integers next to the tensors; they must agree with the shapes."""
    if key not in state:
        return int(from_shapes)
    value = int(state[key].item() if torch.is_tensor(state[key]) else state[key])
    if value != from_shapes:
        raise CheckpointError(f"{path}: {key} is {value} but the tensor shapes imply {from_shapes}")
    return value


def check_keys(model: CLIP, state: dict, path: str) -> None:
    """Every key and shape must match the model (num_batches_tracked may be absent)."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    mismatched = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    if missing or unexpected or mismatched:
        problems = []
        if missing:
            problems.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            problems.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        if mismatched:
            k = mismatched[0]
            shapes = f"{list(state[k].shape)} vs {list(expected[k].shape)}"
            problems.append(f"{len(mismatched)} of wrong shape (e.g. {k} {shapes})")
        raise CheckpointError(
            f"{path}: keys do not fit a CLIP ResNet with the inferred config: {'; '.join(problems)}"
        )


def first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
