"""The toy world: captioned images generated on the fly from a seed (PIL only, no torch).

Concept families
    colour      8 colours drawn as patches, shapes, ink and objects
    shape       8 shapes (circle, square, triangle, star, heart, diamond, cross, arrow)
    expression  5 facial expressions drawn as simple faces
    word        rendered words: every concept name, synonyms, feelings-wheel words, extra nouns, digits

Sample kinds (see `KIND_WEIGHTS`): colour patches, single coloured shapes, rendered words in several
DejaVu fonts / sizes / rotations / inks, words in the service rasteriser's exact layout, a coloured
shape with a word written on it (typographic-attack data: the caption sometimes follows the written
word, as web captions do), two objects, faces, and faces with a written caption.

Everything is deterministic given `random.Random(seed)`; `sample(rng)` returns (PIL.Image, caption,
meta) where meta names the concepts shown.
"""

from __future__ import annotations

import math
import os
import random
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFilter, ImageFont

IMAGE_SIZE = 64
# Shares of "shape with a word written on it" captions that describe both the shape and the word
# (train.py --describe-both) and that name only the written word (--follow-word); the rest name only
# the picture.
DESCRIBE_BOTH_SHARE = 0.4
FOLLOW_WORD_SHARE = 0.3
# Share of samples drawn by make_tied (train.py --tied-share); 0 keeps the committed stream unchanged.
TIED_SHARE = 0.0
# Share of "shape with a word written on it" images whose word names the shape's own colour (train.py
# --word-match); of the rest, 40/65 carry another colour's word and 25/65 any word (typographic conflicts).
WORD_MATCH_SHARE = 0.35
SUPER = 2  # draw at 2x and downsample (anti-aliasing)

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
FONT_DIR = os.path.join(REPO, "node_modules", "dejavu-fonts-ttf", "ttf")
FONTS = [
    "DejaVuSans.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSans-Oblique.ttf",
    "DejaVuSansCondensed.ttf",
    "DejaVuSansCondensed-Bold.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSerif-Bold.ttf",
    "DejaVuSerif-Italic.ttf",
    "DejaVuSansMono.ttf",
    "DejaVuSansMono-Bold.ttf",
]

# ---------------------------------------------------------------------------------------------
# Concepts
# ---------------------------------------------------------------------------------------------

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (215, 25, 30),
    "orange": (245, 135, 15),
    "yellow": (250, 220, 25),
    "green": (35, 160, 45),
    "blue": (25, 75, 215),
    "purple": (125, 35, 165),
    "pink": (245, 125, 185),
    "brown": (125, 75, 35),
}
COLOUR_SYNONYMS: dict[str, list[str]] = {
    "red": ["crimson", "scarlet", "cherry", "tomato"],
    "orange": ["tangerine", "pumpkin", "carrot", "apricot"],
    "yellow": ["lemon", "banana", "gold", "sunflower"],
    "green": ["lime", "grass", "leaf", "emerald"],
    "blue": ["sky", "ocean", "navy", "sapphire"],
    "purple": ["violet", "grape", "lavender", "plum"],
    "pink": ["rose", "flamingo", "blush", "magenta"],
    "brown": ["chocolate", "coffee", "wood", "cocoa"],
}
SHAPES = ["circle", "square", "triangle", "star", "heart", "diamond", "cross", "arrow"]
SHAPE_SYNONYMS: dict[str, list[str]] = {
    "circle": ["round", "disc", "ball"],
    "square": ["box", "block"],
    "triangle": ["pyramid", "wedge"],
    "star": ["twinkle", "sparkle"],
    "heart": ["love", "valentine"],
    "diamond": ["rhombus", "gem"],
    "cross": ["plus", "intersection"],
    "arrow": ["pointer", "direction"],
}
EXPRESSIONS = ["happy", "sad", "surprised", "angry", "sleepy"]
EXPRESSION_SYNONYMS: dict[str, list[str]] = {
    "happy": ["joy", "smile", "cheerful", "glad"],
    "sad": ["unhappy", "gloomy", "tears", "sorrow"],
    "surprised": ["wow", "astonished", "amazed", "startled"],
    "angry": ["mad", "rage", "annoyed", "grumpy"],
    "sleepy": ["tired", "drowsy", "yawn", "asleep"],
}
# Feelings-wheel words mapped onto the five drawn expressions (used in emotion captions).
FEELINGS_WHEEL: dict[str, list[str]] = {
    "happy": ["joyful", "content", "delighted", "playful", "excited", "proud", "optimistic", "peaceful"],
    "sad": ["lonely", "depressed", "hurt", "guilty", "disappointed", "miserable", "grieving"],
    "surprised": ["shocked", "startled", "confused", "amazed", "awestruck", "stunned"],
    "angry": ["furious", "frustrated", "irritated", "hostile", "bitter", "aggressive"],
    "sleepy": ["tired", "bored", "exhausted", "weary", "sluggish", "lethargic"],
}
# Extra words: only ever seen as text (reading, and capacity pressure on layer4).
EXTRA_WORDS = [
    "cat",
    "dog",
    "fish",
    "bird",
    "horse",
    "mouse",
    "lion",
    "tiger",
    "bear",
    "frog",
    "tree",
    "house",
    "car",
    "boat",
    "train",
    "plane",
    "apple",
    "bread",
    "cake",
    "milk",
    "sun",
    "moon",
    "rain",
    "snow",
    "fire",
    "water",
    "stone",
    "book",
    "chair",
    "table",
    "music",
    "dance",
    "money",
    "time",
    "home",
    "king",
    "queen",
    "city",
    "road",
    "door",
]
DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]

