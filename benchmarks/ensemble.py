"""What `--ensemble N` buys: PSNR and time of the geometric self-ensemble against one pass.

    .venv/bin/python benchmarks/ensemble.py              # full run -> docs/ENSEMBLE.md + docs/ensemble.json
    .venv/bin/python benchmarks/ensemble.py --limit 3    # quick look (first 3 images per task)
    .venv/bin/python benchmarks/ensemble.py --weights weights/m3restore-deblur \
        --tasks kodak24_motion_blur,kodak24_defocus,gopro_val --out docs/ENSEMBLE_DEBLUR.md   # a specialist

For every image of each task the restore pipeline runs with ``ensemble`` 1, 2, 4 and 8, one
after the other (so the time ratios compare runs on the same image under the same load), with
the matching prompt and the degradations of ``benchmarks/quality.py`` (same seeds, same
images, same 8-bit scoring), untiled, fp32. Reported per task: mean PSNR per ensemble size, the
gain over one pass with a 95 % bootstrap interval over images, how many images got better, and
the wall time relative to one pass.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    ROOT,
    bootstrap_ci,
    machine_info,
    machine_lines,
    md_table,
    parse_names,
    read_rgb,
    replace_card_section,
    weights_info,
    weights_lines,
    write_text,
)
from quality import TASKS, load_items, score  # noqa: E402

from m3restore.pipeline.ensemble import SIZES  # noqa: E402

# (task key in quality.TASKS, degradation spec or "" for real pairs)
CASES = (
    ("kodak24_noise", "noise:15"),
    ("kodak24_noise", "noise:25"),
    ("kodak24_noise", "noise:50"),
    ("mcmaster_noise", "noise:25"),
    ("kodak24_jpeg", "jpeg:20"),
    ("kodak24_motion_blur", "motion-blur"),
    ("gopro_val", ""),
    ("kodak24_defocus", "defocus:3"),
)
TASK_KEYS = sorted({key for key, _ in CASES})
DEFAULT_TASKS = ("kodak24_noise", "mcmaster_noise", "kodak24_jpeg", "kodak24_motion_blur", "gopro_val")


def run_case(key: str, spec: str, pipes: dict, args, log) -> dict:
    from m3restore.data.degrade import degrade, describe

    task = next(t for t in TASKS if t.key == key)
    items = load_items(task, args.limit)
    psnr = {n: [] for n in pipes}
    seconds = {n: [] for n in pipes}
    for i, (name, clean_path, degraded_path) in enumerate(items):
        clean = read_rgb(clean_path)
        if degraded_path is not None:
            degraded, prompt = read_rgb(degraded_path), "motion blur"
        else:
            degraded, record = degrade(clean, spec, np.random.default_rng([args.seed, i]))
            prompt = describe(record)
        for n, pipe in pipes.items():
            t0 = time.perf_counter()
            out = pipe(degraded, prompt, seed=args.seed)
            seconds[n].append(time.perf_counter() - t0)
            psnr[n].append(score(out, clean)[0])
        log(f"  {name}: " + " / ".join(f"x{n} {psnr[n][-1]:.2f}" for n in pipes))
    base = np.array(psnr[1])
    result = {"task": task.title, "level": spec or "real blur", "images": [n for n, _, _ in items], "sizes": {}}
    for n in pipes:
        p = np.array(psnr[n])
        lo, hi = bootstrap_ci(p - base, n=10_000, seed=args.seed)
        result["sizes"][str(n)] = {
            "psnr": [round(float(v), 4) for v in p],
            "mean_psnr": round(float(p.mean()), 3),
            "gain": round(float((p - base).mean()), 3),
            "gain_ci95": [round(lo, 3), round(hi, 3)],
            "better": int((p > base + 1e-6).sum()),
            "seconds": [round(s, 3) for s in seconds[n]],
            "time_ratio": round(sum(seconds[n]) / sum(seconds[1]), 2),
        }
    return result


def report(results: list[dict], info: dict, winfo: dict, args, elapsed: float) -> str:
    header = ["task", "level", "images", "one pass (dB)"]
    header += [f"×{n}: gain dB [95 % CI], better, time" for n in SIZES[1:]]
    rows = []
    for r in results:
        s = r["sizes"]
        row = [r["task"], r["level"], str(len(r["images"])), f"{s['1']['mean_psnr']:.2f}"]
        for n in SIZES[1:]:
            e = s[str(n)]
            lo, hi = e["gain_ci95"]
            row.append(
                f"{e['gain']:+.2f} [{lo:+.2f}, {hi:+.2f}], {e['better']}/{len(r['images'])}, {e['time_ratio']:.1f}×"
            )
        rows.append(row)
    mean_gain = {n: np.mean([r["sizes"][str(n)]["gain"] for r in results]) for n in SIZES[1:]}
    lines = [
        "# Self-ensemble: `--ensemble N` against one pass",
        "",
        "Written by `benchmarks/ensemble.py`; every number is measured in the run described here.",
        "",
        *machine_lines(info),
        *weights_lines(winfo),
        f"- Seed {args.seed}; the degradations, prompts and 8-bit scoring of `benchmarks/quality.py`; untiled, "
        f"fp32; {args.threads} torch threads; {elapsed / 60:.1f} min in all.",
        "- Gain: mean over images of (PSNR with N views − PSNR of one pass); 95 % bootstrap interval over "
        "images. Better: images whose PSNR rose. Time: wall time of the N-view runs over the one-pass runs "
        "of the same images, same run.",
        "",
        md_table(header, rows),
        "",
        "Mean gain over the rows: " + ", ".join(f"×{n} {g:+.2f} dB" for n, g in mean_gain.items()) + ".",
        "",
    ]
    return "\n".join(lines)


CARD_HEADING = "## Self-ensemble at inference"


def card_section(results: list[dict], full_table: str) -> str:
    """The model card's section: one-pass PSNR and what ``--ensemble 8`` adds, per task."""
    rows = []
    for r in results:
        one, eight = r["sizes"]["1"], r["sizes"]["8"]
        lo, hi = eight["gain_ci95"]
        rows.append(
            [
                r["task"],
                r["level"],
                str(len(r["images"])),
                f"{one['mean_psnr']:.2f}",
                f"{eight['mean_psnr']:.2f}",
                f"{eight['gain']:+.2f} [{lo:+.2f}, {hi:+.2f}]",
                f"{eight['time_ratio']:.1f}×",
            ]
        )
    header = ["task", "level", "images", "one pass (dB)", "--ensemble 8 (dB)", "gain [95 % CI]", "time"]
    return "\n".join(
        [
            CARD_HEADING,
            "",
            "`m3restore restore --ensemble 8` averages the predictor over the eight flips and transposes of each",
            "tile. Measured with these weights by `benchmarks/ensemble.py` (same images, seeds and scoring as",
            f"the table above; full table with ×2 and ×4: `{full_table}`):",
            "",
            md_table(header, rows),
            "",
        ]
    )


