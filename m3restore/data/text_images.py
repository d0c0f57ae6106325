"""Rendered text images with known strings: street signs, licence plates and document lines.

These are evaluation images for legibility: the ground-truth string of every picture is known,
so a restored picture can be read back with OCR and scored by its character error rate
(:mod:`m3restore.evaluation.ocr`). Everything is seeded: image ``i`` of ``text_images(count,
seed)`` depends only on ``(seed, i)``, so every run sees the same pictures.

Kinds (image ``i`` has kind ``KINDS[i % 3]``):

* ``sign``: a coloured street sign (white letters on a green, blue, red or brown panel with a
  white border) on a soft "photo" background; one or two lines of capitals, e.g. ``"MAIN ST"``
  or ``"NO PARKING"``. 256 x 160 pixels.
* ``plate``: a licence plate (black letters on a white or yellow plate) on a darker
  background, in one of three formats: ``"AB12 CDE"``, ``"ABC 1234"`` or ``"7ABC123"``
  (no I, O or Q, as on real plates). 256 x 96 pixels.
* ``document``: one line of printed text (5-7 common words, a capital and a full stop) in
  dark ink on off-white paper. 384 x 64 pixels.

Fonts: DejaVu Sans Bold / Sans Mono Bold / Serif from the usual system folders when present
(Debian's ``fonts-dejavu-core``), else Pillow's built-in scalable font
(``ImageFont.load_default(size)``, Pillow >= 10.1), else Pillow's tiny bitmap font. The font
actually used is recorded in :attr:`TextImage.font`.

The ground truth of a two-line sign is its lines joined by one space.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image as PILImage
from PIL import ImageDraw, ImageFilter, ImageFont

from m3restore.errors import ConfigError

__all__ = [
    "DEFAULT_TEXT_DEGRADATION",
    "KINDS",
    "TextImage",
    "find_font",
    "random_text",
    "render_text_image",
    "text_image",
    "text_images",
]

#: Kinds of picture, in the order image indices cycle through them.
KINDS: tuple[str, ...] = ("sign", "plate", "document")

#: What ``m3restore eval --dataset text`` applies when no ``--degrade`` is given.
DEFAULT_TEXT_DEGRADATION = "motion-blur:9-21"

FONT_DIRS = (
    Path("/usr/share/fonts/truetype/dejavu"),
    Path("/usr/share/fonts/dejavu"),
    Path("/usr/share/fonts/TTF"),
    Path("/usr/local/share/fonts"),
    Path("/Library/Fonts"),
)

# Font role -> DejaVu file.
_FONT_FILES = {
    "sign": "DejaVuSans-Bold.ttf",
    "plate": "DejaVuSansMono-Bold.ttf",
    "document": "DejaVuSerif.ttf",
}

_SIZES = {"sign": (256, 160), "plate": (256, 96), "document": (384, 64)}

_SIGN_WORDS = (
    "STOP", "EXIT", "ONE WAY", "NO PARKING", "NO ENTRY", "KEEP LEFT", "KEEP RIGHT", "DETOUR", "YIELD",
    "BUS STOP", "TAXI", "HOSPITAL", "PHARMACY", "HOTEL", "MUSEUM", "STATION", "CITY CENTRE", "PARKING",
    "SLOW", "SCHOOL", "LIBRARY", "AIRPORT", "HARBOUR", "MARKET",
)  # fmt: skip
_STREET_NAMES = (
    "MAIN", "OAK", "ELM", "HIGH", "PARK", "RIVER", "MILL", "CHURCH", "STATION", "KING", "QUEEN", "BRIDGE",
    "MAPLE", "CEDAR", "HILL", "LAKE", "NORTH", "SOUTH", "WEST", "EAST",
)  # fmt: skip
_STREET_TYPES = ("ST", "AVE", "RD", "LN", "WAY", "SQ")
_PLATE_LETTERS = "ABCDEFGHJKLMNPRSTUVWXYZ"  # no I, O, Q
_DOC_WORDS = (
    "the", "results", "of", "this", "report", "show", "that", "every", "sample", "was", "measured", "twice",
    "before", "after", "meeting", "please", "return", "signed", "form", "by", "next", "week", "invoice",
    "number", "total", "amount", "due", "on", "delivery", "our", "office", "will", "be", "closed", "during",
    "holiday", "season", "new", "model", "has", "better", "light", "and", "faster", "charging", "for",
    "details", "see", "page", "table", "section", "data", "are", "stored", "safely", "under", "local", "law",
)  # fmt: skip


@dataclass(frozen=True)
class TextImage:
    """One rendered picture: float32 ``HxWx3`` RGB in ``[0, 1]`` and the string it shows."""

    image: np.ndarray
    text: str
    kind: str
    name: str
    font: str


# --------------------------------------------------------------------------------------------
# Fonts
# --------------------------------------------------------------------------------------------


@cache
def find_font(role: str = "sign") -> Path | None:
    """The DejaVu font file for ``role`` (``sign``, ``plate`` or ``document``), or None."""
    wanted = _FONT_FILES.get(role)
    if wanted is None:
        raise ConfigError(f"unknown font role {role!r}; use one of {', '.join(_FONT_FILES)}")
    for folder in FONT_DIRS:
        for candidate in (wanted, "DejaVuSans-Bold.ttf", "DejaVuSans.ttf"):
            if (folder / candidate).is_file():
                return folder / candidate
    return None


def _load_font(role: str, size: int) -> tuple[ImageFont.ImageFont | ImageFont.FreeTypeFont, str]:
    path = find_font(role)
    if path is not None:
        try:
            return ImageFont.truetype(str(path), size), path.name
        except OSError:  # unreadable font file: fall through to Pillow's own
            pass
    try:
        return ImageFont.load_default(size=size), "pillow-default"
    except (TypeError, ImportError, OSError):  # Pillow < 10.1 or no FreeType
        return ImageFont.load_default(), "pillow-bitmap"


def _fit_font(role: str, lines: list[str], max_w: int, max_h: int, start: int):
    """The largest font size <= ``start`` at which every line fits ``max_w`` and all lines ``max_h``."""
    size = start
    while True:
        font, name = _load_font(role, size)
        boxes = [ImageDraw.Draw(PILImage.new("L", (1, 1))).textbbox((0, 0), line, font=font) for line in lines]
        width = max(b[2] - b[0] for b in boxes)
        height = sum(b[3] - b[1] for b in boxes) + int(0.3 * size) * (len(lines) - 1)
        if (width <= max_w and height <= max_h) or size <= 8 or name == "pillow-bitmap":
            return font, name, boxes
        size -= 2


# --------------------------------------------------------------------------------------------
# Content
# --------------------------------------------------------------------------------------------


def random_text(kind: str, rng: np.random.Generator) -> str:
    """A string for a picture of ``kind``, drawn from ``rng``."""
    if kind == "sign":
        if rng.random() < 0.5:
            return str(rng.choice(_SIGN_WORDS))
        return f"{rng.choice(_STREET_NAMES)} {rng.choice(_STREET_TYPES)}"
    if kind == "plate":
        letters = lambda n: "".join(rng.choice(list(_PLATE_LETTERS), n))  # noqa: E731
        digits = lambda n: "".join(str(d) for d in rng.integers(0, 10, n))  # noqa: E731
        style = int(rng.integers(3))
        if style == 0:
            return f"{letters(2)}{digits(2)} {letters(3)}"
        if style == 1:
            return f"{letters(3)} {digits(4)}"
        return f"{int(rng.integers(1, 10))}{letters(3)}{digits(3)}"
    if kind == "document":
        n = int(rng.integers(5, 8))
        words = [str(w) for w in rng.choice(_DOC_WORDS, n)]
        return " ".join(words).capitalize() + "."
    raise ConfigError(f"unknown text image kind {kind!r}; use one of {', '.join(KINDS)}")


def _wrap(kind: str, text: str) -> list[str]:
    """Signs with two or more words and more than 9 characters go on two lines."""
    words = text.split()
    if kind != "sign" or len(words) < 2 or len(text) <= 9:
        return [text]
    best = min(range(1, len(words)), key=lambda k: abs(len(" ".join(words[:k])) - len(" ".join(words[k:]))))
    return [" ".join(words[:best]), " ".join(words[best:])]


# --------------------------------------------------------------------------------------------
# Drawing
# --------------------------------------------------------------------------------------------


def _background(w: int, h: int, rng: np.random.Generator, dark: bool) -> PILImage.Image:
    """A smooth random colour field with faint texture, standing in for a photo's surroundings."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = rng.uniform(0.15, 0.45 if dark else 0.75, 3).astype(np.float32)
    slope = rng.uniform(-0.25, 0.25, (2, 3)).astype(np.float32)
    img = base + (xx[..., None] / w - 0.5) * slope[0] + (yy[..., None] / h - 0.5) * slope[1]
    fx, fy, phase = rng.uniform(1.0, 4.0), rng.uniform(1.0, 4.0), rng.uniform(0, 2 * math.pi)
    img += 0.06 * np.sin(2 * math.pi * (fx * xx / w + fy * yy / h) + phase)[..., None]
    coarse = rng.random((max(2, h // 16), max(2, w // 16), 3)).astype(np.float32)
    texture = np.asarray(
        PILImage.fromarray((coarse * 255).astype(np.uint8)).resize((w, h), PILImage.BICUBIC), np.float32
    )
    img += (texture / 255.0 - 0.5) * 0.12
    return PILImage.fromarray((np.clip(img, 0, 1) * 255).round().astype(np.uint8))


def _draw_lines(draw, lines, font, boxes, box, fill, align="center"):
    x0, y0, x1, y1 = box
    gap = int(0.3 * (boxes[0][3] - boxes[0][1]))
    total = sum(b[3] - b[1] for b in boxes) + gap * (len(lines) - 1)
    y = y0 + (y1 - y0 - total) / 2
    for line, b in zip(lines, boxes):
        lw = b[2] - b[0]
        x = x0 + (x1 - x0 - lw) / 2 if align == "center" else x0
        draw.text((x - b[0], y - b[1]), line, font=font, fill=fill)
        y += (b[3] - b[1]) + gap


def render_text_image(kind: str, text: str, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """Draw ``text`` as a picture of ``kind``; returns ``(float32 HxWx3 in [0, 1], font name)``.

    Colours, panel placement and background are drawn from ``rng``.
    """
    if kind not in _SIZES:
        raise ConfigError(f"unknown text image kind {kind!r}; use one of {', '.join(KINDS)}")
    w, h = _SIZES[kind]
    lines = _wrap(kind, text)
    if kind == "sign":
        img = _background(w, h, rng, dark=False)
        draw = ImageDraw.Draw(img)
        panels = [(0, 110, 60), (20, 70, 150), (170, 30, 30), (110, 70, 30)]
        colour = panels[int(rng.integers(len(panels)))]
        mx, my = int(rng.integers(10, 22)), int(rng.integers(12, 26))
        panel = (mx, my, w - mx, h - my)
        draw.rounded_rectangle(panel, radius=10, fill=colour, outline=(245, 245, 245), width=4)
        inner = (panel[0] + 12, panel[1] + 10, panel[2] - 12, panel[3] - 10)
        font, name, boxes = _fit_font("sign", lines, inner[2] - inner[0], inner[3] - inner[1], 40)
        _draw_lines(draw, lines, font, boxes, inner, (250, 250, 250))
    elif kind == "plate":
        img = _background(w, h, rng, dark=True)
        draw = ImageDraw.Draw(img)
        plate_colour = (245, 245, 240) if rng.random() < 0.5 else (250, 205, 40)
        mx, my = int(rng.integers(6, 14)), int(rng.integers(8, 16))
        plate = (mx, my, w - mx, h - my)
        draw.rounded_rectangle(plate, radius=6, fill=plate_colour, outline=(20, 20, 20), width=3)
        inner = (plate[0] + 10, plate[1] + 6, plate[2] - 10, plate[3] - 6)
        font, name, boxes = _fit_font("plate", lines, inner[2] - inner[0], inner[3] - inner[1], 48)
        _draw_lines(draw, lines, font, boxes, inner, (15, 15, 15))
    else:
        paper = np.array([rng.uniform(225, 250)] * 3) + rng.uniform(-6, 6, 3)
        img = PILImage.new("RGB", (w, h), tuple(int(c) for c in np.clip(paper, 0, 255)))
        shade = _background(w, h, rng, dark=False)
        img = PILImage.blend(img, shade, 0.08)
        draw = ImageDraw.Draw(img)
        inner = (12, 8, w - 12, h - 8)
        font, name, boxes = _fit_font("document", lines, inner[2] - inner[0], inner[3] - inner[1], 28)
        ink = tuple(int(v) for v in rng.integers(10, 50, 3))
        _draw_lines(draw, lines, font, boxes, inner, ink, align="left")
    # A touch of optical softness, as a real camera would give even for a sharp shot.
    img = img.filter(ImageFilter.GaussianBlur(0.5))
    return np.asarray(img, dtype=np.float32) / np.float32(255.0), name


def text_image(index: int, seed: int = 0, kinds: tuple[str, ...] = KINDS) -> TextImage:
    """Picture ``index`` of the seeded sequence: kind ``kinds[index % len(kinds)]``, content
    from ``np.random.default_rng([seed, index, 0])``."""
    if not kinds:
        raise ConfigError("text images need at least one kind")
    for k in kinds:
        if k not in KINDS:
            raise ConfigError(f"unknown text image kind {k!r}; use one of {', '.join(KINDS)}")
    kind = kinds[int(index) % len(kinds)]
    rng = np.random.default_rng([int(seed), int(index), 0])
    text = random_text(kind, rng)
    image, font = render_text_image(kind, text, rng)
    return TextImage(image=image, text=" ".join(_wrap(kind, text)), kind=kind, name=f"{kind}_{index:04d}", font=font)


def text_images(count: int, seed: int = 0, kinds: tuple[str, ...] = KINDS) -> list[TextImage]:
    """``count`` seeded pictures (see :func:`text_image`), kinds cycling through ``kinds``."""
    if int(count) < 1:
        raise ConfigError(f"--count must be at least 1, not {count}")
    return [text_image(i, seed, kinds) for i in range(int(count))]
