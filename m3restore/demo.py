"""Restore the bundled example images and show before/after: ``python -m m3restore.demo``.

Reads ``examples/examples.json`` (degraded input, clean ground truth and a prompt per image),
restores each input with the shipped weights the way ``m3restore restore --prompt`` does by
default (``--plan auto``: the analyzer's steps, each checked; one pass for a bundle without an
analyzer), writes ``<name>_restored.png`` and a side-by-side
``<name>_compare.png`` (input | m3restore | ground truth) to ``--out``, and prints the PSNR of
each input and result against the ground truth. Without a trained bundle it stops with one line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from PIL import Image as PILImage
from PIL import ImageDraw, ImageFont
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from m3restore.errors import DataError, M3RestoreError

console = Console(highlight=False, width=None if sys.stdout.isatty() else 120)  # no 80-column wrap in logs
errors = Console(stderr=True, highlight=False)
CAPTION = 22  # height of the caption bar above each panel, px


def default_examples() -> Path:
    """``examples/`` beside the package (source checkout, editable install), else in the cwd."""
    beside = Path(__file__).resolve().parent.parent / "examples"
    return beside if (beside / "examples.json").is_file() else Path.cwd() / "examples"


def load_examples(folder: Path) -> list[dict]:
    index = folder / "examples.json"
    try:
        entries = json.loads(index.read_text(encoding="utf-8"))
    except OSError:
        raise DataError(f"{index}: no examples index (pass --examples DIR)") from None
    except json.JSONDecodeError as error:
        raise DataError(f"{index}: not valid JSON ({error})") from None
    if not isinstance(entries, list) or not all(
        isinstance(e, dict) and "file" in e and "ground_truth" in e for e in entries
    ):
        raise DataError(f"{index}: expected a list of objects with 'file' and 'ground_truth'")
    return entries


def _font(size: int):
    try:
        return ImageFont.truetype("DejaVuSans.ttf", size)  # Pillow looks in the system font folders
    except OSError:
        try:
            return ImageFont.load_default(size=size)  # Pillow >= 10.1
        except TypeError:
            return ImageFont.load_default()


def compare(panels: list[tuple[np.ndarray, str]]) -> np.ndarray:
    """Panels side by side, each under a dark caption bar; float HxWx3 in, float (H+bar)x(n*W)x3 out."""
    height, width = panels[0][0].shape[:2]
    sheet = PILImage.new("RGB", (width * len(panels), height + CAPTION), (30, 30, 30))
    draw, font = ImageDraw.Draw(sheet), _font(14)
    for i, (pixels, caption) in enumerate(panels):
        sheet.paste(PILImage.fromarray(np.rint(np.clip(pixels, 0, 1) * 255).astype(np.uint8)), (i * width, CAPTION))
        draw.text((i * width + 6, 3), caption, font=font, fill=(240, 240, 240))
    return np.asarray(sheet, np.float32) / 255


def run(examples: Path, out: Path, weights: str | None, device: str) -> None:
    from m3restore.io import Image, read_image, write_image
    from m3restore.metrics.quality import psnr, quantize
    from m3restore.pipeline.restorer import load_restorer

    entries = load_examples(examples)
    restorer = load_restorer(weights, device=device)  # what `m3restore restore` does to each picture
    pipe = restorer.pipe
    if any(e.get("prompt") for e in entries):
        pipe.text_encoder  # noqa: B018 - load the text model now, so it is not timed with the first image
    table = Table(title=f"m3restore demo ({pipe.describe()['device']})", title_justify="left")
    for column in ("image", "prompt", "steps", "input dB", "restored dB", "gain", "seconds"):
        table.add_column(column, justify="left" if column in ("image", "prompt", "steps") else "right")
    gains = []
    for entry in entries:
        name = Path(entry["file"]).stem
        image = read_image(examples / entry["file"])
        truth = read_image(examples / entry["ground_truth"]).rgb()
        if truth.shape != image.rgb().shape:
            raise DataError(f"{entry['ground_truth']}: size differs from {entry['file']}")
        started = time.perf_counter()
        restored = restorer(image, entry.get("prompt", ""), seed=0)
        plan = restorer.last.plan
        steps = "one pass" if plan is None else ", ".join(plan.kept_steps()) or "unchanged"
        seconds = time.perf_counter() - started
        before, after = psnr(quantize(image.rgb()), truth), psnr(quantize(restored.rgb()), truth)
        gains.append(after - before)
        write_image(out / f"{name}_restored.png", restored, overwrite=True)
        sheet = compare(
            [
                (image.rgb(), f"input {before:.1f} dB"),
                (restored.rgb(), f"m3restore {after:.1f} dB"),
                (truth, "ground truth"),
            ]
        )
        write_image(out / f"{name}_compare.png", Image(sheet), overwrite=True)
        colour = "green" if after > before else "red"
        table.add_row(
            escape(name),
            escape(entry.get("prompt", "")),
            steps,
            f"{before:.2f}",
            f"{after:.2f}",
            f"[{colour}]{after - before:+.2f}[/]",
            f"{seconds:.1f}",
        )
    console.print(table)
    if gains:
        console.print(
            f"mean gain [bold]{np.mean(gains):+.2f} dB[/] over {len(gains)} images; "
            f"results and side-by-side comparisons in {out}/"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m m3restore.demo", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--weights",
        default=None,
        help="weights bundle: a folder or an installed name (default: the shipped m3restore-base)",
    )
    parser.add_argument("--out", type=Path, default=Path("out"), help="output folder (default: out)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    parser.add_argument("--examples", type=Path, default=None, help="folder holding examples.json")
    args = parser.parse_args(argv)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=FutureWarning)
        try:
            run(args.examples or default_examples(), args.out, args.weights, args.device)
        except M3RestoreError as error:
            errors.print(f"[bold red]error:[/] {escape(str(error))}", soft_wrap=True)
            return 1
        except KeyboardInterrupt:
            errors.print("[bold red]error:[/] interrupted", soft_wrap=True)
            return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
