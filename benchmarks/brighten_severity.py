"""Which low-light word should the planner's brighten step give the predictor?

    python benchmarks/brighten_severity.py [--weights B] [--seeds 5] [--out docs/brighten_severity.json]

The planner set of ``benchmarks/plan_order.py`` (McMaster and GoPro val crops, 2-3 kinds of
damage each, draws 0 to ``--seeds`` - 1). On every image where the analyzer plans a brighten
step, the planner's one joint pass is run with the analyzer's words for the other steps and the
low-light word replaced by each of: none (no brighten), "mild", "moderate", "strong low light".
PSNR against the clean image, reported separately for even images (where ``plan_order.py``
derives its order) and odd ones (where it checks), and compared with the analyzer's own word
and with the true severity's word.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, machine_info, weights_info  # noqa: E402
from plan_order import build_set  # noqa: E402

WORDS = ("none", "mild", "moderate", "strong")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default=None)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--out", default=str(ROOT / "docs" / "brighten_severity.json"))
    args = parser.parse_args()

    from m3restore.caption.degradation import analyze
    from m3restore.data.degrade import severity_word
    from m3restore.metrics.quality import psnr, quantize
    from m3restore.pipeline.planner import step_prompt, steps_for
    from m3restore.pipeline.restore import load_pipeline

    pipe = load_pipeline(args.weights, device="cpu", dtype="fp32", tile=0)
    rows = []
    for seed in range(args.seeds):
        for item in build_set(None, seed):
            analysis = analyze(pipe.analyzer, item["input"])
            steps = steps_for(analysis)
            if "brighten" not in steps:
                continue
            others = [step_prompt(s, analysis)[0] for s in steps if s != "brighten"]
            true = [a.strength for a in item["record"] if a.name == "low-light"]
            row = {
                "seed": seed,
                "index": item["index"],
                "analyzer_strength": round(analysis.get("low-light").strength, 4),
                "true_strength": round(true[0], 4) if true else 0.0,
            }
            for word in WORDS:
                prompt = ", ".join(([] if word == "none" else [f"{word} low light"]) + others)
                row[word] = psnr(quantize(pipe(item["input"], prompt)), quantize(item["clean"]))
            rows.append(row)
            print(json.dumps(row), flush=True)

    summary = {}
    for name, half in (("even (derivation) images", 0), ("odd (check) images", 1)):
        sub = [r for r in rows if r["index"] % 2 == half]
        if not sub:
            continue
        summary[name] = {
            "images": len(sub),
            **{f"always {w}": statistics.mean(r[w] for r in sub) for w in WORDS},
            "analyzer's word": statistics.mean(r[severity_word(r["analyzer_strength"])] for r in sub),
            "true severity's word": statistics.mean(
                r[severity_word(r["true_strength"])] if r["true_strength"] else r["none"] for r in sub
            ),
            "best word per image (oracle)": statistics.mean(max(r[w] for w in WORDS) for r in sub),
        }
    payload = {"summary": summary, "rows": rows, "machine": machine_info(), "weights": weights_info(args.weights)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(payload, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
