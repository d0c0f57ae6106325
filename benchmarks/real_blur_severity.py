"""Which severity word does the shipped predictor restore real blur best with?

    python benchmarks/real_blur_severity.py [--weights B] [--out docs/experiments/analyzer-leg3/real_blur_severity.json]

Real blurred frames teach the analyzer that blur is present but not how strong (their blur
length is unknown), so its severity on real blur is an extrapolation. This measures the word the
predictor itself prefers: every GoPro *training* pair (512-pixel centre crop) restored with
"motion blur" and with "mild", "moderate" and "strong motion blur", PSNR against the sharp frame.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DATA, ROOT, center_crop, list_images, machine_info, read_rgb, weights_info  # noqa: E402

WORDS = ("motion blur", "mild motion blur", "moderate motion blur", "strong motion blur")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default=None)
    parser.add_argument("--crop", type=int, default=512)
    parser.add_argument(
        "--out", default=str(ROOT / "docs" / "experiments" / "analyzer-leg3" / "real_blur_severity.json")
    )
    args = parser.parse_args()

    from m3restore.metrics.quality import psnr, quantize
    from m3restore.pipeline.restore import load_pipeline

    pipe = load_pipeline(args.weights, device="cpu", dtype="fp32", tile=0)
    root = DATA / "gopro_GOPR0372" / "train"
    scores: dict[str, list[float]] = {w: [] for w in WORDS}
    best: Counter = Counter()
    for blur, sharp in zip(list_images(root / "blur"), list_images(root / "sharp")):
        x, y = center_crop(read_rgb(blur), args.crop), quantize(center_crop(read_rgb(sharp), args.crop))
        frame = {w: psnr(quantize(pipe(x, w, auto_prompt=False)), y) for w in WORDS}
        for w, v in frame.items():
            scores[w].append(v)
        best[max(WORDS[1:], key=frame.get)] += 1
    result = {
        "frames": len(scores[WORDS[0]]),
        "mean_psnr": {w: sum(v) / len(v) for w, v in scores.items()},
        "best_severity_word": dict(best),
        "machine": machine_info(),
        "weights": weights_info(args.weights),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("frames", "mean_psnr", "best_severity_word")}, indent=2))


if __name__ == "__main__":
    main()
