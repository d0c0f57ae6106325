"""Does `--plan auto` keep its deblur step on real blur? The GoPro val frames, whole.

    python benchmarks/plan_real_blur.py [--weights B] [--out docs/plan_real_blur.json]

For each of the 10 GoPro GOPR0372 validation frames (real motion blur, never trained on): the
steps `--plan auto` tried, the analyzer's damage before and after each, the step's direct checks
(``m3restore/pipeline/checks.py``), whether it was kept, and PSNR of auto and of one pass
(`--plan none`) against the sharp frame.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DATA, ROOT, list_images, machine_info, read_rgb, weights_info  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default=None)
    parser.add_argument("--out", default=str(ROOT / "docs" / "plan_real_blur.json"))
    args = parser.parse_args()

    from m3restore.metrics.quality import psnr, quantize
    from m3restore.pipeline.planner import Planner
    from m3restore.pipeline.restore import load_pipeline

    pipe = load_pipeline(args.weights, device="cpu", dtype="fp32", tile=0, auto_prompt=True)
    planner = Planner(pipe)
    root = DATA / "gopro_GOPR0372" / "val"
    frames = []
    for blur, sharp in zip(list_images(root / "blur"), list_images(root / "sharp")):
        x, y = read_rgb(blur), quantize(read_rgb(sharp))
        result = planner.run(x, "auto")
        frames.append(
            {
                "frame": blur.name,
                "steps": [
                    {
                        "step": r.step,
                        "damage_before": round(r.damage_before, 4),
                        "damage_after": round(r.damage_after, 4),
                        "checks": r.checks,
                        "kept": r.kept,
                    }
                    for r in result.report.records
                ],
                "auto_psnr": psnr(quantize(result.image), y),
                "none_psnr": psnr(quantize(pipe(x, None, auto_prompt=True)), y),
            }
        )
    kept = sum(any(step["kept"] for step in f["steps"]) for f in frames)
    summary = {
        "frames": len(frames),
        "frames_with_a_kept_step": kept,
        "auto_psnr": sum(f["auto_psnr"] for f in frames) / len(frames),
        "none_psnr": sum(f["none_psnr"] for f in frames) / len(frames),
    }
    payload = summary | {"per_frame": frames, "machine": machine_info(), "weights": weights_info(args.weights)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(payload, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
