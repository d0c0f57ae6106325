"""In which order should the planner run its steps? Measured, then checked on held-out images.

    python benchmarks/plan_order.py                   # writes m3restore/pipeline/step_order.json + docs
    python benchmarks/plan_order.py --limit 6         # quick look (does not write the policy)
    python benchmarks/plan_order.py --validate --seeds 5-9 --sets mcmaster,gopro,kodak24 --name PLAN_VALIDATION
                                                      # the shipped planner on fresh draws, pooled

The set: McMaster (500×500) and centre crops 512² of the GoPro GOPR0372 val sharp frames, none
trained on, each given two or three degradations from {motion blur or defocus, noise, JPEG,
low light}, seeded per image and applied in the order a camera applies them (blur, exposure,
sensor noise, compression).

1. **Order** (images with an even index): every permutation of each image's true steps is run
   with the shipped predictor, each step prompted with its true severity ("strong motion
   blur"). For every pair of steps the mean PSNR of the orders that run A before B is compared
   with B before A; steps are ranked by pairwise wins (Copeland). The ranking is written to
   ``m3restore/pipeline/step_order.json``, which the planner reads.
2. **Check** (odd indices, never used for the order): ``--plan auto`` (analyzer, measured
   order, verify/roll back), ``--plan none`` (one pass with the analyzer's prompt; the input
   unchanged when that prompt is empty, as ``restore`` does), and every fixed global order of
   the true steps, best and worst shown. PSNR / SSIM on 8-bit values.
3. **Overhead**: analyzer seconds / restore seconds of ``--plan auto`` on full 1280×720 GoPro
   frames.

``--validate`` derives nothing: the planner runs with the shipped order on every image of every
draw (``--seeds``), and the report adds the pooled differences with bootstrap 95 % intervals
(images resampled) and a row per draw. ``--sets`` adds Kodak24 (500×500) to the images.

Writes docs/PLAN_ORDER.md and docs/plan_order.json (``--name`` changes both).
"""

from __future__ import annotations

import argparse
import functools
import itertools
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
    bootstrap_ci,
    center_crop,
    list_images,
    machine_info,
    machine_lines,
    md_table,
    parse_names,
    read_rgb,
    weights_info,
    weights_lines,
    write_text,
)

# the physical order of a camera: optics/motion, exposure, sensor, compression
CAMERA = ("blur", "low-light", "noise", "jpeg")
RANGES = {  # natural parameters: blur length / radius in pixels, exposure factor, noise σ, JPEG quality
    "motion-blur": "motion-blur:9-31",
    "defocus": "defocus:2-6",
    "low-light": "low-light:0.15-0.4",
    "noise": "noise:10-35",
    "jpeg": "jpeg:15-50",
}


SETS = {  # name -> clean images; an image's index (its degradation seed) follows this order
    "mcmaster": lambda: [read_rgb(p) for p in list_images(DATA / "mcmaster")],
    "gopro": lambda: [center_crop(read_rgb(p), 512) for p in list_images(DATA / "gopro_GOPR0372" / "val" / "sharp")],
    "kodak24": lambda: [read_rgb(p) for p in list_images(DATA / "kodak24")],
}


def parse_seeds(text: str) -> list[int]:
    """``"5-9"`` or ``"0,3,4"``."""
    seeds: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.strip().partition("-")
        seeds += list(range(int(lo), int(hi or lo) + 1))
    return seeds


@functools.lru_cache(maxsize=2)
def clean_images(sets: tuple[str, ...]) -> tuple[tuple[str, np.ndarray], ...]:
    """(set name, image) of ``sets``, in the order of :data:`SETS`; read once for every draw."""
    return tuple((name, img) for name in SETS if name in sets for img in SETS[name]())