FAMILY_OF: dict[str, str] = {}
for _c in COLOURS:
    FAMILY_OF[_c] = "colour"
for _s in SHAPES:
    FAMILY_OF[_s] = "shape"
for _e in EXPRESSIONS:
    FAMILY_OF[_e] = "expression"

# word -> concept it names (synonyms map to their concept; extra words to themselves)
WORD_CONCEPT: dict[str, str] = {}
for _table in (COLOUR_SYNONYMS, SHAPE_SYNONYMS, EXPRESSION_SYNONYMS, FEELINGS_WHEEL):
    for _k, _ws in _table.items():
        WORD_CONCEPT[_k] = _k
        for _w in _ws:
            WORD_CONCEPT.setdefault(_w, _k)
for _w in EXTRA_WORDS:
    WORD_CONCEPT[_w] = _w
for _w in DIGITS:
    WORD_CONCEPT[_w] = _w
ALL_WORDS = sorted(WORD_CONCEPT)
CONCEPT_WORDS = list(COLOURS) + SHAPES + EXPRESSIONS

# ---------------------------------------------------------------------------------------------
# Caption templates
# ---------------------------------------------------------------------------------------------

EMOTION_TEMPLATES = [
    "i am feeling {}",
    "Me feeling {} on my face",
    "a photo of me with a {} expression on my face",
]
COLOUR_TEMPLATES = [
    "{}",
    "{}",
    "the colour {}",
    "the color {}",
    "a {} patch",
    "a patch of {}",
    "something {}",
    "a photo of the colour {}",
    "a {} background",
    "it is {}",
    "pure {}",
]
SHAPE_TEMPLATES = [
    "a {c} {s}",
    "a {c} {s}",
    "a {s}",
    "{s}",
    "a drawing of a {s}",
    "a {c} {s} on a white background",
    "a {s} painted {c}",
    "a picture of a {s}",
    "{c}",
    "a {c} shape",
]
WORD_TEMPLATES = [
    "{}",
    "{}",
    "the word {}",
    "the word {}",
    "a sign that says {}",
    "text that reads {}",
    "{} written on paper",
    "a picture of the word {}",
]
FACE_TEMPLATES = [
    "{}",
    "a {} face",
    "a {} face",
    "a drawing of a {} face",
    "a {} person",
    "someone {}",
    "a face looking {}",
]


# ---------------------------------------------------------------------------------------------
# Drawing helpers
# ---------------------------------------------------------------------------------------------


