"""End-to-end check of the CUDA path: fp32 / fp16 / bf16 restore of a 1280x720 frame.

Run on a CUDA machine:  python benchmarks/gpu_check.py --bundle BUNDLE --blur B.png --sharp S.png --out result.json
Reports per dtype: milliseconds per megapixel (median of 5 after warm-up), PSNR against the
sharp frame, PSNR of fp16/bf16 against fp32, non-finite outputs, and whether the fp16 NaN guard
redoes a poisoned tile in fp32.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch

from m3restore.metrics.quality import psnr, quantize
from m3restore.pipeline.restore import RestorePipeline
from m3restore.weights import open_bundle


def load(path):
    import cv2

    return cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB).astype(np.float32) / 255


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bundle", required=True)
    parser.add_argument("--blur", required=True)
    parser.add_argument("--sharp", required=True)
    parser.add_argument("--text-cache", default=None)
    parser.add_argument("--out", required=True)
    parser.add_argument("--device", default="cuda", help="cpu runs a dry check of this script (fp16 skipped)")
    args = parser.parse_args()
    cuda = args.device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    blur, sharp = load(args.blur), load(args.sharp)
    bundle = open_bundle(args.bundle)
    encoder = None
    if args.text_cache:
        from m3restore.text.encoder import CachedTextEncoder

        encoder = CachedTextEncoder.load(args.text_cache)
    result = {
        "device": torch.cuda.get_device_name() if cuda else "cpu",
        "torch": torch.__version__,
        "input_psnr": psnr(quantize(blur), sharp),
    }
    outputs = {}
    mp = blur.shape[0] * blur.shape[1] / 1e6
    for dtype in ("fp32", "fp16", "bf16") if cuda else ("fp32", "bf16"):
        pipe = RestorePipeline(bundle.load("predictor"), encoder, device=args.device, dtype=dtype, tile=0)
        prompt = "motion blur" if encoder is not None else None
        pipe(blur, prompt)
        times = []
        for _ in range(5):
            sync()
            t = time.perf_counter()
            out = pipe(blur, prompt)
            sync()
            times.append(time.perf_counter() - t)
        outputs[dtype] = out
        result[dtype] = {
            "ms_per_mp": round(1000 * statistics.median(times) / mp, 2),
            "psnr_vs_sharp": round(psnr(quantize(out), sharp), 3),
            "finite": bool(np.isfinite(out).all()),
            "fp32_fallback_tiles": pipe.last.fp32_fallback_tiles,
        }
        if dtype != "fp32":
            result[dtype]["psnr_vs_fp32"] = round(psnr(out, outputs["fp32"]), 2)
    # Poison the fp16 network: the guard must redo the tile in fp32 and match the fp32 result.
    pipe = RestorePipeline(
        bundle.load("predictor"), encoder, device=args.device, dtype="fp16" if cuda else "bf16", tile=512
    )
    real = pipe.predictor
    pipe.predictor = lambda x, text=None: real(x, text) * float("nan")
    out = pipe(blur, "motion blur" if encoder is not None else None)
    result["nan_guard"] = {
        "fallback_tiles": pipe.last.fp32_fallback_tiles,
        "finite": bool(np.isfinite(out).all()),
        "psnr_vs_fp32_untiled": round(psnr(out, outputs["fp32"]), 2),
    }
    print(json.dumps(result, indent=2))
    with open(args.out, "w") as handle:
        json.dump(result, handle, indent=2)


if __name__ == "__main__":
    main()