def _repo_path(path: Path) -> str:
    """``path`` relative to the repository when it lies inside it, else as given."""
    resolved = path.resolve()
    return str(resolved.relative_to(ROOT)) if resolved.is_relative_to(ROOT) else str(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default=None, help="bundle (default: the shipped one)")
    parser.add_argument("--limit", type=int, default=None, help="first N images per task")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--tasks",
        default=",".join(DEFAULT_TASKS),
        help=f"comma-separated quality.py tasks to measure, from {TASK_KEYS}",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "ENSEMBLE.md")
    parser.add_argument(
        "--card",
        type=Path,
        default=None,
        help="model card to update (default: the shipped bundle's, full runs of its default tasks only)",
    )

    args = parser.parse_args()
    wanted = parse_names(parser, "--tasks", args.tasks, TASK_KEYS)

    import torch

    from m3restore.pipeline.restore import load_pipeline

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    pipes = {n: load_pipeline(args.weights, device="cpu", dtype="fp32", tile=0, ensemble=n) for n in SIZES}
    warm = np.random.default_rng(0).random((256, 256, 3), dtype=np.float32)
    for pipe in pipes.values():  # load the text encoder and warm the kernels outside the timings
        pipe(warm, "mild noise")
    results = []
    for key, spec in (c for c in CASES if c[0] in wanted):
        print(f"{key} {spec}", flush=True)
        results.append(run_case(key, spec, pipes, args, lambda line: print(line, flush=True)))
    elapsed = time.perf_counter() - started
    info, winfo = machine_info(), weights_info(args.weights)
    write_text(args.out, report(results, info, winfo, args, elapsed))
    data = {"machine": info, "weights": winfo, "seed": args.seed, "limit": args.limit, "results": results}
    write_text(args.out.with_name(args.out.stem.lower() + ".json"), json.dumps(data, indent=1) + "\n")
    full_default = not args.weights and set(wanted) == set(DEFAULT_TASKS)
    card = args.card or (ROOT / "weights" / "m3restore-base" / "MODEL_CARD.md" if full_default else None)
    if card is not None and not args.limit:
        replace_card_section(card, CARD_HEADING, card_section(results, _repo_path(args.out)))
        print(f"updated {card}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
