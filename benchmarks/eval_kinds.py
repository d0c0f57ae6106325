"""Defocus and low light on Kodak24, the damage kinds the quality tables leave out, through `m3restore eval`.

    .venv/bin/python benchmarks/eval_kinds.py          # -> docs/EVAL_KINDS.md + docs/eval_kinds.json

Each job is one `m3restore eval --dataset synthetic` run on Kodak24 (never trained on) with a
fixed, seeded degradation, into ``runs/eval-kinds/<job>``: told the damage in words (the
degradation record, "strong defocus blur"), or given no words (``--prompt ""``: the analyzer
decides, as `m3restore restore photo.png` does); a run folder already there is
continued with ``--resume``, so a finished job is only re-read. The report gives each
method's mean PSNR / SSIM (RGB, 8-bit output), its gain over the degraded input with a 95 %
bootstrap interval over images, and how many images it made better. ``<bundle>+plan`` rows are
the bundle with the planner and the installed specialists, which is what `m3restore restore`
runs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DATA, ROOT, bootstrap_ci, machine_info, machine_lines, md_table, write_text  # noqa: E402

from m3restore.evaluation.report import read_results  # noqa: E402

DEFOCUS_3, DEFOCUS_6 = "defocus, disk radius 3 px", "defocus, disk radius 6 px"
LOW_LIGHT = "low light: exposure 0.25, a random gamma 1-2 and Poisson-Gaussian sensor noise"
BLIND = " (no words)"
# (job, degradation spec, what it means, words: None = the record's, "" = none, bundles, baselines)
JOBS = (
    ("defocus_r3", "defocus:3", DEFOCUS_3, None,
     ("weights/m3restore-deblur", "weights/m3restore-base"), ("input", "wiener", "richardson-lucy")),
    ("defocus_r3_blind", "defocus:3", DEFOCUS_3 + BLIND, "", ("weights/m3restore-base",), ("input",)),
    ("defocus_r6", "defocus:6", DEFOCUS_6, None,
     ("weights/m3restore-deblur", "weights/m3restore-base"), ("input", "wiener", "richardson-lucy")),
    ("defocus_r6_blind", "defocus:6", DEFOCUS_6 + BLIND, "", ("weights/m3restore-base",), ("input",)),
    ("low_light_025", "low-light:0.25", LOW_LIGHT, None, ("weights/m3restore-base",), ("input",)),
    ("low_light_025_blind", "low-light:0.25", LOW_LIGHT + BLIND, "", ("weights/m3restore-base",), ("input",)),
)  # fmt: skip


def run_job(job: str, spec: str, words: str | None, weights, baselines, out: Path, seed: int) -> None:
    cmd = [
        sys.executable,
        "-m",
        "m3restore",
        "eval",
        "--dataset",
        "synthetic",
        "--root",
        os.path.relpath(DATA / "kodak24", ROOT),
    ]
    cmd += ["--degrade", spec, "--seed", str(seed), "--out", str(out)]
    if words is not None:
        cmd += ["--prompt", words]
    for w in weights:
        cmd += ["--weights", w]
    for b in baselines:
        cmd += ["--baseline", b]
    if (out / "run.json").exists():
        cmd.append("--resume")
    print(f"{job}: {' '.join(cmd[1:])}", file=sys.stderr, flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT)


def per_image(out: Path) -> dict[str, dict[str, float]]:
    """method -> image -> PSNR, from the run's results.csv."""
    table: dict[str, dict[str, float]] = defaultdict(dict)
    for row in read_results(out / "results.csv"):
        table[row["method"]][row["image"]] = row["psnr"]
    return table


def job_result(spec: str, meaning: str, out: Path) -> dict:
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    psnrs = per_image(out)
    images = sorted(psnrs["input"])
    base = np.array([psnrs["input"][i] for i in images])
    methods = {}
    for name, m in summary["methods"].items():
        vals = np.array([psnrs[name][i] for i in images])
        gain = vals - base
        lo, hi = bootstrap_ci(gain)
        methods[name] = {
            "description": m["description"],
            "psnr": round(float(vals.mean()), 3),
            "ssim": round(m["means"]["ssim"], 4),
            "gain": round(float(gain.mean()), 3),
            "gain_ci95": [round(lo, 3), round(hi, 3)],
            "better": int((gain > 0).sum()),
            "seconds": round(m["means"]["seconds"], 2),
        }
    return {
        "spec": spec,
        "meaning": meaning,
        "images": len(images),
        "run": os.path.relpath(out, ROOT),
        "methods": methods,
        "weights": summary.get("weights", []),
    }


def _gain(m: dict) -> str:
    lo, hi = m["gain_ci95"]
    return "–" if m["gain"] == lo == hi == 0 else f"{m['gain']:+.2f} [{lo:+.2f}, {hi:+.2f}]"


def report(results: dict, info: dict, seed: int) -> str:
    lines = [
        "# Defocus and low light on Kodak24 (`m3restore eval`)",
        "",
        "Written by `benchmarks/eval_kinds.py`. Kodak24 (24 photos, never trained on), each degraded with "
        f"the spec below, seed {seed} (`m3restore eval --dataset synthetic`). PSNR / SSIM on RGB after 8-bit "
        "rounding. Gain: mean over images of method minus input, with a 95 % bootstrap interval; better: "
        "images the method improved. `+plan` rows run the bundle with the planner and the installed "
        "specialists, as `m3restore restore` does. The models are told the damage in words (the degradation "
        'record, e.g. "strong defocus blur", as `--prompt` would), or, in sections marked (no words), '
        "nothing: then the analyzer decides what to fix. Seconds: mean per image on this machine, under whatever "
        "else ran; not a speed benchmark (see `docs/SPEED.md`).",
        "",
        *machine_lines(info),
    ]
    for res in results.values():
        rows = [
            [name, f"{m['psnr']:.2f}", f"{m['ssim']:.4f}", _gain(m), "–" if name == "input" else
             f"{m['better']}/{res['images']}", f"{m['seconds']:.1f}"]
            for name, m in res["methods"].items()
        ]  # fmt: skip
        lines += ["", f"## {res['meaning']} (`{res['spec']}`)", ""]
        lines.append(md_table(["method", "PSNR (dB)", "SSIM", "gain (dB)", "better", "seconds"], rows))
        lines += ["", *(f"- {name}: {m['description']}" for name, m in res["methods"].items())]
        shas = ", ".join(f"{w['name']} {w['predictor_sha256'][:12]}" for w in res["weights"])
        lines.append(f"- predictor sha256: {shas}; run folder `{res['run']}`.")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", default=str(ROOT / "runs" / "eval-kinds"), help="folder of the eval runs")
    parser.add_argument("--out", default=str(ROOT / "docs" / "EVAL_KINDS.md"))
    parser.add_argument("--json", default=str(ROOT / "docs" / "eval_kinds.json"))
    args = parser.parse_args()
    results = {}
    for job, spec, meaning, words, weights, baselines in JOBS:
        out = Path(args.runs) / job
        run_job(job, spec, words, weights, baselines, out, args.seed)
        results[job] = job_result(spec, meaning, out)
    info = machine_info()
    write_text(Path(args.out), report(results, info, args.seed))
    write_text(Path(args.json), json.dumps({"machine": info, "seed": args.seed, "jobs": results}, indent=1) + "\n")
    print(Path(args.out).read_text(encoding="utf-8"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
