"""Should the planner tell the deblur specialist which kind of blur the analyzer found?

    python benchmarks/blur_kind.py [--seed 1] [--text 24] [--photos 24] [--out docs/blur_kind.json]

Three sets, each image saved as 8-bit values first, as a user's file would be:
- ``text``: rendered street signs, licence plates and document lines (the ``text`` evaluation
  set, seed ``--seed``) with motion blur of 9-21 px;
- ``defocus`` and ``motion-blur``: 256² top-left crops of the first ``--photos`` Kodak24 photos
  with that degradation at a random strength (seeded by ``--seed`` and the image).

On every image where the analyzer detects a blur (the planner plans a ``deblur`` step), the
installed deblur specialist is run told: the analyzer's words ("moderate defocus blur"), no words
at all, "moderate motion blur" and "moderate defocus blur". PSNR against the clean image.

The rule sweep: for each ``KIND_CONFIDENCE`` threshold, the mean PSNR per set when the analyzer's
kind is named only at or above that probability (below it the specialist is told nothing), as
``m3restore.pipeline.planner.step_prompt(..., specialist=True)`` does.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DATA, ROOT, list_images, machine_info, read_rgb, weights_info, write_text  # noqa: E402

PROMPTS = {"told": None, "none": "", "motion": "moderate motion blur", "defocus": "moderate defocus blur"}
THRESHOLDS = (0.0, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.01)


def build(seed: int, text: int, photos: int) -> list[tuple[str, str, np.ndarray, np.ndarray]]:
    """(set, name, 8-bit-valued input, clean) for every image."""
    from m3restore.data.degrade import degrade
    from m3restore.evaluation.datasets import open_dataset
    from m3restore.metrics.quality import quantize

    items = []
    pictures = open_dataset("text", count=text, seed=seed, degrade_spec="motion-blur:9-21")
    for i in range(len(pictures)):
        item = pictures.load(i)
        items.append(("text", item.name, quantize(item.input), item.target))
    paths = list_images(DATA / "kodak24")[:photos]
    for k, kind in enumerate(("defocus", "motion-blur")):
        for i, path in enumerate(paths):
            clean = read_rgb(path)[:256, :256]
            damaged, _ = degrade(clean, kind, np.random.default_rng([seed, k, i]))
            items.append((kind, path.stem, quantize(damaged), clean))
    return items


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default="m3restore-deblur", help="the deblur specialist")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--text", type=int, default=24, help="rendered text pictures")
    parser.add_argument("--photos", type=int, default=24, help="Kodak24 photos per kind of blur")
    parser.add_argument("--out", default=str(ROOT / "docs" / "blur_kind.json"))
    args = parser.parse_args()

    from m3restore.caption.degradation import analyze
    from m3restore.metrics.quality import psnr, quantize
    from m3restore.pipeline.planner import KIND_CONFIDENCE, STEPS, step_prompt, steps_for
    from m3restore.pipeline.restore import load_pipeline

    main_pipe = load_pipeline(None, device="cpu", dtype="fp32", tile=0)  # the analyzer the planner uses
    specialist = load_pipeline(args.weights, device="cpu", dtype="fp32", tile=0)
    rows = []
    for group, name, damaged, clean in build(args.seed, args.text, args.photos):
        analysis = analyze(main_pipe.analyzer, damaged)
        if "deblur" not in steps_for(analysis):
            continue
        found = max((f for f in analysis.detected if f.name in STEPS["deblur"].labels), key=lambda f: f.probability)
        row = {"set": group, "image": name, "kind": found.name, "probability": round(found.probability, 4)}
        row["words"] = step_prompt("deblur", analysis)[0]
        row["input"] = psnr(damaged, clean)
        for key, words in PROMPTS.items():
            out = specialist(damaged, row["words"] if words is None else words, auto_prompt=False)
            row[key] = psnr(quantize(out), clean)
        rows.append(row)
        print(json.dumps(row), flush=True)

    groups = sorted({r["set"] for r in rows})
    summary = {
        g: {"images": len(sub), **{k: statistics.mean(r[k] for r in sub) for k in ("input", *PROMPTS)}}
        for g in groups
        if (sub := [r for r in rows if r["set"] == g])
    }
    sweep = {
        f"named from p {t:.2f}": {
            g: statistics.mean(r["told"] if r["probability"] >= t else r["none"] for r in rows if r["set"] == g)
            for g in groups
        }
        for t in THRESHOLDS
    }
    payload = {
        "seed": args.seed,
        "kind_confidence": KIND_CONFIDENCE,
        "summary": summary,
        "sweep": sweep,
        "rows": rows,
        "machine": machine_info(),
        "weights": weights_info(args.weights),
    }
    write_text(Path(args.out), json.dumps(payload, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    print(json.dumps(sweep, indent=2))


if __name__ == "__main__":
    main()