def build_set(limit: int | None, seed: int, sets: tuple[str, ...] = ("mcmaster", "gopro")) -> list[dict]:
    from m3restore.data.degrade import degrade

    cleans = clean_images(tuple(sets))
    items = []
    for i, (set_name, clean) in enumerate(cleans[:limit]):
        rng = np.random.default_rng([seed, i])
        kinds = list(rng.choice(CAMERA, size=int(rng.integers(2, 4)), replace=False))
        names = []
        for kind in CAMERA:  # camera order
            if kind in kinds:
                names.append(str(rng.choice(["motion-blur", "defocus"])) if kind == "blur" else kind)
        spec = "ordered:" + ",".join(RANGES[n] for n in names)
        degraded, record = degrade(clean, spec, np.random.default_rng([seed, i, 1]))
        items.append({"index": i, "seed": seed, "set": set_name, "clean": clean, "input": degraded, "record": record})
    return items


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default=None)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seeds", default=None, help="several draws, e.g. 5-9 or 0,3 (overrides --seed)")
    parser.add_argument("--sets", default="mcmaster,gopro", help=f"images, from {', '.join(SETS)}")
    parser.add_argument(
        "--validate", action="store_true", help="derive no order: check the shipped planner on every image"
    )
    parser.add_argument("--out", default=str(ROOT / "docs"))
    parser.add_argument("--no-policy", action="store_true", help="do not write m3restore/pipeline/step_order.json")
    parser.add_argument("--name", default="PLAN_ORDER", help="report file name (without .md)")
    args = parser.parse_args(argv)
    seeds = parse_seeds(args.seeds) if args.seeds else [args.seed]
    sets = tuple(parse_names(parser, "--sets", args.sets, SETS))

    from m3restore.metrics.quality import psnr, quantize, ssim
    from m3restore.pipeline.planner import LABEL_STEP, ORDER, STEPS, Planner
    from m3restore.pipeline.restore import load_pipeline

    info, weights = machine_info(), weights_info(args.weights)
    pipe = load_pipeline(args.weights, device="cpu", dtype="fp32", tile=0, auto_prompt=True)
    items = [item for seed in seeds for item in build_set(args.limit, seed, sets)]

    def score(out, clean):
        return psnr(quantize(out), quantize(clean)), ssim(quantize(out), quantize(clean))

    def run_order(item, order):
        img = item["input"]
        for step in order:
            words = ", ".join(
                a.severity + " " + _phrase(a.name) for a in item["record"] if LABEL_STEP.get(a.name) == step
            )
            img = pipe(img, words, auto_prompt=False)
        return img

    # 1. every permutation of every image's true steps
    started = time.time()
    for item in items:
        steps = sorted({LABEL_STEP[a.name] for a in item["record"]})
        item["steps"] = steps
        item["orders"] = {perm: score(run_order(item, perm), item["clean"]) for perm in itertools.permutations(steps)}
    order_items = [] if args.validate else [it for it in items if it["index"] % 2 == 0]
    check_items = items if args.validate else [it for it in items if it["index"] % 2 == 1]
    kinds = sorted({s for it in items for s in it["steps"]})
    pairs: dict[tuple[str, str], list[float]] = {}
    for item in order_items:
        for a, b in itertools.permutations(item["steps"], 2):
            before = [p for perm, (p, _) in item["orders"].items() if perm.index(a) < perm.index(b)]
            after = [p for perm, (p, _) in item["orders"].items() if perm.index(a) > perm.index(b)]
            pairs.setdefault((a, b), []).append(statistics.mean(before) - statistics.mean(after))
    advantage = {pair: statistics.mean(v) for pair, v in pairs.items()}
    wins = {k: sum(1 for (a, b), adv in advantage.items() if a == k and adv > 0) for k in kinds}
    margin = {k: sum(adv for (a, _), adv in advantage.items() if a == k) for k in kinds}
    order = sorted(kinds, key=lambda k: (-wins[k], -margin[k]))
    if args.validate:
        order = [s for s in ORDER if s in kinds]

    # 2. held-out check: auto vs none vs fixed global orders
    planner = Planner(pipe, order=tuple(order) + tuple(s for s in STEPS if s not in order))
    rows = {"plan auto": [], "plan none": []}
    fixed: dict[tuple[str, ...], list[tuple[float, float]]] = {}
    per_image = []
    for item in check_items:
        result = planner.run(item["input"], "auto")
        rows["plan auto"].append(score(result.image, item["clean"]))
        rows["plan none"].append(score(pipe(item["input"], None, auto_prompt=True), item["clean"]))
        per_image.append(
            {
                "index": item["index"],
                "seed": item["seed"],
                "set": item["set"],
                "true": [a.to_dict() for a in item["record"]],
                "found": result.report.findings,
                "steps": [(r.step, r.prompt, r.kept) for r in result.report.records],
                "none_prompt": pipe.last.prompt,
                "auto": rows["plan auto"][-1][0],
                "none": rows["plan none"][-1][0],
                "best_order": max(p for p, _ in item["orders"].values()),
                "orders": {",".join(perm): p for perm, (p, _) in item["orders"].items()},
            }
        )
        for perm in itertools.permutations(kinds):
            sub = tuple(s for s in perm if s in item["steps"])
            fixed.setdefault(perm, []).append(item["orders"][sub])
        rows.setdefault("input", []).append(score(item["input"], item["clean"]))
    fixed_mean = {perm: statistics.mean(p for p, _ in v) for perm, v in fixed.items()}
    best = max(fixed_mean, key=fixed_mean.get)
    worst = min(fixed_mean, key=fixed_mean.get)
    rows[f"best fixed order ({', '.join(best)})"] = fixed[best]
    rows[f"worst fixed order ({', '.join(worst)})"] = fixed[worst]
    rows[f"{'shipped' if args.validate else 'measured'} order ({', '.join(order)}), true steps"] = fixed[tuple(order)]

    # 3. overhead at 1280x720
    overhead = []
    for path in list_images(DATA / "gopro_GOPR0372" / "val" / "blur")[:3]:
        report = planner.run(read_rgb(path), "auto").report
        overhead.append((report.analyzer_seconds, report.restore_seconds, len(report.records)))
    elapsed = time.time() - started

    summary = {name: (statistics.mean(p for p, _ in v), statistics.mean(s for _, s in v)) for name, v in rows.items()}
    auto, none = summary["plan auto"][0], summary["plan none"][0]
    best_psnr = fixed_mean[best]
    auto_p = np.array([p for p, _ in rows["plan auto"]])
    diffs = {
        "auto − plan none": auto_p - np.array([p for p, _ in rows["plan none"]]),
        "auto − best fixed order": auto_p - np.array([p for p, _ in fixed[best]]),
    }
    dark = np.array([any(a.name == "low-light" for a in it["record"]) for it in check_items])
    diff_rows = [
        [name, f"{d.mean():+.2f}", *(f"[{lo:+.2f}, {hi:+.2f}]" for lo, hi in [bootstrap_ci(d)]),
         f"{d[dark].mean():+.2f} ({dark.sum()})" if dark.any() else "–",
         f"{d[~dark].mean():+.2f} ({(~dark).sum()})" if (~dark).any() else "–"]
        for name, d in diffs.items()
    ]  # fmt: skip
    seed_of = np.array([it["seed"] for it in check_items])
    draw_rows = [
        [seed, int((seed_of == seed).sum()), *(f"{d[seed_of == seed].mean():+.2f}" for d in diffs.values())]
        for seed in seeds
    ]
    pair_rows = [[f"{a} before {b}", f"{adv:+.2f}", len(pairs[(a, b)])] for (a, b), adv in sorted(advantage.items())]
    result_rows = [[name, f"{p:.2f}", f"{s:.4f}"] for name, (p, s) in summary.items()]
    analyzer_s = sum(a for a, _, _ in overhead)
    restore_s = sum(r for _, r, _ in overhead)
    text = "\n".join(
        [
            "# Planner: the measured step order and what planning gains",
            "",
            "Written by `benchmarks/plan_order.py`; every number is measured in the run described here.",
            "",
            *machine_lines(info),
            *weights_lines(weights),
            f"- {len(items)} images ({', '.join(sets)}; GoPro val frames as centre crops 512²), 2-3 degradations "
            f"each (seed{'s' if len(seeds) > 1 else ''} {args.seeds or args.seed}); "
            + (
                f"the shipped order, every image checked. Total time {elapsed / 60:.1f} min."
                if args.validate
                else f"order derived on the {len(order_items)} even-indexed images, checked on the "
                f"{len(check_items)} odd-indexed ones. Total time {elapsed / 60:.1f} min."
            ),
            "",
            *(
                []
                if args.validate
                else [
                    "## Pairwise order (derivation images)",
                    "",
                    "Mean PSNR of the orders that run the first step before the second, minus the reverse; "
                    "n = images with both steps.",
                    "",
                    md_table(["pair", "Δ PSNR (dB)", "n"], pair_rows),
                    "",
                    f"Measured order (Copeland ranking): **{' → '.join(order)}**.",
                    "",
                ]
            ),
            "## Held-out check",
            "",
            "Fixed orders run the image's *true* steps with their true severities as prompts (an oracle "
            "the planner does not have); `--plan auto` sees only what the analyzer finds.",
            "",
            md_table(["method", "PSNR", "SSIM"], result_rows),
            "",
            f"- auto − best fixed order: {auto - best_psnr:+.2f} dB (target ≥ −0.1)",
            f"- auto − plan none: {auto - none:+.2f} dB (target ≥ +0.5)",
            "",
            "Per image, paired: mean difference, its bootstrap 95 % interval (images resampled 2000 "
            "times, seed 0), and the mean over images with low light among their degradations and over the "
            "rest (count in brackets).",
            "",
            md_table(["difference (dB)", "mean", "95 % interval", "dark images", "other images"], diff_rows),
            "",
            *(
                [
                    "Per draw (the best fixed order is the pooled one above):",
                    "",
                    md_table(["seed", "images", *diffs], draw_rows),
                    "",
                ]
                if len(seeds) > 1
                else []
            ),
            "## Planning overhead at 1280×720",
            "",
            f"`--plan auto` on {len(overhead)} GoPro val frames: analyzer {analyzer_s:.2f} s, restoration "
            f"{restore_s:.2f} s, steps tried {[n for _, _, n in overhead]}: overhead "
            f"**{analyzer_s / max(restore_s, 1e-9) * 100:.1f} %** of restore time (target < 10 %).",
            "",
        ]
    )
    payload = {
        "machine": info,
        "weights": weights,
        "order": order,
        "pairwise_advantage_db": {f"{a}>{b}": v for (a, b), v in advantage.items()},
        "results": summary,
        "differences": {
            name: {
                "mean": float(d.mean()),
                "ci95": bootstrap_ci(d),
                "dark": float(d[dark].mean()) if dark.any() else None,
                "other": float(d[~dark].mean()) if (~dark).any() else None,
            }
            for name, d in diffs.items()
        },
        "seeds": seeds,
        "sets": list(sets),
        "overhead": overhead,
        "per_image": per_image,
    }
    write_text(Path(args.out) / f"{args.name}.md", text)
    write_text(Path(args.out) / f"{args.name.lower()}.json", json.dumps(payload, indent=2) + "\n")
    if args.limit is None and not args.no_policy:
        policy = {"order": order, "source": "benchmarks/plan_order.py; table in docs/PLAN_ORDER.md"}
        write_text(ROOT / "m3restore" / "pipeline" / "step_order.json", json.dumps(policy, indent=2) + "\n")
    print(text)
    return 0


def _phrase(name: str) -> str:
    from m3restore.data.degrade import DEGRADATIONS

    return DEGRADATIONS[name].phrase


if __name__ == "__main__":
    raise SystemExit(main())
