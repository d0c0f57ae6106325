"""Global or local channel attention at test time? PSNR of the shipped predictor per pooling window.

    python benchmarks/attention_window.py [--weights B] [--windows 0,192,256,384] [--limit N]
        [--sets kodak_noise,gopro_val,gopro_train] [--name ATTENTION_WINDOW]

A predictor is trained on crops, where its channel attention's global pool saw one crop; on a
whole photo the same pool averages a far larger area. This script restores the same seeded
inputs with each window (input pixels; 0 = global pool) and reports mean PSNR on the chosen
sets: Kodak24 with Gaussian noise σ 25 (float, seeded, as in benchmarks/quality.py), the GoPro
GOPR0372 val pairs and its train pairs, both at full resolution; plus how far a 256-px tiled run
lands from the untiled one. Writes docs/NAME.md and docs/name.json (default: the all-in-one
bundle on Kodak24 σ 25 and the GoPro val pairs, docs/ATTENTION_WINDOW.md).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
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


def _kodak_noise(limit):
    images = (read_rgb(p) for p in list_images(DATA / "kodak24")[:limit])
    return [
        (np.clip(c + np.random.default_rng([0, i]).normal(0, 25 / 255, c.shape), 0, 1).astype(np.float32), c,
         "moderate noise")
        for i, c in enumerate(images)
    ]  # fmt: skip


def _gopro(split):
    def load(limit):
        sharp = list_images(DATA / "gopro_GOPR0372" / split / "sharp")[:limit]
        return [(read_rgb(p.parent.parent / "blur" / p.name), read_rgb(p), "motion blur") for p in sharp]

    return load


GOPRO_NOTE = 'blur/sharp pairs at 1280×720, prompt "motion blur"'
SETS = {  # key: (title, how it is made, loader(limit) -> [(degraded, clean, prompt)])
    "kodak_noise": ("Kodak24 σ 25", 'σ 25 float noise, seed [0, i], prompt "moderate noise"', _kodak_noise),
    "gopro_val": ("GoPro val (full frames)", GOPRO_NOTE, _gopro("val")),
    "gopro_train": ("GoPro train (full frames)", GOPRO_NOTE, _gopro("train")),
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default=None)
    parser.add_argument("--windows", default="0,192,256,384")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--sets", default="kodak_noise,gopro_val", help=f"comma list of {', '.join(SETS)}")
    parser.add_argument("--out", default=str(ROOT / "docs"))
    parser.add_argument("--name", default="ATTENTION_WINDOW", help="report file stem")
    args = parser.parse_args(argv)
    chosen = args.sets.split(",")
    if unknown := [s for s in chosen if s not in SETS]:
        parser.error(f"unknown set {unknown[0]!r}; choose from {', '.join(SETS)}")

    from m3restore.metrics.quality import psnr, quantize
    from m3restore.pipeline.restore import load_pipeline

    windows = [int(w) for w in args.windows.split(",")]
    pipe = load_pipeline(args.weights, device="cpu", dtype="fp32", tile=0)
    net = pipe.predictor
    sets = {SETS[key][0]: SETS[key][2](args.limit) for key in chosen}
    results: dict[str, dict] = {}
    for window in windows:
        net.set_attention_window(window)
        row = results.setdefault(str(window), {})
        for name, items in sets.items():
            scores, tile_gaps, seconds, pixels = [], [], 0.0, 0
            for k, (degraded, clean, prompt) in enumerate(items):
                t0 = time.perf_counter()
                out = pipe(degraded, prompt)
                seconds += time.perf_counter() - t0
                pixels += degraded.shape[0] * degraded.shape[1]
                scores.append(psnr(quantize(out), quantize(clean)))
                if k < 3:  # tiled vs untiled on the first images
                    tiled = pipe(degraded, prompt, tile=256)
                    tile_gaps.append(psnr(tiled, out))
            row[name] = {
                "psnr": statistics.mean(scores),
                "tiled_vs_untiled_db": statistics.mean(tile_gaps),
                "s_per_mp": seconds / pixels * 1e6,
            }
        print(window, row, flush=True)

    names = list(sets)
    header = [
        "window (px)", *[f"{n} PSNR" for n in names], *[f"{n}: tiled vs untiled (dB)" for n in names],
        f"time vs first window ({names[-1]})",
    ]  # fmt: skip
    base = results[str(windows[0])][names[-1]]["s_per_mp"]
    rows = [
        [("global" if w == "0" else w), *[f"{r[n]['psnr']:.2f}" for n in names],
         *[f"{r[n]['tiled_vs_untiled_db']:.1f}" for n in names], f"{r[names[-1]]['s_per_mp'] / base:.2f}×"]
        for w, r in results.items()
    ]  # fmt: skip
    info, weights = machine_info(), weights_info(args.weights)
    described = "; ".join(f"{title}, {len(sets[title])} images ({how})" for title, how, _ in (SETS[k] for k in chosen))
    text = "\n".join(
        [
            "# Channel attention: global or local pooling at test time",
            "",
            "Written by `benchmarks/attention_window.py`; every number is measured.",
            "",
            *machine_lines(info),
            *weights_lines(weights),
            f"- Sets: {described}; fp32, untiled.",
            f"- Command: `python benchmarks/attention_window.py {' '.join(sys.argv[1:] if argv is None else argv)}`",
            "- Tiled vs untiled: PSNR between a 256-px tiled run (64 px overlap) and the untiled run, "
            "first 3 images (higher = the tiles agree better). Time: seconds per megapixel of the untiled "
            "runs of the last set relative to the first window, same run (the machine was shared, so read "
            "it as a ratio).",
            "",
            md_table(header, rows),
            "",
        ]
    )
    write_text(Path(args.out) / f"{args.name}.md", text)
    write_text(
        Path(args.out) / f"{args.name.lower()}.json",
        json.dumps({"machine": info, "weights": weights, "results": results}, indent=2) + "\n",
    )
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
