"""The service's word rasteriser (src/clip/raster.ts), reimplemented with Pillow.

Training data that shows the model words must draw them the way the service does; this module is
that drawing. The layout rule (font size, line breaks, every glyph position) is computed from the
TrueType tables of the same DejaVuSans.ttf the service bundles, with the same integer / float64
arithmetic as the TypeScript, so `layout_text` returns the same numbers as `layoutText` bit for bit;
only the glyph rasterisation differs (FreeType here, Skia there).

The rule (see the docstring of src/clip/raster.ts for the full statement):
  1. NFC; whitespace runs → one space; C0/C1 controls dropped; trimmed; characters the font lacks
     → U+FFFD; empty or longer than MAX_CHARS code points → ValueError.
  2. Per line, in font units: pens are running sums of hmtx advances (no kerning, no shaping); the
     ink box is the union of the glyf boxes shifted by the pens.
  3. Every split of the words into 1..MAX_LINES lines (fewer lines first, breaks lexicographic):
     W = widest ink, H = top_1 + (k-1)*pitch - bottom_k, pitch = hhea ascender - descender + lineGap,
     m = floor(S*MARGIN_FRACTION + 0.5), A = S - 2m,
     f = min(A*upem // W, A*upem // H, floor(S*MAX_FONT_FRACTION)).
  4. Largest f wins; ties: fewer lines, then smaller W, then the earlier split. f < MIN_FONT_PX → ValueError.
  5. s = f/upem; first baseline y1 = (S - H*s)/2 + top_1*s, then every pitch*s; line i starts at
     x_i = (S - (right_i - left_i)*s)/2 - left_i*s; glyph j drawn alone at (x_i + p_j*s, y_i),
     left-baseline anchor, f px, black on white — drawn at SUPERSAMPLE× and box-averaged down.

Usage as a script (for the parity test): raster.py OUT_DIR SIZE TEXT... writes OUT_DIR/<i>.rgb
(raw RGB) and OUT_DIR/layouts.json.
"""

from __future__ import annotations

import json
import os
import re
import struct
import sys
import unicodedata
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
FONT_FILE = "DejaVuSans.ttf"
FONT_PATH = os.path.join(REPO, "node_modules", "dejavu-fonts-ttf", "ttf", FONT_FILE)

MARGIN_FRACTION = 0.08
MAX_LINES = 3
MAX_FONT_FRACTION = 0.5
MIN_FONT_PX = 4
MAX_CHARS = 100
REPLACEMENT_CHAR = "\ufffd"
SUPERSAMPLE = 4
INK = (0, 0, 0)
PAPER = (255, 255, 255)

# JavaScript's \s, written out (Python's own whitespace set differs).
WHITESPACE = re.compile("[\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]")
CONTROLS = re.compile("[\u0000-\u001f\u007f-\u009f]")
SPACES = re.compile(" +")


class FontMetrics:
    """head, hhea, hmtx, cmap (3,10) format 12, loca and glyf: all the layout reads from the font."""

    def __init__(self, path: str):
        with open(path, "rb") as f:
            self.data = data = f.read()
        tables = {}
        for i in range(struct.unpack_from(">H", data, 4)[0]):
            tag, _checksum, offset, _length = struct.unpack_from(">4sIII", data, 12 + 16 * i)
            tables[tag.decode("latin1")] = offset
        head, hhea = tables["head"], tables["hhea"]
        self.units_per_em = struct.unpack_from(">H", data, head + 18)[0]
        self.long_loca = struct.unpack_from(">h", data, head + 50)[0] == 1
        ascender, descender, line_gap = struct.unpack_from(">hhh", data, hhea + 4)
        self.pitch = ascender - descender + line_gap
        self.h_metrics = struct.unpack_from(">H", data, hhea + 34)[0]
        self.hmtx, self.loca, self.glyf = tables["hmtx"], tables["loca"], tables["glyf"]
        self.groups = self._cmap_groups(tables["cmap"])

    def _cmap_groups(self, cmap: int):
        data = self.data
        for i in range(struct.unpack_from(">H", data, cmap + 2)[0]):
            platform, encoding, offset = struct.unpack_from(">HHI", data, cmap + 4 + 8 * i)
            sub = cmap + offset
            if (platform, encoding) == (3, 10) and struct.unpack_from(">H", data, sub)[0] == 12:
                count = struct.unpack_from(">I", data, sub + 12)[0]
                return [struct.unpack_from(">III", data, sub + 16 + 12 * k) for k in range(count)]
        raise ValueError("font has no (3,10) format-12 cmap")

    def glyph_id(self, cp: int) -> int:
        lo, hi = 0, len(self.groups) - 1
        while lo <= hi:
            mid = (lo + hi) >> 1
            start, end, first = self.groups[mid]
            if cp < start:
                hi = mid - 1
            elif cp > end:
                lo = mid + 1
            else:
                return first + cp - start
        return 0

    def _loca(self, i: int) -> int:
        if self.long_loca:
            return struct.unpack_from(">I", self.data, self.loca + 4 * i)[0]
        return 2 * struct.unpack_from(">H", self.data, self.loca + 2 * i)[0]

    def glyph(self, cp: int):
        """(advance, (xMin, yMin, xMax, yMax) or None), or None when the font lacks the character."""
        gid = self.glyph_id(cp)
        if gid == 0:
            return None
        advance = struct.unpack_from(">H", self.data, self.hmtx + 4 * min(gid, self.h_metrics - 1))[0]
        start = self._loca(gid)
        if self._loca(gid + 1) == start:
            return advance, None
        return advance, struct.unpack_from(">hhhh", self.data, self.glyf + start + 2)


