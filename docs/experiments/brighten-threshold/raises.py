"""Which planner verdicts does the brighten step's ``raises=("noise", "low-resolution")`` flip?

    python docs/experiments/brighten-threshold/raises.py dark 0.15,0.3      # Kodak24 + McMaster, that exposure
    python docs/experiments/brighten-threshold/raises.py mixed 10,11,12     # plan_order draws with low light

Every verdict of the shipped planner is also taken with brighten raising nothing (the rule
before session 48); an image where any verdict differs is restored again under that rule.
``dark``: every photo of Kodak24 and McMaster with only low light (seed ``[7, i]``), saved to 8
bits. ``mixed``: the images of ``benchmarks/plan_order.py``'s draws (McMaster, GoPro val,
Kodak24) whose damage includes low light. Writes ``raises_<mode>_<values>.json`` here.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent.parent / "benchmarks"))
from common import DATA, list_images, read_rgb  # noqa: E402
from plan_order import build_set  # noqa: E402

from m3restore.data.degrade import degrade  # noqa: E402
from m3restore.metrics.quality import psnr, quantize  # noqa: E402
from m3restore.pipeline import planner as P  # noqa: E402
from m3restore.pipeline.restore import load_pipeline  # noqa: E402

NEW = dict(P.STEPS)
OLD = {**NEW, "brighten": dataclasses.replace(NEW["brighten"], raises=())}
_verdict = P.Planner._verdict


def use(steps: dict) -> None:
    P.STEPS.clear()
    P.STEPS.update(steps)


def readings(analysis) -> dict[str, float]:
    """The analyzer's damage (probability x strength) per label, where above 0.02."""
    return {
        f.name: round(f.probability * f.strength, 3) for f in analysis.findings if f.probability * f.strength > 0.02
    }


def dark_items(exposures: list[float]):
    photos = [(s, p) for s in ("kodak24", "mcmaster") for p in list_images(DATA / s)]
    for exposure in exposures:
        for i, (_, path) in enumerate(photos):
            clean = read_rgb(path)
            dark, _ = degrade(clean, f"low-light:{exposure}", np.random.default_rng([7, i]))
            yield {"exposure": exposure, "image": path.name}, quantize(dark), clean


def mixed_items(seeds: list[int]):
    for seed in seeds:
        for item in build_set(None, seed, ("mcmaster", "gopro", "kodak24")):
            if any(a.name == "low-light" for a in item["record"]):
                yield {"seed": seed, "index": item["index"]}, item["input"], item["clean"]


def main() -> None:
    mode, values = sys.argv[1], sys.argv[2]
    items = (
        dark_items([float(v) for v in values.split(",")])
        if mode == "dark"
        else mixed_items([int(v) for v in values.split(",")])
    )
    pipe = load_pipeline(None, device="cpu", dtype="fp32", tile=0, auto_prompt=True)
    attempts: list[dict] = []

    def both(step, before, after, checks):
        use(OLD)
        old = _verdict(step, before, after, checks)
        use(NEW)
        new = _verdict(step, before, after, checks)
        if "brighten" in step:
            attempts.append(
                {"step": step, "old": old, "new": new, "before": readings(before), "after": readings(after)}
            )
        return new

    rows = []
    for key, degraded, clean in items:
        attempts.clear()
        P.Planner._verdict = staticmethod(both)
        new = P.Planner(pipe).run(degraded, "auto")
        row = {**key, "input": psnr(degraded, clean), "new": psnr(quantize(new.image), clean)}
        row["attempts"] = list(attempts)
        row["steps_new"] = [(r.step, r.kept) for r in new.report.records]
        row["old"] = row["new"]
        if any(a["old"] != a["new"] for a in attempts):
            P.Planner._verdict = staticmethod(_verdict)
            use(OLD)
            old = P.Planner(pipe).run(degraded, "auto")
            use(NEW)
            row.update(old=psnr(quantize(old.image), clean), steps_old=[(r.step, r.kept) for r in old.report.records])
        rows.append(row)
        print({k: (round(v, 2) if isinstance(v, float) else v) for k, v in row.items() if k != "attempts"}, flush=True)
    P.Planner._verdict = staticmethod(_verdict)
    out = HERE / f"raises_{mode}_{values.replace(',', '_')}.json"
    out.write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
    changed = [r for r in rows if r["old"] != r["new"]]
    print(f"{len(rows)} images, {len(changed)} changed; mean old {np.mean([r['old'] for r in rows]):.3f} dB, "
          f"new {np.mean([r['new'] for r in rows]):.3f} dB; wrote {out}")  # fmt: skip


if __name__ == "__main__":
    main()
