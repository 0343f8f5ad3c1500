"""Byte-level BPE in CLIP's format, learned from the toy world's captions (written for this project).

Learning: the corpus is cleaned like CLIP does (html unescape, whitespace collapse, lower-case),
pre-tokenised with CLIP's pattern, every piece is mapped to the 256 byte-level characters with the
last character marked `</w>`, then the most frequent adjacent pair (counted over piece frequencies)
is merged greedily until no pair occurs at least `min_count` times or `max_merges` is reached.

Format: `#version: 0.2` header, then one "a b" merge per line in rank order. Vocab = 256 byte
characters + the same with `</w>` + one token per merge + <|startoftext|> + <|endoftext|>.

Usage: python3 -m tools.toyworld.bpe OUT_MERGES [--seed S] [--samples N] [--max-merges M]
"""

from __future__ import annotations

import argparse
import html
import re
from collections import Counter

# CLIP's pattern with \p{L} approximated by "word characters minus digits and underscore" and
# \p{N} by \d (exact for the ASCII text of the toy world).
PATTERN = re.compile(
    r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[^\W\d_]+|\d|[^\s\w]+|_+", re.IGNORECASE
)
START, END = "<|startoftext|>", "<|endoftext|>"


def byte_level_alphabet() -> dict[int, str]:
    keep = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    table = {b: chr(b) for b in keep}
    n = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + n)
            n += 1
    # vocabulary order: printable bytes first, then the shifted ones (as CLIP / GPT-2)
    return dict(
        sorted(
            table.items(), key=lambda kv: (kv[0] not in keep, keep.index(kv[0]) if kv[0] in keep else kv[0])
        )
    )


BYTE_CHARS = byte_level_alphabet()


def clean(text: str) -> str:
    text = html.unescape(html.unescape(text))
    return re.sub(r"\s+", " ", text).strip().lower()


def pieces(text: str) -> list[str]:
    return ["".join(BYTE_CHARS[b] for b in p.encode("utf-8")) for p in PATTERN.findall(clean(text))]


def learn(texts: list[str], max_merges: int = 3000, min_count: int = 2) -> list[tuple[str, str]]:
    freq = Counter()
    for t in texts:
        freq.update(pieces(t))
    words = {w: (list(w[:-1]) + [w[-1] + "</w>"]) for w in freq}
    vocab = set(BYTE_CHARS.values()) | {c + "</w>" for c in BYTE_CHARS.values()}
    merges: list[tuple[str, str]] = []
    while len(merges) < max_merges:
        pairs = Counter()
        for w, syms in words.items():
            f = freq[w]
            for a, b in zip(syms, syms[1:]):
                pairs[(a, b)] += f
        best = None
        # most frequent first; ties broken by the pair itself so the result is deterministic
        for pair, count in sorted(pairs.items(), key=lambda kv: (-kv[1], kv[0])):
            if count < min_count:
                break
            if pair[0] + pair[1] not in vocab:  # never create the same token twice
                best = pair
                break
        if best is None:
            break
        merges.append(best)
        joined = best[0] + best[1]
        vocab.add(joined)
        for w, syms in words.items():
            i, out = 0, []
            while i < len(syms):
                if i + 1 < len(syms) and syms[i] == best[0] and syms[i + 1] == best[1]:
                    out.append(joined)
                    i += 2
                else:
                    out.append(syms[i])
                    i += 1
            words[w] = out
    return merges


def write_merges(path: str, merges: list[tuple[str, str]]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")
        for a, b in merges:
            f.write(f"{a} {b}\n")


class Tokenizer:
    """CLIP's encoding (lowest-rank pair first, all its occurrences, until none ranked)."""

    def __init__(self, merges_path: str, context_length: int = 32):
        lines = open(merges_path, encoding="utf-8").read().split("\n")[1:]
        merges = [tuple(line.split()) for line in lines if line]
        base = list(BYTE_CHARS.values())
        vocab = base + [c + "</w>" for c in base] + ["".join(m) for m in merges] + [START, END]
        self.ids = {t: i for i, t in enumerate(vocab)}
        self.ranks = {m: i for i, m in enumerate(merges)}
        self.vocab_size = len(vocab)
        self.start_id, self.end_id = self.vocab_size - 2, self.vocab_size - 1
        self.context_length = context_length
        self.cache: dict[str, list[str]] = {}

    def bpe(self, piece: str) -> list[str]:
        if piece in self.cache:
            return self.cache[piece]
        syms = list(piece[:-1]) + [piece[-1] + "</w>"]
        while len(syms) > 1:
            pairs = set(zip(syms, syms[1:]))
            best = min(pairs, key=lambda p: self.ranks.get(p, float("inf")))
            if best not in self.ranks:
                break
            i, out = 0, []
            while i < len(syms):
                if i + 1 < len(syms) and syms[i] == best[0] and syms[i + 1] == best[1]:
                    out.append(best[0] + best[1])
                    i += 2
                else:
                    out.append(syms[i])
                    i += 1
            syms = out
        self.cache[piece] = syms
        return syms

    def encode(self, text: str) -> list[int]:
        """[start, ..., end], truncated to the context with end last."""
        ids = [self.start_id]
        for p in pieces(text):
            if p in (START, END):
                ids.append(self.ids[p])
                continue
            ids += [self.ids[s] for s in self.bpe(p)]
        ids.append(self.end_id)
        if len(ids) > self.context_length:
            ids = ids[: self.context_length - 1] + [self.end_id]
        return ids


def main() -> None:
    from tools.toyworld import world

    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--samples", type=int, default=20000)
    ap.add_argument("--max-merges", type=int, default=3000)
    args = ap.parse_args()
    texts = world.caption_corpus(args.seed, args.samples)
    merges = learn(texts, args.max_merges)
    write_merges(args.out, merges)
    tok = Tokenizer(args.out)
    lengths = [len(tok.encode(t)) for t in texts]
    print(f"{len(merges)} merges, vocab {tok.vocab_size}, max caption tokens {max(lengths)}")


if __name__ == "__main__":
    main()