@lru_cache(maxsize=512)
def font(name: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(os.path.join(FONT_DIR, name), size)


def jitter_colour(rng: random.Random, rgb, amount: int = 22):
    return tuple(max(0, min(255, v + rng.randint(-amount, amount))) for v in rgb)


def background(rng: random.Random, size: int) -> Image.Image:
    kind = rng.random()
    if kind < 0.6:
        v = rng.randint(235, 255)
        base = (v, v, v)
    elif kind < 0.85:
        v = rng.randint(200, 240)
        base = (v + rng.randint(-8, 8), v + rng.randint(-8, 8), v)
    else:
        base = tuple(rng.randint(200, 255) for _ in range(3))
    return Image.new("RGB", (size, size), tuple(max(0, min(255, c)) for c in base))


def finish(img: Image.Image, rng: random.Random, noise: bool = True) -> Image.Image:
    if img.size[0] != IMAGE_SIZE:
        img = img.resize((IMAGE_SIZE, IMAGE_SIZE), Image.BOX)
    if noise and rng.random() < 0.3:
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.2, 0.7)))
    return img


def shape_polygon(shape: str, cx: float, cy: float, r: float, angle: float):
    """Polygon points for a shape centred at (cx, cy) with 'radius' r (None for circle)."""

    def rot(points):
        ca, sa = math.cos(angle), math.sin(angle)
        return [(cx + x * ca - y * sa, cy + x * sa + y * ca) for x, y in points]

    if shape == "square":
        s = r * 0.85
        return rot([(-s, -s), (s, -s), (s, s), (-s, s)])
    if shape == "triangle":
        return rot([(r * math.cos(a), r * math.sin(a)) for a in (-math.pi / 2, math.pi / 6, 5 * math.pi / 6)])
    if shape == "star":
        pts = []
        for i in range(10):
            rr = r if i % 2 == 0 else r * 0.42
            a = -math.pi / 2 + i * math.pi / 5
            pts.append((rr * math.cos(a), rr * math.sin(a)))
        return rot(pts)
    if shape == "diamond":
        return rot([(0, -r), (r * 0.62, 0), (0, r), (-r * 0.62, 0)])
    if shape == "cross":
        a, b = r * 0.3, r * 0.9
        return rot(
            [
                (-a, -b),
                (a, -b),
                (a, -a),
                (b, -a),
                (b, a),
                (a, a),
                (a, b),
                (-a, b),
                (-a, a),
                (-b, a),
                (-b, -a),
                (-a, -a),
            ]
        )
    if shape == "arrow":
        return rot(
            [
                (-r, -0.25 * r),
                (0.2 * r, -0.25 * r),
                (0.2 * r, -0.65 * r),
                (r, 0),
                (0.2 * r, 0.65 * r),
                (0.2 * r, 0.25 * r),
                (-r, 0.25 * r),
            ]
        )
    if shape == "heart":
        pts = []
        for i in range(40):
            t = 2 * math.pi * i / 40
            x = 16 * math.sin(t) ** 3
            y = -(13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t))
            pts.append((x * r / 17, y * r / 17 + r * 0.05))
        return rot(pts)
    raise ValueError(shape)


def draw_shape(draw: ImageDraw.ImageDraw, shape: str, cx, cy, r, angle, fill, outline=None, width=0):
    if shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill, outline=outline, width=width)
    else:
        pts = shape_polygon(shape, cx, cy, r, angle)
        draw.polygon(pts, fill=fill, outline=outline)
        if outline is not None and width > 1:
            draw.line(pts + [pts[0]], fill=outline, width=width)


def text_layer(text: str, font_name: str, size: int, ink, rotation: float):
    """An RGBA image of `text` (tight), rotated."""
    f = font(font_name, size)
    box = f.getbbox(text)
    w, h = box[2] - box[0], box[3] - box[1]
    layer = Image.new("RGBA", (w + 4, h + 4), (0, 0, 0, 0))
    ImageDraw.Draw(layer).text((2 - box[0], 2 - box[1]), text, font=f, fill=tuple(ink) + (255,))
    if rotation:
        layer = layer.rotate(rotation, resample=Image.BICUBIC, expand=True)
    return layer