@lru_cache(maxsize=1)
def metrics() -> FontMetrics:
    return FontMetrics(FONT_PATH)


@lru_cache(maxsize=64)
def pil_font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(FONT_PATH, size)


def normalise_text(text: str) -> str:
    text = WHITESPACE.sub(" ", unicodedata.normalize("NFC", text))
    return SPACES.sub(" ", CONTROLS.sub("", text)).strip(" ")


def measure_line(chars: str, m: FontMetrics):
    pens, pen = [], 0
    left, right, top, bottom = None, None, None, None
    for ch in chars:
        advance, box = m.glyph(ord(ch))
        pens.append(pen)
        if box is not None:
            x_min, y_min, x_max, y_max = box
            left = pen + x_min if left is None else min(left, pen + x_min)
            right = pen + x_max if right is None else max(right, pen + x_max)
            top = y_max if top is None else max(top, y_max)
            bottom = y_min if bottom is None else min(bottom, y_min)
        pen += advance
    if left is None:
        return {"chars": chars, "pens": pens, "left": 0, "right": 0, "top": 0, "bottom": 0}
    return {"chars": chars, "pens": pens, "left": left, "right": right, "top": top, "bottom": bottom}


def line_breaks(n: int, max_lines: int):
    out = []

    def extend(breaks, remaining):
        if remaining == 0:
            out.append(breaks)
            return
        for b in range((breaks[-1] if breaks else 0) + 1, n):
            extend(breaks + [b], remaining - 1)

    for lines in range(1, min(max_lines, n) + 1):
        extend([], lines - 1)
    return out


def layout_text(text: str, size: int) -> dict:
    """{"fontPx": f, "lines": [{"text", "x", "baseline", "pens"}]} — the same numbers as layoutText."""
    m = metrics()
    normalised = normalise_text(text)
    if not normalised:
        raise ValueError("the text to rasterise is empty")
    chars = "".join(ch if m.glyph(ord(ch)) else REPLACEMENT_CHAR for ch in normalised)
    if len(chars) > MAX_CHARS:
        raise ValueError(f"the text to rasterise has {len(chars)} characters; the limit is {MAX_CHARS}")
    words = chars.split(" ")
    margin = int(size * MARGIN_FRACTION + 0.5)
    avail = size - 2 * margin
    cap = int(size * MAX_FONT_FRACTION)
    em = m.units_per_em

    best = None
    for breaks in line_breaks(len(words), MAX_LINES):
        bounds = [0] + breaks + [len(words)]
        lines = [measure_line(" ".join(words[bounds[i] : end]), m) for i, end in enumerate(bounds[1:])]
        width = max(line["right"] - line["left"] for line in lines)
        height = lines[0]["top"] + (len(lines) - 1) * m.pitch - lines[-1]["bottom"]
        if width <= 0 or height <= 0:
            continue
        font_px = min(avail * em // width, avail * em // height, cap)
        if (
            best is None
            or font_px > best[0]
            or (font_px == best[0] and len(lines) == len(best[3]) and width < best[1])
        ):
            best = (font_px, width, height, lines)
    if best is None:
        raise ValueError("the text to rasterise has no visible characters")
    font_px, _width, height, lines = best
    if font_px < MIN_FONT_PX:
        raise ValueError(f"the text is too long to rasterise legibly at {size}x{size} pixels")
    s = font_px / em
    first_baseline = (size - height * s) / 2 + lines[0]["top"] * s
    return {
        "fontPx": font_px,
        "lines": [
            {
                "text": line["chars"],
                "x": (size - (line["right"] - line["left"]) * s) / 2 - line["left"] * s,
                "baseline": first_baseline + i * m.pitch * s,
                "pens": [p * s for p in line["pens"]],
            }
            for i, line in enumerate(lines)
        ],
    }


def rasterize_text(text: str, size: int) -> Image.Image:
    """The text as an S×S RGB picture, black DejaVu Sans on white, laid out like the service.

    Drawn at SUPERSAMPLE× (font size and positions scaled) and box-averaged back with Image.reduce,
    as the service does, so both implementations antialias by area coverage.
    """
    layout = layout_text(text, size)
    k = SUPERSAMPLE
    img = Image.new("RGB", (size * k, size * k), PAPER)
    draw = ImageDraw.Draw(img)
    font = pil_font(layout["fontPx"] * k)
    for line in layout["lines"]:
        for ch, pen in zip(line["text"], line["pens"]):
            if ch != " ":
                draw.text(((line["x"] + pen) * k, line["baseline"] * k), ch, font=font, fill=INK, anchor="ls")
    return img.reduce(k)


if __name__ == "__main__":
    out_dir, size = sys.argv[1], int(sys.argv[2])
    layouts = []
    for i, text in enumerate(sys.argv[3:]):
        layouts.append(layout_text(text, size))
        with open(os.path.join(out_dir, f"{i}.rgb"), "wb") as f:
            f.write(rasterize_text(text, size).tobytes())
    with open(os.path.join(out_dir, "layouts.json"), "w") as f:
        json.dump(layouts, f)
