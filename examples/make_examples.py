"""Make the demo images in this folder: clean public-domain photos, degraded with m3restore's own degradations.

Run once from the repository root (the outputs are committed):

    .venv/bin/python examples/make_examples.py

The clean photos come from scikit-image's bundled sample data (``skimage.data``), using only the
ones its documentation marks public domain or CC0; the street sign is drawn here with Pillow.
Every degradation is seeded, so running this again gives byte-identical files.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from m3restore.data.degrade import degrade, describe

HERE = Path(__file__).resolve().parent
MAX_SIDE = 384  # long side in pixels; small enough that the PNGs stay well under 3 MB in total
FONT_DIRS = [Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/dejavu"), Path("/usr/share/fonts/TTF")]

SKIMAGE = "scikit-image sample data, skimage.data"
# name, clean source, spec, seed, prompt, source note. Prompts name the damage in the words the
# shipped model was trained on ("motion blur", "noise", "defocus blur", "jpeg compression artifacts"):
# subject words it never saw in training ("a cat, out of focus") can cost it dB.
EXAMPLES = [
    (
        "street_sign",
        "sign",
        "motion-blur:15",
        1,
        "street sign, motion blur",
        "rendered by make_examples.py with Pillow (DejaVu Sans font); CC0",
    ),
    (
        "coffee",
        "coffee",
        "noise:25",
        2,
        "noisy photo",
        f"{SKIMAGE}.coffee(): photo by Rachel Michetti, courtesy of Pikolo Espresso Bar; CC0",
    ),
    (
        "astronaut",
        "astronaut",
        "jpeg:15",
        3,
        "jpeg compression artifacts",
        f"{SKIMAGE}.astronaut(): NASA Great Images (Eileen Collins); public domain",
    ),
    ("chelsea", "chelsea", "defocus:4", 4, "defocus blur", f"{SKIMAGE}.chelsea(): photo by Stefan van der Walt; CC0"),
    (
        "rocket",
        "rocket",
        "ordered:motion-blur:11,noise:10",
        5,
        "motion blur and noise",
        f"{SKIMAGE}.rocket(): DSCOVR launch on Falcon 9, photo by SpaceX; public domain",
    ),
]


def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """DejaVu Sans Bold if installed, else Pillow's built-in font (scalable since Pillow 10.1)."""
    for folder in FONT_DIRS:
        if (folder / "DejaVuSans-Bold.ttf").is_file():
            return ImageFont.truetype(str(folder / "DejaVuSans-Bold.ttf"), size)
    return ImageFont.load_default(size=size)


def street_sign(width: int = 384, height: int = 288, scale: int = 3) -> np.ndarray:
    """A green road sign on a pole against a cloudy sky, drawn at ``scale``x and downsampled."""
    w, h = width * scale, height * scale
    rng = np.random.default_rng(0)
    t = np.linspace(0.0, 1.0, h)[:, None, None]
    sky = (1 - t) * np.array([70, 125, 200]) + t * np.array([190, 215, 240])  # deep blue to hazy horizon
    clouds = Image.fromarray((rng.random((h // 24, w // 24)) * 255).astype(np.uint8)).resize((w, h), Image.BICUBIC)
    clouds = np.asarray(clouds.filter(ImageFilter.GaussianBlur(12 * scale)), np.float64)[..., None] / 255
    cover = np.clip((clouds - 0.45) * 3.0, 0.0, 1.0) * (1.0 - 0.6 * t)
    canvas = Image.fromarray(np.clip(sky * (1 - cover) + 245 * cover, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    hills = (
        [(0, h)]
        + [
            (x, int(h * (0.80 - 0.04 * np.sin(x / w * 7.0) - 0.02 * np.sin(x / w * 23.0))))
            for x in range(0, w + 1, w // 64)
        ]
        + [(w, h)]
    )
    draw.polygon(hills, fill=(58, 92, 60))
    draw.rectangle([0, int(h * 0.9), w, h], fill=(96, 96, 92))  # road verge
    pole_x = int(w * 0.5)
    draw.rectangle([pole_x - 5 * scale, int(h * 0.3), pole_x + 5 * scale, h], fill=(128, 130, 134))
    draw.rectangle([pole_x - 5 * scale, int(h * 0.3), pole_x - 2 * scale, h], fill=(170, 172, 176))  # highlight
    for top, text, size in ((0.08, "MAIN ST", 46), (0.40, "EXIT 12 →", 34)):
        fnt = font(size * scale)
        left, upper, right, lower = draw.textbbox((0, 0), text, font=fnt)
        pad_x, pad_y = 18 * scale, 12 * scale
        bw, bh = right - left + 2 * pad_x, lower - upper + 2 * pad_y
        x0, y0 = pole_x - bw // 2, int(h * top)
        draw.rounded_rectangle([x0, y0, x0 + bw, y0 + bh], radius=10 * scale, fill=(0, 110, 62))
        draw.rounded_rectangle(
            [x0 + 4 * scale, y0 + 4 * scale, x0 + bw - 4 * scale, y0 + bh - 4 * scale],
            radius=8 * scale,
            outline=(245, 245, 245),
            width=3 * scale,
        )
        draw.text((x0 + pad_x - left, y0 + pad_y - upper), text, font=fnt, fill=(250, 250, 250))
    return np.asarray(canvas.resize((width, height), Image.LANCZOS), np.float32) / 255


def load_clean(source: str) -> np.ndarray:
    """A float32 HxWx3 image in [0, 1], long side at most MAX_SIDE."""
    if source == "sign":
        return street_sign()
    import skimage.data

    pil = Image.fromarray(getattr(skimage.data, source)())
    if max(pil.size) > MAX_SIDE:
        factor = MAX_SIDE / max(pil.size)
        pil = pil.resize((round(pil.width * factor), round(pil.height * factor)), Image.LANCZOS)
    return np.asarray(pil.convert("RGB"), np.float32) / 255


def save(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.clip(np.rint(image * 255), 0, 255).astype(np.uint8)).save(path, optimize=True)


def main() -> None:
    entries = []
    for name, source, spec, seed, prompt, note in EXAMPLES:
        clean = load_clean(source)
        degraded, record = degrade(clean, spec, np.random.default_rng(seed))
        save(HERE / "ground_truth" / f"{name}.png", clean)
        save(HERE / f"{name}.png", degraded)
        entries.append(
            {
                "file": f"{name}.png",
                "ground_truth": f"ground_truth/{name}.png",
                "prompt": prompt,
                "degradation": spec,
                "record": describe(record),
                "source": note,
            }
        )
        print(f"{name:12s} {clean.shape[1]}x{clean.shape[0]}  {spec:32s} {describe(record)}")
    (HERE / "examples.json").write_text(json.dumps(entries, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    total = sum(p.stat().st_size for p in HERE.rglob("*.png"))
    print(f"wrote {len(entries)} examples, {total / 1e6:.2f} MB of PNG")


if __name__ == "__main__":
    main()
