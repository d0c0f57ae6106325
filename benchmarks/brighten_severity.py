"""Which low-light word should the planner's brighten step give the predictor?

    python benchmarks/brighten_severity.py [--weights B] [--seeds 0-4] [--out docs/brighten_severity.json]

The planner set of ``benchmarks/plan_order.py`` (McMaster and GoPro val crops, 2-3 kinds of
damage each, draws ``--seeds``). On every image where the analyzer detects low light, at any
strength, the planner's one joint pass is run with the analyzer's words for the other steps and
the low-light word replaced by each of: none (no brighten; the input unchanged when there is no
other step, as the planner does), "mild", "moderate", "strong low light". PSNR against the clean
image, reported separately for even images (where ``plan_order.py`` derives its order) and odd
ones (where it checks), and compared with the analyzer's own word and with the true severity's
word, on the images where the planner plans a brighten step.

The rule sweep: for each lowest analyzer strength that plans a brighten step and each way of
choosing the word (the analyzer's word capped at moderate, or always moderate), the mean PSNR
over every image with low light detected (images below the threshold get "none").
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, machine_info, weights_info, write_text  # noqa: E402
from plan_order import build_set, parse_seeds  # noqa: E402

WORDS = ("none", "mild", "moderate", "strong")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default=None)
    parser.add_argument("--seeds", default="0-4", help="draws of the planner set, e.g. 0-4")
    parser.add_argument("--sets", default="mcmaster,gopro", help="images of the planner set")
    parser.add_argument("--out", default=str(ROOT / "docs" / "brighten_severity.json"))
    args = parser.parse_args()

    from m3restore.caption.degradation import analyze
    from m3restore.data.degrade import severity_word
    from m3restore.metrics.quality import psnr, quantize
    from m3restore.pipeline.planner import STEPS, step_prompt, steps_for
    from m3restore.pipeline.restore import load_pipeline

    pipe = load_pipeline(args.weights, device="cpu", dtype="fp32", tile=0)
    rows = []
    sets = tuple(args.sets.split(","))
    for seed in parse_seeds(args.seeds):
        for item in build_set(None, seed, sets):
            analysis = analyze(pipe.analyzer, item["input"])
            if not analysis.get("low-light").detected:
                continue
            steps = steps_for(analysis)
            others = [step_prompt(s, analysis)[0] for s in steps if s != "brighten"]
            true = [a.strength for a in item["record"] if a.name == "low-light"]
            row = {
                "seed": seed,
                "index": item["index"],
                "analyzer_strength": round(analysis.get("low-light").strength, 4),
                "true_strength": round(true[0], 4) if true else 0.0,
                "planned": "brighten" in steps,
            }
            for word in WORDS:
                prompt = ", ".join(([] if word == "none" else [f"{word} low light"]) + others)
                out = item["input"] if not prompt else pipe(item["input"], prompt)
                row[word] = psnr(quantize(out), quantize(item["clean"]))
            rows.append(row)
            print(json.dumps(row), flush=True)

    summary = {}
    for name, half in (("even (derivation) images", 0), ("odd (check) images", 1)):
        sub = [r for r in rows if r["index"] % 2 == half and r.get("planned", True)]
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
    cap = STEPS["brighten"].max_severity
    sweep = {}
    for threshold in (0.0, 0.1, 0.15, 0.2, 0.25, 0.3, 0.33, 0.4):
        for rule in ("analyzer's word capped", "always " + cap):
            sweep[f"from {threshold:.2f}, {rule}"] = {
                name: statistics.mean(r[_word(r, threshold, rule, cap)] for r in rows if r["index"] % 2 == half)
                for name, half in (("even", 0), ("odd", 1))
                if any(r["index"] % 2 == half for r in rows)
            }
    payload = {
        "summary": summary,
        "sweep": sweep,
        "rows": rows,
        "machine": machine_info(),
        "weights": weights_info(args.weights),
    }
    write_text(Path(args.out), json.dumps(payload, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    print(json.dumps(sweep, indent=2))


def _word(row: dict, threshold: float, rule: str, cap: str) -> str:
    """The low-light word a rule gives ``row``'s image ("none": no brighten step)."""
    from m3restore.data.degrade import severity_word

    if row["analyzer_strength"] < threshold:
        return "none"
    if rule.startswith("always"):
        return cap
    return min(severity_word(row["analyzer_strength"]), cap, key=WORDS.index)


if __name__ == "__main__":
    main()
