"""File hashes as the model directory's manifest (clip.json) records them."""

from __future__ import annotations

import hashlib


def sha256_file(path: str) -> str:
    """The hex sha256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
