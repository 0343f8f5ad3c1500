#!/usr/bin/env python3
"""Reference CLIP tokenizer, used only to generate test fixtures.

Re-implements the behaviour of OpenAI CLIP's simple_tokenizer.py + clip.tokenize
(written for this project, not copied), on top of the real `ftfy` and `regex`
packages. It is never a runtime dependency of the service.

Usage:
  python reference.py MERGES_FILE CASES_IN.json OUT.json

CASES_IN.json is a JSON list of {"name": str, "text": str}. OUT.json gets
{"description", "ftfy", "contextLength", "cases": [{name, text, ids, truncated}]}
with ids unpadded: start, BPE ids, end (truncated to the context with end last).
"""
import gzip
import html
import json
import sys

import ftfy
import regex

CONTEXT_LENGTH = 77
VOCAB_SIZE = 49408


def byte_level_alphabet():
    """Bytes -> printable unicode characters, in CLIP's (GPT-2's) order."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars = list(printable)
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(c) for c in chars)))


class Reference:
    def __init__(self, merges_path, vocab_size=VOCAB_SIZE):
        raw = open(merges_path, "rb").read()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        lines = raw.decode("utf-8").split("\n")
        merges = [tuple(line.split()) for line in lines[1 : 1 + vocab_size - 514]]
        self.byte_chars = byte_level_alphabet()
        base = list(self.byte_chars.values())
        vocab = base + [c + "</w>" for c in base] + ["".join(m) for m in merges]
        vocab += ["<|startoftext|>", "<|endoftext|>"]
        self.token_ids = {tok: i for i, tok in enumerate(vocab)}
        self.ranks = {m: i for i, m in enumerate(merges)}
        self.pattern = regex.compile(
            r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
            regex.IGNORECASE,
        )

    def bpe(self, word):
        if word in ("<|startoftext|>", "<|endoftext|>"):
            return [word]
        parts = list(word[:-1]) + [word[-1] + "</w>"]
        while len(parts) > 1:
            best = min(
                ((self.ranks.get((a, b), float("inf")), i) for i, (a, b) in enumerate(zip(parts, parts[1:]))),
            )
            if best[0] == float("inf"):
                break
            first, second = parts[best[1]], parts[best[1] + 1]
            merged = []
            i = 0
            while i < len(parts):
                if i + 1 < len(parts) and parts[i] == first and parts[i + 1] == second:
                    merged.append(first + second)
                    i += 2
                else:
                    merged.append(parts[i])
                    i += 1
            parts = merged
        return parts

    def clean(self, text):
        text = ftfy.fix_text(text)
        text = html.unescape(html.unescape(text)).strip()
        text = regex.sub(r"\s+", " ", text).strip()
        return text.lower()

    def encode(self, text):
        ids = []
        for word in self.pattern.findall(self.clean(text)):
            chars = "".join(self.byte_chars[b] for b in word.encode("utf-8"))
            ids.extend(self.token_ids[p] for p in self.bpe(chars))
        return ids

    def tokenize(self, text):
        ids = [self.token_ids["<|startoftext|>"]] + self.encode(text) + [self.token_ids["<|endoftext|>"]]
        truncated = len(ids) > CONTEXT_LENGTH
        if truncated:
            ids = ids[:CONTEXT_LENGTH]
            ids[-1] = self.token_ids["<|endoftext|>"]
        return ids, truncated


def main():
    merges_path, cases_in, out_path = sys.argv[1:4]
    ref = Reference(merges_path)
    cases = json.load(open(cases_in, encoding="utf-8"))
    out = []
    for case in cases:
        ids, truncated = ref.tokenize(case["text"])
        out.append({"name": case["name"], "text": case["text"], "ids": ids, "truncated": truncated})
    doc = {
        "description": "Extra CLIP tokenizer cases: ids from tools/tokenizer/reference.py "
        "(a re-implementation of CLIP's simple_tokenizer + clip.tokenize on the real ftfy and regex "
        "packages), context 77, truncate=True, unpadded.",
        "ftfy": ftfy.__version__,
        "regex": regex.__version__,
        "contextLength": CONTEXT_LENGTH,
        "cases": out,
    }
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