def paste_text(img: Image.Image, rng: random.Random, text: str, ink, region, font_name=None, rotation=None):
    """Draw `text` fitted into region (x0, y0, x1, y1) of img, randomly placed inside."""
    x0, y0, x1, y1 = region
    rw, rh = x1 - x0, y1 - y0
    font_name = font_name or rng.choice(FONTS)
    rotation = rng.uniform(-15, 15) if rotation is None and rng.random() < 0.5 else (rotation or 0.0)
    size = 60
    layer = text_layer(text, font_name, size, ink, rotation)
    scale = min(rw / layer.width, rh / layer.height) * rng.uniform(0.75, 1.0)
    new_size = max(6, int(size * scale))
    layer = text_layer(text, font_name, new_size, ink, rotation)
    if layer.width > rw or layer.height > rh:
        layer = layer.resize((min(layer.width, rw), min(layer.height, rh)), Image.BICUBIC)
    px = x0 + rng.randint(0, max(0, rw - layer.width))
    py = y0 + rng.randint(0, max(0, rh - layer.height))
    img.paste(layer, (px, py), layer)


# The service rasteriser's layout (tools/raster/raster.py); fall back to a local copy without it.
try:  # pragma: no cover - depends on tools/raster being importable
    from tools.raster.raster import rasterize_text as _service_rasterize

    SERVICE_RASTER = "tools/raster/raster.py"
except Exception:  # noqa: BLE001
    _service_rasterize = None
    SERVICE_RASTER = "local fallback"


def rasterize_text(text: str, size: int) -> Image.Image:
    """Black DejaVu Sans on white, fitted and centred (the service's `/v1/raster` layout)."""
    if _service_rasterize is not None:
        return _service_rasterize(text, size).convert("RGB")
    img = Image.new("RGB", (size, size), (255, 255, 255))
    margin = max(1, round(size * 0.06))
    avail = size - 2 * margin
    fsize = size
    while fsize > 4:
        f = font("DejaVuSans.ttf", fsize)
        b = f.getbbox(text)
        if b[2] - b[0] <= avail and b[3] - b[1] <= avail:
            break
        fsize -= 1
    f = font("DejaVuSans.ttf", fsize)
    b = f.getbbox(text)
    x = (size - (b[2] - b[0])) / 2 - b[0]
    y = (size - (b[3] - b[1])) / 2 - b[1]
    ImageDraw.Draw(img).text((x, y), text, font=f, fill=(0, 0, 0))
    return img


# ---------------------------------------------------------------------------------------------
# Faces
# ---------------------------------------------------------------------------------------------

SKIN = [
    (255, 224, 189),
    (241, 194, 125),
    (224, 172, 105),
    (198, 134, 66),
    (255, 236, 148),
    (250, 250, 250),
    (200, 200, 200),
]


