"""Session 24's test of test-time tricks for the deblurring specialist on the 10 GoPro val frames.

Each whole frame restored with the prompt "motion blur" four ways: one pass (what `restore` does),
the output restored again, coarse to fine (restore a half-size copy, put its change back at full
size, restore that), and the half-size result alone upsampled. Prints PSNR per frame and the means.

    OMP_NUM_THREADS=1 .venv/bin/python docs/experiments/deblur-specialist/test_time_multiscale.py [BUNDLE]
"""

import sys
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "benchmarks"))
from common import DATA, list_images, read_rgb  # noqa: E402

from m3restore.metrics.quality import psnr, quantize  # noqa: E402
from m3restore.pipeline.restore import load_pipeline  # noqa: E402

PROMPT = "motion blur"


def half(x):
    return cv2.resize(x, (x.shape[1] // 2, x.shape[0] // 2), interpolation=cv2.INTER_AREA)


def full(x, like):
    return cv2.resize(x, (like.shape[1], like.shape[0]), interpolation=cv2.INTER_CUBIC)


def main():
    torch.set_num_threads(1)
    bundle = sys.argv[1] if len(sys.argv) > 1 else str(ROOT / "weights" / "m3restore-deblur")
    pipe = load_pipeline(bundle, device="cpu", dtype="fp32", tile=0, auto_prompt=False)
    root = DATA / "gopro_GOPR0372" / "val"
    scores = {k: [] for k in ("input", "one pass", "twice", "coarse to fine", "half size")}
    for blur, sharp in zip(list_images(root / "blur"), list_images(root / "sharp")):
        x, y = read_rgb(blur), quantize(read_rgb(sharp))
        x_half = half(x)
        once = pipe(x, PROMPT)
        small = pipe(x_half, PROMPT)
        lifted = np.clip(x + full(small, x) - full(x_half, x), 0, 1).astype(np.float32)
        for key, out in zip(scores, (x, once, pipe(once, PROMPT), pipe(lifted, PROMPT), full(small, x))):
            scores[key].append(psnr(quantize(np.clip(out, 0, 1)), y))
        print(blur.name, {k: round(v[-1], 2) for k, v in scores.items()}, flush=True)
    print({k: round(float(np.mean(v)), 2) for k, v in scores.items()})


if __name__ == "__main__":
    main()
