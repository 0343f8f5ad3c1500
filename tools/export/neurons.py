"""The neuron catalogue written as neurons.json: {"<id>": {"label", "family"?, "source"}}.

Ids index the C channels of visual.layer4 (the attention-pool input). For RN50x4 (C = 2560) it starts
with the neurons that Goh et al. (2021) name in the article; `--labels FILE` ({id: label}) adds or
overrides entries for any model.
"""

from __future__ import annotations

import json
import os

from clip_model import RELEASED_CONFIGS, ClipConfig

ARTICLE = "Goh et al. 2021, Multimodal Neurons in Artificial Neural Networks"

# RN50x4 neurons named in the article: id -> (label, family or None).
ARTICLE_RN50X4_NEURONS: dict[int, tuple[str, str | None]] = {
    89: ("Donald Trump", "person"),
    263: ("Lady Gaga", "person"),
    550: ("Spiderman", "fictional universe"),
    2500: ("Star Wars", "fictional universe"),
    672: ("fires weakly for Hillary Clinton", "person"),
    713: ("yellow", "color"),
    1777: ("Jesus Christ", "person"),
    309: ("Hitler", "person"),
    1512: ("happiness", "emotion"),
    2478: ("surprise / shock", "emotion"),
    1372: ("creative", None),
    1551: ("jail / incarceration", None),
    2202: ("question marks", None),
    1692: ("silly expression (duckface)", "emotion"),
    2191: ("mental illness", None),
    36: ("positivity", None),
    1596: ("terrorism / Islam", None),
    2213: ("illegal immigration", None),
    1317: ("East Africa", "region"),
}


class LabelsError(Exception):
    """A labels file that cannot be merged; the message is one line."""


def build_catalogue(config: ClipConfig, labels_path: str | None = None) -> dict[str, dict]:
    """The catalogue for `config`, with the labels of `labels_path` merged over the built-in ones."""
    catalogue: dict[int, dict] = {}
    if config == RELEASED_CONFIGS["RN50x4"]:
        for neuron, (label, family) in ARTICLE_RN50X4_NEURONS.items():
            catalogue[neuron] = {"label": label, **({"family": family} if family else {}), "source": ARTICLE}
    if labels_path:
        source = os.path.basename(labels_path)
        for neuron, label in read_labels(labels_path, config.neuron_channels).items():
            catalogue[neuron] = {"label": label, "source": source}
    return {str(neuron): catalogue[neuron] for neuron in sorted(catalogue)}


def read_labels(path: str, neuron_count: int) -> dict[int, str]:
    """{id: label} from a JSON object; every id must be an integer in [0, neuron_count)."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except OSError as error:
        raise LabelsError(f"{path}: cannot be read ({error.strerror or error})") from None
    except json.JSONDecodeError as error:
        raise LabelsError(f"{path}: is not valid JSON ({error})") from None
    if not isinstance(data, dict):
        raise LabelsError(f"{path}: holds a JSON {type(data).__name__}; expected an object {{id: label}}")
    labels: dict[int, str] = {}
    for key, label in data.items():
        try:
            neuron = int(key)
        except ValueError:
            raise LabelsError(f"{path}: key {key!r} is not a neuron id; expected integers") from None
        if not 0 <= neuron < neuron_count:
            raise LabelsError(
                f"{path}: neuron id {neuron} is out of range; this model has {neuron_count} neurons"
            )
        if not isinstance(label, str) or not label.strip():
            raise LabelsError(f"{path}: label of neuron {neuron} is {label!r}; expected a non-empty string")
        labels[neuron] = label.strip()
    return labels