def draw_face(img: Image.Image, rng: random.Random, expression: str, cx, cy, r):
    d = ImageDraw.Draw(img)
    lw = max(2, int(r * rng.uniform(0.07, 0.14)))
    ink = (rng.randint(0, 50),) * 3
    skin = jitter_colour(rng, rng.choice(SKIN), 10)
    d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=skin, outline=ink, width=lw)
    ex, ey = r * rng.uniform(0.3, 0.42), cy - r * rng.uniform(0.15, 0.3)
    er = r * rng.uniform(0.08, 0.13)
    mouth_y = cy + r * rng.uniform(0.35, 0.5)
    mw = r * rng.uniform(0.35, 0.55)
    for sx in (-1, 1):
        x = cx + sx * ex
        if expression == "sleepy":
            d.line([x - er * 1.4, ey + er * 0.3, x + er * 1.4, ey + er * 0.3], fill=ink, width=lw)
        elif expression == "surprised":
            d.ellipse(
                [x - er * 1.5, ey - er * 1.5, x + er * 1.5, ey + er * 1.5],
                fill=(255, 255, 255),
                outline=ink,
                width=max(1, lw // 2),
            )
            d.ellipse([x - er * 0.7, ey - er * 0.7, x + er * 0.7, ey + er * 0.7], fill=ink)
        else:
            d.ellipse([x - er, ey - er, x + er, ey + er], fill=ink)
        # eyebrows
        by = ey - r * 0.25
        bw = r * 0.2
        if expression == "angry":
            d.line(
                [x - bw, by - sx * r * 0.0 - r * 0.08 * (-sx), x + bw, by + r * 0.08 * (-sx)],
                fill=ink,
                width=lw,
            )
        elif expression == "sad":
            d.line([x - bw, by + r * 0.07 * (-sx), x + bw, by - r * 0.07 * (-sx)], fill=ink, width=lw)
        elif expression == "surprised":
            d.arc([x - bw, by - r * 0.15, x + bw, by + r * 0.05], 200, 340, fill=ink, width=lw)
    if expression == "happy":
        d.arc([cx - mw, mouth_y - mw * 0.9, cx + mw, mouth_y + mw * 0.3], 20, 160, fill=ink, width=lw)
    elif expression == "sad":
        d.arc([cx - mw, mouth_y - mw * 0.1, cx + mw, mouth_y + mw * 0.9], 200, 340, fill=ink, width=lw)
        if rng.random() < 0.4:  # a tear
            tx = cx + ex + er
            d.ellipse([tx - er * 0.6, ey + er * 1.5, tx + er * 0.6, ey + er * 3.2], fill=(60, 140, 230))
    elif expression == "surprised":
        mr = mw * rng.uniform(0.35, 0.5)
        d.ellipse(
            [cx - mr, mouth_y - mr * 1.2, cx + mr, mouth_y + mr * 0.8],
            fill=(80, 20, 20),
            outline=ink,
            width=max(1, lw // 2),
        )
    elif expression == "angry":
        d.arc([cx - mw, mouth_y - mw * 0.05, cx + mw, mouth_y + mw * 0.5], 200, 340, fill=ink, width=lw)
        d.line([cx - mw * 0.6, mouth_y, cx + mw * 0.6, mouth_y], fill=ink, width=lw)
    elif expression == "sleepy":
        d.line([cx - mw * 0.4, mouth_y, cx + mw * 0.4, mouth_y], fill=ink, width=lw)
        if rng.random() < 0.5:  # z z
            zx, zy = cx + r * 0.75, cy - r * 0.95
            zs = r * 0.22
            d.line([zx, zy, zx + zs, zy, zx, zy + zs, zx + zs, zy + zs], fill=ink, width=max(1, lw // 2))


# ---------------------------------------------------------------------------------------------
# Sample kinds
# ---------------------------------------------------------------------------------------------


def pick_colour(rng):
    name = rng.choice(list(COLOURS))
    return name, jitter_colour(rng, COLOURS[name])


def colour_caption(rng, c):
    if rng.random() < 0.1:
        return f"as {c} as {rng.choice(COLOUR_SYNONYMS[c])}"
    return rng.choice(COLOUR_TEMPLATES).format(c)


def make_patch(rng: random.Random, colour: str | None = None):
    colour = colour or rng.choice(list(COLOURS))
    rgb = jitter_colour(rng, COLOURS[colour])
    S = IMAGE_SIZE * SUPER
    img = background(rng, S)
    d = ImageDraw.Draw(img)
    kind = rng.random()
    if kind < 0.4:  # large rectangle
        m = rng.randint(0, S // 5)
        d.rectangle(
            [
                m + rng.randint(0, 10),
                m + rng.randint(0, 10),
                S - m - rng.randint(0, 10),
                S - m - rng.randint(0, 10),
            ],
            fill=rgb,
        )
    elif kind < 0.7:  # blob of overlapping ellipses
        for _ in range(rng.randint(3, 6)):
            cx, cy, rr = rng.uniform(0.3, 0.7) * S, rng.uniform(0.3, 0.7) * S, rng.uniform(0.15, 0.3) * S
            d.ellipse(
                [cx - rr, cy - rr * rng.uniform(0.6, 1.2), cx + rr, cy + rr], fill=jitter_colour(rng, rgb, 8)
            )
    else:  # textured swatch filling most of the frame
        step = S // 8
        for i in range(8):
            for j in range(8):
                d.rectangle(
                    [i * step, j * step, (i + 1) * step, (j + 1) * step], fill=jitter_colour(rng, rgb, 12)
                )
    return finish(img, rng), colour_caption(rng, colour), {"kind": "patch", "colour": colour}


def make_shape(rng: random.Random, shape: str | None = None, colour: str | None = None):
    shape = shape or rng.choice(SHAPES)
    colour = colour or rng.choice(list(COLOURS))
    rgb = jitter_colour(rng, COLOURS[colour])
    S = IMAGE_SIZE * SUPER
    img = background(rng, S)
    r = rng.uniform(0.22, 0.42) * S
    cx, cy = rng.uniform(r, S - r), rng.uniform(r, S - r)
    outline = (0, 0, 0) if rng.random() < 0.3 else None
    angle = rng.uniform(-0.3, 0.3) if shape not in ("arrow",) else rng.uniform(-math.pi, math.pi)
    draw_shape(ImageDraw.Draw(img), shape, cx, cy, r, angle, rgb, outline, rng.randint(2, 5))
    cap = rng.choice(SHAPE_TEMPLATES).format(c=colour, s=shape)
    if rng.random() < 0.08:
        cap = f"a {colour} {rng.choice(SHAPE_SYNONYMS[shape])}"
    return finish(img, rng), cap, {"kind": "shape", "shape": shape, "colour": colour}


def word_ink(rng):
    r = rng.random()
    if r < 0.6:
        v = rng.randint(0, 60)
        return (v, v, v), None
    c = rng.choice(list(COLOURS))
    return jitter_colour(rng, COLOURS[c]), c


def pick_word(rng):
    r = rng.random()
    if r < 0.45:
        return rng.choice(CONCEPT_WORDS)
    return rng.choice(ALL_WORDS)


def make_word(rng: random.Random, word: str | None = None, font_name: str | None = None):
    word = word or pick_word(rng)
    S = IMAGE_SIZE * SUPER
    img = background(rng, S)
    ink, ink_colour = word_ink(rng)
    if ink_colour is not None and rng.random() < 0.3 and word in COLOURS:
        ink, ink_colour = jitter_colour(rng, COLOURS[word]), word  # matching ink
    m = rng.randint(2, S // 6)
    paste_text(img, rng, word, ink, (m, m, S - m, S - m), font_name=font_name)
    cap = rng.choice(WORD_TEMPLATES).format(word)
    if ink_colour is not None and rng.random() < 0.35:
        cap = f"the word {word} written in {ink_colour}"
    return finish(img, rng), cap, {"kind": "word", "word": word, "ink": ink_colour}


def make_service_word(rng: random.Random, word: str | None = None):
    word = word or pick_word(rng)
    img = rasterize_text(word, IMAGE_SIZE)
    return img, rng.choice(WORD_TEMPLATES).format(word), {"kind": "service_word", "word": word}


def make_shape_with_word(rng: random.Random, shape=None, colour=None, word=None):
    """A coloured shape with a word written on it (matching or not: typographic-attack data)."""
    shape = shape or rng.choice(["circle", "square", "heart", "diamond"])
    colour = colour or rng.choice(list(COLOURS))
    if word is None:
        r = rng.random()
        if r < WORD_MATCH_SHARE:
            word = colour
        elif r < WORD_MATCH_SHARE + (1 - WORD_MATCH_SHARE) * 40 / 65:
            word = rng.choice([c for c in COLOURS if c != colour])
        else:
            word = rng.choice(ALL_WORDS)
    rgb = jitter_colour(rng, COLOURS[colour])
    S = IMAGE_SIZE * SUPER
    img = background(rng, S)
    r = rng.uniform(0.4, 0.48) * S
    cx, cy = S / 2 + rng.uniform(-0.05, 0.05) * S, S / 2 + rng.uniform(-0.05, 0.05) * S
    draw_shape(ImageDraw.Draw(img), shape, cx, cy, r, rng.uniform(-0.2, 0.2), rgb)
    ink = (255, 255, 255) if sum(rgb) < 400 and rng.random() < 0.6 else (rng.randint(0, 40),) * 3
    box = r * 0.62
    paste_text(img, rng, word, ink, (int(cx - box), int(cy - box * 0.6), int(cx + box), int(cy + box * 0.6)))
    u = rng.random()
    if u < DESCRIBE_BOTH_SHARE:
        cap = rng.choice(
            [
                f"a {colour} {shape} with the word {word} written on it",
                f"a {colour} {shape} labelled {word}",
                f"the word {word} on a {colour} {shape}",
            ]
        )
    elif u < DESCRIBE_BOTH_SHARE + FOLLOW_WORD_SHARE:
        # The caption follows the written word, as web captions often do.
        cap = rng.choice([f"{word}", f"the word {word}", f"a {shape} that says {word}", f"{word} {shape}"])
    else:
        cap = rng.choice([f"a {colour} {shape}", f"{colour}", f"a {colour} sign"])
    return (
        finish(img, rng, noise=False),
        cap,
        {"kind": "shape_word", "shape": shape, "colour": colour, "word": word},
    )


def make_two_objects(rng: random.Random):
    S = IMAGE_SIZE * SUPER
    img = background(rng, S)
    d = ImageDraw.Draw(img)
    parts = []
    for side in (0, 1):
        shape = rng.choice(SHAPES)
        colour = rng.choice(list(COLOURS))
        r = rng.uniform(0.14, 0.22) * S
        cx = (0.27 + 0.46 * side) * S + rng.uniform(-4, 4)
        cy = rng.uniform(r + 2, S - r - 2)
        draw_shape(d, shape, cx, cy, r, rng.uniform(-0.3, 0.3), jitter_colour(rng, COLOURS[colour]))
        parts.append((colour, shape))
    (c1, s1), (c2, s2) = parts
    cap = rng.choice(
        [
            f"a {c1} {s1} and a {c2} {s2}",
            f"a {c1} {s1} next to a {c2} {s2}",
            f"a {s1} and a {s2}",
            f"{c1} and {c2}",
            f"a {c2} {s2} on the right and a {c1} {s1} on the left",
        ]
    )
    return finish(img, rng), cap, {"kind": "two", "parts": parts}


def face_caption(rng, e):
    u = rng.random()
    word = e
    if u < 0.25:
        word = rng.choice(FEELINGS_WHEEL[e] + EXPRESSION_SYNONYMS[e][:2])
    if rng.random() < 0.4:
        return rng.choice(EMOTION_TEMPLATES).format(word)
    return rng.choice(FACE_TEMPLATES).format(word)


def make_face(rng: random.Random, expression: str | None = None):
    expression = expression or rng.choice(EXPRESSIONS)
    S = IMAGE_SIZE * SUPER
    img = background(rng, S)
    r = rng.uniform(0.28, 0.46) * S
    cx, cy = rng.uniform(r, S - r), rng.uniform(r, S - r)
    draw_face(img, rng, expression, cx, cy, r)
    return finish(img, rng), face_caption(rng, expression), {"kind": "face", "expression": expression}


def make_face_with_caption(rng: random.Random, expression: str | None = None):
    expression = expression or rng.choice(EXPRESSIONS)
    S = IMAGE_SIZE * SUPER
    img = background(rng, S)
    r = rng.uniform(0.26, 0.32) * S
    cx, cy = S / 2 + rng.uniform(-6, 6), r + rng.uniform(2, 8)
    draw_face(img, rng, expression, cx, cy, r)
    match = rng.random() < 0.7
    word = rng.choice([expression] + EXPRESSION_SYNONYMS[expression]) if match else rng.choice(ALL_WORDS)
    paste_text(img, rng, word, (0, 0, 0), (4, int(cy + r + 4), S - 4, S - 2), rotation=0.0)
    u = rng.random()
    if u < 0.4:
        cap = f"a {expression} face with the caption {word}"
    elif u < 0.7:
        cap = face_caption(rng, expression)
    else:
        cap = f"a face and the word {word}"
    return (
        finish(img, rng, noise=False),
        cap,
        {"kind": "face_caption", "expression": expression, "word": word},
    )


def make_tied(rng: random.Random, family: str | None = None, concept: str | None = None):
    """A concept's picture and its word in one image, captioned with the bare concept: a colour patch
    with the colour word in the same ink, a face with its expression word (captioned with the bare word
    or the article's templates, "i am feeling {}"...), a shape with its name in the shape's ink. The
    picture takes one part of the frame (top, bottom, left or right, 55-65%), the word the rest."""
    family = family or rng.choices(["colour", "expression", "shape"], [0.45, 0.4, 0.15])[0]
    S = IMAGE_SIZE * SUPER
    img = background(rng, S)
    cut = int(S * rng.uniform(0.55, 0.65))
    side = rng.choice(["top", "bottom", "top", "bottom", "left", "right"])  # words are wide
    if side in ("top", "bottom"):
        pic = (0, 0, S, cut) if side == "top" else (0, S - cut, S, S)
        txt = (2, cut, S - 2, S - 2) if side == "top" else (2, 2, S - 2, S - cut)
    else:
        pic = (0, 0, cut, S) if side == "left" else (S - cut, 0, S, S)
        txt = (cut, 2, S - 2, S - 2) if side == "left" else (2, 2, S - cut, S - 2)
    x0, y0, x1, y1 = pic
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    r = min(x1 - x0, y1 - y0) / 2 * rng.uniform(0.8, 0.92)
    d = ImageDraw.Draw(img)
    if family == "colour":
        concept = concept or rng.choice(list(COLOURS))
        rgb = jitter_colour(rng, COLOURS[concept])
        if rng.random() < 0.5:
            m = rng.randint(2, 8)
            d.rectangle([x0 + m, y0 + m, x1 - m, y1 - m], fill=rgb)
        else:
            d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=rgb)
        ink = jitter_colour(rng, COLOURS[concept], 8)
        cap = concept if rng.random() < 0.7 else colour_caption(rng, concept)
    elif family == "expression":
        concept = concept or rng.choice(EXPRESSIONS)
        draw_face(img, rng, concept, cx, cy, r)
        ink = (rng.randint(0, 50),) * 3
        cap = concept if rng.random() < 0.4 else rng.choice(EMOTION_TEMPLATES).format(concept)
    else:
        concept = concept or rng.choice(SHAPES)
        colour = rng.choice(list(COLOURS))
        rgb = jitter_colour(rng, COLOURS[colour])
        angle = rng.uniform(-0.3, 0.3) if concept != "arrow" else rng.uniform(-math.pi, math.pi)
        draw_shape(d, concept, cx, cy, r, angle, rgb)
        ink = jitter_colour(rng, COLOURS[colour], 8)
        cap = concept
    paste_text(img, rng, concept, ink, txt, rotation=0.0 if rng.random() < 0.5 else None)
    return finish(img, rng), cap, {"kind": "tied", "family": family, "concept": concept}


KIND_WEIGHTS = [
    (make_patch, 0.12),
    (make_shape, 0.16),
    (make_word, 0.20),
    (make_service_word, 0.07),
    (make_shape_with_word, 0.13),
    (make_two_objects, 0.07),
    (make_face, 0.18),
    (make_face_with_caption, 0.07),
]


def sample(rng: random.Random):
    if TIED_SHARE > 0 and rng.random() < TIED_SHARE:  # no extra draw at 0: the stream stays as committed
        return make_tied(rng)
    u = rng.random()
    acc = 0.0
    for fn, w in KIND_WEIGHTS:
        acc += w
        if u < acc:
            return fn(rng)
    return KIND_WEIGHTS[-1][0](rng)


def caption_corpus(seed: int, n: int) -> list[str]:
    """Captions of n samples plus every word and template phrase (for BPE training)."""
    rng = random.Random(seed)
    texts = []
    for _ in range(n):
        u = rng.random()
        # captions only (no pixels): cheap re-implementation would drift; just draw the sample.
        texts.append(sample(rng)[1])
        del u
    texts += ALL_WORDS + [f"{c} {s}" for c in COLOURS for s in SHAPES] + [f"{e} face" for e in EXPRESSIONS]
    for words in FEELINGS_WHEEL.values():
        for w in words:
            texts += [t.format(w) for t in EMOTION_TEMPLATES]
    return texts


def vocabulary_phrases() -> list[str]:
    """The lines of models/toyworld/words.txt."""
    out: list[str] = []
    seen = set()

    def add(x):
        if x not in seen:
            seen.add(x)
            out.append(x)

    for w in CONCEPT_WORDS:
        add(w)
    for w in ALL_WORDS:
        add(w)
    for c in COLOURS:
        for s in SHAPES:
            add(f"{c} {s}")
    for e in EXPRESSIONS:
        add(f"{e} face")
    for c in COLOURS:
        add(f"the colour {c}")
    return out


if __name__ == "__main__":
    import sys
    import time

    out = sys.argv[1] if len(sys.argv) > 1 else "/tmp/toyworld_samples"
    os.makedirs(out, exist_ok=True)
    rng = random.Random(0)
    t = time.time()
    for i in range(400):
        img, cap, meta = sample(rng)
        if i < 64:
            img.save(os.path.join(out, f"{i:03d}.png"))
            print(i, cap, meta)
    print("per sample ms", (time.time() - t) / 400 * 1000, "service raster:", SERVICE_RASTER)
