"""Mean PSNR of deblurring bundles on the 10 GoPro GOPR0372 validation frames, whole and
untiled, with the plain training prompt and with each severity word the analyzer can add.

`m3restore restore` prompts the deblur step with the analyzer's words ("mild motion blur" on these
frames); `benchmarks/quality.py` prompts with "motion blur", the prompt the GoPro training pairs
carry. Usage, from the repository root:

    python docs/experiments/deblur-specialist/prompt_words.py BUNDLE [BUNDLE ...]
"""

import sys
from pathlib import Path

import numpy as np

from m3restore.io import read_image
from m3restore.metrics.quality import psnr, quantize
from m3restore.pipeline.restore import load_pipeline

ROOT = Path("../shared/data/gopro_GOPR0372/val")
PROMPTS = ["motion blur", "mild motion blur", "moderate motion blur", "strong motion blur"]


def main(bundles: list[str]) -> None:
    frames = sorted((ROOT / "blur").glob("*.png"))
    print("| bundle | " + " | ".join(f'"{p}"' for p in PROMPTS) + " |")
    print("|---" * (len(PROMPTS) + 1) + "|")
    for bundle in bundles:
        pipe = load_pipeline(bundle, device="cpu", dtype="fp32", tile=0)
        scores: dict[str, list[float]] = {p: [] for p in PROMPTS}
        for frame in frames:
            blurred = read_image(frame).rgb()
            sharp = read_image(ROOT / "sharp" / frame.name).rgb()
            for prompt in PROMPTS:
                scores[prompt].append(psnr(quantize(pipe(blurred, prompt)), sharp))
        cells = " | ".join(f"{np.mean(scores[p]):.3f}" for p in PROMPTS)
        print(f"| `{bundle}` ({len(frames)} frames) | {cells} |", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
