"""The neuron catalogue written as neurons.json:
{"<id>": {"label"?, "family"?, "topWords"?, "handLabel"?, "source", "credit"?}}.

Ids index the C channels of visual.layer4 (the attention-pool input). For RN50x4 (C = 2560) it holds
what the article published about the model (Goh et al. 2021, distillpub/post--multimodal, CC BY 4.0),
from the project's own copy in `article_data/rn50x4/` (nothing outside this folder is read):
  - the 19 neurons the article's text names (label and family),
  - the ~190 hand labels (`neuron-hand-labels.json`; a named neuron keeps the article text's label and
    gets the hand label as `handLabel`),
  - family "lexical" for the ids the article masks as lexical ("text") neurons (`lexical-neurons.json`:
    71 ids as published, 70 distinct — 758 is listed twice),
  - the top-3 rastered words of all 2,560 neurons (`neuron-top-words.json`, as `topWords`),
each entry with its `source` (which of these it comes from) and the article's `credit`.
`--labels FILE` ({id: label} or {id: {"label"?, "family"?}}) sets labels and families of any model's
neurons (family "lexical" puts a neuron in the service's lexical set); an article entry keeps its other
fields, and its source then names FILE first.
"""

from __future__ import annotations

import json
import os

from tools.export.clip_model import RELEASED_CONFIGS, ClipConfig

ARTICLE = "Goh et al. 2021, Multimodal Neurons in Artificial Neural Networks"
CREDIT = f"{ARTICLE}, CC BY 4.0"
# The article's published data about RN50x4, copied verbatim from its repository (see the folder's README).
ARTICLE_DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "article_data", "rn50x4")
ARTICLE_REPOSITORY = "distillpub/post--multimodal"
ARTICLE_FILES = ("neuron-hand-labels.json", "lexical-neurons.json", "neuron-top-words.json")

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
        catalogue = rn50x4_article_catalogue()
    if labels_path:
        source = os.path.basename(labels_path)
        for neuron, given in read_labels(labels_path, config.neuron_channels).items():
            entry = catalogue.get(neuron)
            what = ", ".join(given)
            if entry is None:
                catalogue[neuron] = {**given, "source": source}
            else:
                entry.update(given)
                entry["source"] = f"{source} ({what}); {entry['source']}"
    return {str(neuron): catalogue[neuron] for neuron in sorted(catalogue)}


def write_catalogue(path: str, catalogue: dict[str, dict]) -> None:
    """neurons.json as export_clip.py writes it."""
    with open(path, "w", encoding="utf-8") as f:
        json.dump(catalogue, f, indent=1, ensure_ascii=False)
        f.write("\n")


def read_article_data() -> tuple[dict[int, str], list[int], dict[int, list[str]]]:
    """(hand labels, lexical ids as published, top-3 words) from the project's copy of the article's data."""

    def load(name: str):
        with open(os.path.join(ARTICLE_DATA, name), encoding="utf-8") as f:
            return json.load(f)

    hand = {int(k): v.strip() for k, v in load("neuron-hand-labels.json").items()}
    lexical = [int(i) for i in load("lexical-neurons.json")]
    top = {int(k): [w.strip() for w in v.split(",")] for k, v in load("neuron-top-words.json").items()}
    return hand, lexical, top


def rn50x4_article_catalogue() -> dict[int, dict]:
    """Every RN50x4 neuron's entry from the article: named neurons, hand labels, lexical ids, top words."""
    hand, lexical, top = read_article_data()
    lexical_ids = set(lexical)
    catalogue: dict[int, dict] = {}
    for neuron in sorted(set(top) | set(hand) | lexical_ids | set(ARTICLE_RN50X4_NEURONS)):
        entry: dict = {}
        sources: list[str] = []
        if neuron in ARTICLE_RN50X4_NEURONS:
            label, family = ARTICLE_RN50X4_NEURONS[neuron]
            entry["label"] = label
            if family:
                entry["family"] = family
            sources.append(f"{ARTICLE} (article text)")
            if neuron in hand:
                entry["handLabel"] = hand[neuron]
        elif neuron in hand:
            entry["label"] = hand[neuron]
        if neuron in lexical_ids:
            entry["family"] = "lexical"
        if neuron in top:
            entry["topWords"] = top[neuron]
        files = [
            name
            for name, present in zip(ARTICLE_FILES, (neuron in hand, neuron in lexical_ids, neuron in top))
            if present
        ]
        if files:
            sources.append(f"{ARTICLE_REPOSITORY}: {', '.join(files)}")
        entry["source"] = "; ".join(sources)
        entry["credit"] = CREDIT
        catalogue[neuron] = entry
    return catalogue


def read_labels(path: str, neuron_count: int) -> dict[int, dict]:
    """{id: {"label"?, "family"?}} from a JSON object whose values are labels or {"label"?, "family"?}
    (family "lexical" marks a lexical neuron); every id must be an integer in [0, neuron_count)."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except OSError as error:
        raise LabelsError(f"{path}: cannot be read ({error.strerror or error})") from None
    except json.JSONDecodeError as error:
        raise LabelsError(f"{path}: is not valid JSON ({error})") from None
    if not isinstance(data, dict):
        raise LabelsError(f"{path}: holds a JSON {type(data).__name__}; expected an object {{id: label}}")
    labels: dict[int, dict] = {}
    for key, value in data.items():
        try:
            neuron = int(key)
        except ValueError:
            raise LabelsError(f"{path}: key {key!r} is not a neuron id; expected integers") from None
        if not 0 <= neuron < neuron_count:
            raise LabelsError(
                f"{path}: neuron id {neuron} is out of range; this model has {neuron_count} neurons"
            )
        fields = value if isinstance(value, dict) else {"label": value}
        unknown = sorted(set(fields) - {"label", "family"})
        if unknown or not fields:
            raise LabelsError(
                f"{path}: neuron {neuron} has {', '.join(unknown) or 'no fields'}; expected a label or "
                '{"label", "family"}'
            )
        for name, text in fields.items():
            if not isinstance(text, str) or not text.strip():
                raise LabelsError(
                    f"{path}: {name} of neuron {neuron} is {text!r}; expected a non-empty string"
                )
        labels[neuron] = {name: text.strip() for name, text in fields.items()}
    return labels
