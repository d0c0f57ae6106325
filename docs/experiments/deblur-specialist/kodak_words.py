"""Mean PSNR of deblurring bundles on Kodak24 with the benchmark's seeded synthetic motion blur
(`benchmarks/quality.py`, seed 0), prompted three ways: the words of each image's degradation
record (the benchmark's "matching prompt"), the plain "motion blur" of the GoPro training pairs,
and the analyzer's motion-blur phrase, the wording `m3restore restore` would give the deblur step.
The analyzer is the shipped all-in-one's. Usage, from the repository root:

    python docs/experiments/deblur-specialist/kodak_words.py BUNDLE [BUNDLE ...]
"""

import sys
from collections import Counter
from pathlib import Path

import numpy as np

from m3restore.caption.degradation import analyze
from m3restore.data.degrade import degrade, describe
from m3restore.io import read_image
from m3restore.metrics.quality import psnr, quantize
from m3restore.pipeline.restore import load_pipeline

KODAK = Path("../shared/data/kodak24")


def main(bundles: list[str]) -> None:
    analyzer = load_pipeline("weights/m3restore-base", device="cpu", dtype="fp32", tile=0).analyzer
    items = []
    for i, path in enumerate(sorted(KODAK.glob("*.png"))):
        clean = read_image(path).rgb()
        blurred, record = degrade(clean, "motion-blur", np.random.default_rng([0, i]))
        finding = analyze(analyzer, quantize(blurred)).get("motion-blur")
        items.append((clean, blurred, describe(record), finding.phrase))
    print(f"Record words: {dict(Counter(x[2] for x in items))}")
    print(
        f"Analyzer words: {dict(Counter(x[3] for x in items))}; the same as the record on "
        f"{sum(x[2] == x[3] for x in items)} of {len(items)}\n"
    )
    print('| bundle | record words | "motion blur" | analyzer words |')
    print("|---|---|---|---|")
    for bundle in bundles:
        pipe = load_pipeline(bundle, device="cpu", dtype="fp32", tile=0)
        scores: dict[str, list[float]] = {"record": [], "plain": [], "analyzer": []}
        for clean, blurred, record_words, analyzer_words in items:
            for key, prompt in (("record", record_words), ("plain", "motion blur"), ("analyzer", analyzer_words)):
                scores[key].append(psnr(quantize(pipe(blurred, prompt)), clean))
        cells = " | ".join(f"{np.mean(v):.3f}" for v in scores.values())
        print(f"| `{bundle}` ({len(items)} images) | {cells} |", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
