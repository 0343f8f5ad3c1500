"""The BPE merges file that goes with a checkpoint's vocabulary.

CLIP's vocabulary is laid out as
    vocab_size = 256 byte tokens + 256 end-of-word forms + merges_used + 2 (start, end)
and its tokenizer uses the first `merges_used = vocab_size - 514` merge lines after the header line
(`#version ...`). A merges file may hold more lines than that (CLIP's does); it may not hold fewer.
The file may be gzip-compressed or plain UTF-8 text.
"""

from __future__ import annotations

import gzip
import os

SPECIAL_TOKENS = 2  # <|startoftext|>, <|endoftext|>
BYTE_TOKENS = 2 * 256  # each byte alone and as an end-of-word form


class MergesError(Exception):
    """A merges file that does not fit the checkpoint; the message is one line."""


def merges_used(vocab_size: int) -> int:
    """Number of merge lines the tokenizer reads: vocab_size - 514."""
    return vocab_size - BYTE_TOKENS - SPECIAL_TOKENS


def read_merge_lines(path: str) -> list[str]:
    """The merge lines after the header, gzip or plain text."""
    if not os.path.isfile(path):
        raise MergesError(
            f"{path}: no such merges file; expected CLIP's bpe_simple_vocab_16e6.txt.gz or similar"
        )
    try:
        with open(path, "rb") as f:
            raw = f.read()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        text = raw.decode("utf-8")
    except (OSError, EOFError, UnicodeDecodeError) as error:
        raise MergesError(f"{path}: cannot be read as gzip or UTF-8 text ({error})") from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines[1:]


def check_merges(path: str, vocab_size: int) -> int:
    """Check that `path` has enough well-formed merges for `vocab_size`; return merges_used."""
    needed = merges_used(vocab_size)
    if needed < 1:
        raise MergesError(f"vocab_size {vocab_size} leaves no merges (needs more than 514 tokens)")
    lines = read_merge_lines(path)
    if len(lines) < needed:
        raise MergesError(
            f"{path}: holds {len(lines)} merge lines; the checkpoint's vocabulary of {vocab_size} "
            f"needs {needed} (vocab_size - 514)"
        )
    for number, line in enumerate(lines[:needed], start=2):
        if len(line.split(" ")) != 2:
            raise MergesError(
                f"{path}: line {number} is {line[:40]!r}; expected two symbols separated by a space"
            )
    return needed
