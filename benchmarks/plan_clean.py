"""Does the default `--plan auto` leave good photos alone? Clean photos never trained on.

    python benchmarks/plan_clean.py [--weights B] [--name PLAN_CLEAN]

A restoration tool that is run on whole folders meets many pictures with nothing wrong with
them. On every clean image of Kodak24, McMaster (500×500) and the sharp GoPro GOPR0372 val
frames (1280×720, whole), none of them in any training set, this runs `--plan auto` and
`--plan none` (one pass with the analyzer's words, handed back unchanged when those are empty,
as ``restore`` does) and reports, per set: how many pictures each changed, the PSNR of the
output against the clean input (the input itself is the right answer here; unchanged counts as
no loss and is left out of the mean), the worst image, and the steps the planner kept.

Writes docs/PLAN_CLEAN.md and docs/plan_clean.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
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

SETS = {
    "Kodak24": DATA / "kodak24",
    "McMaster": DATA / "mcmaster",
    "GoPro val sharp (1280×720)": DATA / "gopro_GOPR0372" / "val" / "sharp",
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default=None)
    parser.add_argument("--limit", type=int, default=None, help="images per set (quick look)")
    parser.add_argument("--out", default=str(ROOT / "docs"))
    parser.add_argument("--name", default="PLAN_CLEAN", help="report file name (without .md)")
    args = parser.parse_args(argv)

    from m3restore.metrics.quality import psnr, quantize
    from m3restore.pipeline.planner import Planner
    from m3restore.pipeline.restore import load_pipeline

    info, weights = machine_info(), weights_info(args.weights)
    pipe = load_pipeline(args.weights, device="cpu", dtype="fp32", tile=0, auto_prompt=True)
    planner = Planner(pipe)
    started = time.time()
    per_image, rows = [], []
    for set_name, folder in SETS.items():
        results = []
        for path in list_images(folder)[: args.limit]:
            clean = read_rgb(path)
            auto = planner.run(clean, "auto")
            none = pipe(clean, None, auto_prompt=True)
            entry = {
                "set": set_name,
                "image": path.name,
                "found": [f["phrase"] for f in auto.report.findings],
                "kept": auto.report.kept_steps(),
                "auto_changed": not auto.report.passthrough,
                "auto_psnr": psnr(quantize(auto.image), quantize(clean)) if not auto.report.passthrough else None,
                "none_prompt": pipe.last.prompt,
                "none_changed": not pipe.last.passthrough,
                "none_psnr": psnr(quantize(none), quantize(clean)) if not pipe.last.passthrough else None,
            }
            results.append(entry)
        per_image += results
        rows.append(_row(set_name, results))
    rows.append(_row("all", per_image))
    elapsed = time.time() - started
    kept = Counter(step for e in per_image for step in e["kept"])
    text = "\n".join(
        [
            "# `--plan auto` on clean photos: what it changes when nothing is wrong",
            "",
            "Written by `benchmarks/plan_clean.py`; every number is measured in the run described here.",
            "",
            *machine_lines(info),
            *weights_lines(weights),
            f"- {len(per_image)} clean images, none used in training; total time {elapsed / 60:.1f} min.",
            "",
            "PSNR of the output against the clean input, over the changed images only (an unchanged "
            "image is a perfect answer); worst = the lowest of them.",
            "",
            md_table(
                [
                    "set",
                    "images",
                    "auto: changed",
                    "auto: PSNR",
                    "auto: worst",
                    "none: changed",
                    "none: PSNR",
                    "none: worst",
                ],
                rows,
            ),  # fmt: skip
            "",
            "Steps `--plan auto` kept: "
            + (", ".join(f"{step} ×{n}" for step, n in kept.most_common()) or "none (every image handed back)")
            + ".",
            "",
        ]
    )
    payload = {"machine": info, "weights": weights, "per_image": per_image}
    write_text(Path(args.out) / f"{args.name}.md", text)
    write_text(Path(args.out) / f"{args.name.lower()}.json", json.dumps(payload, indent=2) + "\n")
    print(text)
    return 0


def _row(name: str, results: list[dict]) -> list:
    cells = [name, len(results)]
    for mode in ("auto", "none"):
        changed = [e[f"{mode}_psnr"] for e in results if e[f"{mode}_changed"]]
        cells += [
            f"{len(changed)} / {len(results)}",
            f"{np.mean(changed):.2f}" if changed else "–",
            f"{min(changed):.2f}" if changed else "–",
        ]
    return cells


if __name__ == "__main__":
    raise SystemExit(main())
