"""Is the diffusion refiner worth its time? Steps 0, 2, 4, 8, 16 and 4-sample means, measured.

    python benchmarks/refiner.py                     # validation data of ../shared/data
    python benchmarks/refiner.py --limit 2           # quick look

Sets (never trained on): GoPro GOPR0372 val pairs (real blur, centre crops 384²), McMaster
with the predictor's mixed training degradations (seeded per image), and rendered signs, plates
and documents with ``motion-blur:9-21`` (``m3restore.data.text_images``, read with Tesseract).
Every configuration sees the same inputs, prompts and seed. Columns: PSNR / SSIM (8-bit),
the no-reference sharpness of ``m3restore.metrics.sharpness`` (the ground truth's own value is
given for scale), OCR character error rate on the text set, and seconds per megapixel on this
CPU (fp32, the same run, so the ratios between rows hold even on a shared machine).
Writes docs/REFINER.md, docs/refiner.json and the model card's "Diffusion refiner" section.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    DATA,
    ROOT,
    center_crop,
    list_images,
    machine_info,
    machine_lines,
    md_table,
    read_rgb,
    replace_card_section,
    weights_info,
    weights_lines,
    write_text,
)

MIXTURE = "motion-blur@0.4,defocus@0.2,gaussian-blur@0.1,noise:0-40@0.4,jpeg:10-90@0.35,low-light@0.12"
CONFIGS = [(0, 1), (2, 1), (4, 1), (8, 1), (16, 1), (4, 4), (8, 4)]  # (steps, samples)
CARD_HEADING = "## Diffusion refiner: what it measures"


def load_sets(limit: int | None, seed: int) -> dict[str, list[dict]]:
    from m3restore.data.degrade import degrade, describe
    from m3restore.evaluation.datasets import open_dataset

    n = limit or 10**9
    sets: dict[str, list[dict]] = {}
    gopro = DATA / "gopro_GOPR0372" / "val"
    sets["GoPro val (real blur)"] = [
        {"input": center_crop(read_rgb(gopro / "blur" / p.name), 384), "target": center_crop(read_rgb(p), 384),
         "prompt": "motion blur"}
        for p in list_images(gopro / "sharp")[: min(n, 8)]
    ]  # fmt: skip
    mixed = []
    for i, path in enumerate(list_images(DATA / "mcmaster")[: min(n, 8)]):
        clean = read_rgb(path)
        record = []
        draw = 0
        while not record:  # at least one degradation, as in benchmarks/text_effect.py
            degraded, record = degrade(clean, MIXTURE, np.random.default_rng([seed, i, draw]))
            draw += 1
        mixed.append({"input": degraded, "target": clean, "prompt": describe(record)})
    sets["McMaster mixed"] = mixed
    text = open_dataset("text", count=min(n, 8), seed=seed, degrade_spec="motion-blur:9-21")
    sets["rendered text, motion blur"] = [
        {"input": it.input, "target": it.target, "prompt": it.prompt, "text": it.text}
        for it in (text.load(i) for i in range(len(text.names)))
    ]
    return sets


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default=None, help="bundle with a refiner (default: the shipped one)")
    parser.add_argument("--sampler", default="dpm-solver++")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(ROOT / "docs"))
    parser.add_argument("--no-card", action="store_true", help="do not update the model card")
    args = parser.parse_args(argv)

    from m3restore.evaluation.ocr import TesseractReader, cer, tesseract_availability
    from m3restore.metrics.quality import psnr, quantize, ssim
    from m3restore.metrics.sharpness import sharpness
    from m3restore.pipeline.restore import RestorePipeline, Sampling

    info, weights = machine_info(), weights_info(args.weights)
    sets = load_sets(args.limit, args.seed)
    ocr_state = tesseract_availability()
    reader = TesseractReader() if ocr_state.available else None
    pipe = RestorePipeline.from_bundle(args.weights, device="cpu", dtype="fp32", tile=0, sampling=Sampling(steps=1))
    first = next(iter(sets.values()))[0]
    pipe(first["input"], first["prompt"], seed=args.seed)  # warm-up: loads the text encoder, untimed
    results: dict[str, dict] = {}
    started = time.time()
    for set_name, items in sets.items():
        rows = results.setdefault(set_name, {})
        truth_sharp = statistics.mean(sharpness(it["target"]) for it in items)
        rows["ground truth"] = {"sharpness": truth_sharp}
        rows["input"] = _score(items, [it["input"] for it in items], None, psnr, ssim, quantize, sharpness, reader, cer)
        for steps, samples in CONFIGS:
            pipe.sampling = Sampling(steps=steps, sampler=args.sampler, samples=samples)
            outs, seconds, pixels = [], 0.0, 0
            for it in items:
                t0 = time.perf_counter()
                outs.append(pipe(it["input"], it["prompt"], seed=args.seed))
                seconds += time.perf_counter() - t0
                pixels += it["input"].shape[0] * it["input"].shape[1]
            label = f"{steps} steps" + (f" × {samples} samples (mean)" if samples > 1 else "")
            if steps == 0:
                label = "predictor only (0 steps)"
            rows[label] = _score(items, outs, seconds / pixels * 1e6, psnr, ssim, quantize, sharpness, reader, cer)
            print(set_name, label, rows[label], flush=True)
    elapsed = time.time() - started

    sections, verdicts = [], []
    for set_name, rows in results.items():
        has_ocr = any("cer" in r for r in rows.values())
        header = ["", "PSNR", "SSIM", "sharpness", *(["OCR CER"] if has_ocr else []), "s / MP", "× predictor time"]
        base_time = rows["predictor only (0 steps)"]["s_per_mp"]
        table_rows = []
        for label, r in rows.items():
            if label == "ground truth":
                table_rows.append([label, "", "", f"{r['sharpness']:.2f}", *([""] if has_ocr else []), "", ""])
                continue
            time_cells = (
                ["", ""] if r["s_per_mp"] is None else [f"{r['s_per_mp']:.2f}", f"{r['s_per_mp'] / base_time:.1f}"]
            )
            table_rows.append(
                [label, f"{r['psnr']:.2f}", f"{r['ssim']:.4f}", f"{r['sharpness']:.2f}",
                 *([f"{r['cer']:.3f}" if "cer" in r else ""] if has_ocr else []), *time_cells]
            )  # fmt: skip
        sections += [f"### {set_name} ({len(sets[set_name])} images)", "", md_table(header, table_rows), ""]
        verdicts.append(_verdict(set_name, rows))

    worth = any(v[1] for v in verdicts)
    text = "\n".join(
        [
            "# Diffusion refiner: what each step buys",
            "",
            "Written by `benchmarks/refiner.py`; every number is measured in the run described here.",
            "",
            *machine_lines(info),
            *weights_lines(weights),
            f"- Sampler {args.sampler}, seed {args.seed}, fp32 on the CPU, no tiling; the prompt is the "
            'degradation in words ("motion blur" for GoPro), the same for every row.',
            f"- {ocr_state.message}." if reader else f"- {ocr_state.message}; no OCR column.",
            f"- Total time {elapsed / 60:.1f} min.",
            "",
            *sections,
            "## Verdict",
            "",
            *[f"- {line}" for line, _ in verdicts],
            "",
            "The refiner is worth shipping by the issue's rule (beats the predictor alone on the 4-sample "
            "PSNR, the OCR error rate, or sharpness at equal or better PSNR on some set): "
            f"**{'yes' if worth else 'no'}**.",
            "",
        ]
    )
    out = Path(args.out)
    write_text(out / "REFINER.md", text)
    payload = {"machine": info, "weights": weights, "results": results, "worth_shipping": worth}
    write_text(out / "refiner.json", json.dumps(payload, indent=2) + "\n")
    if not args.no_card:
        card = Path(weights["path"]) / "MODEL_CARD.md"
        body = text.split("\n", 2)[2].replace("### ", "#### ").replace("## Verdict", "### Verdict")
        replace_card_section(card, CARD_HEADING, f"{CARD_HEADING}\n\n{body}")
    print(text)
    return 0


def _score(items, outs, s_per_mp, psnr, ssim, quantize, sharpness, reader, cer) -> dict:
    q = [quantize(np.clip(o, 0, 1)) for o in outs]
    row = {
        "psnr": statistics.mean(psnr(o, quantize(it["target"])) for o, it in zip(q, items)),
        "ssim": statistics.mean(ssim(o, quantize(it["target"])) for o, it in zip(q, items)),
        "sharpness": statistics.mean(sharpness(o) for o in q),
        "s_per_mp": s_per_mp,
    }
    if reader is not None and all("text" in it for it in items):
        row["cer"] = statistics.mean(cer(reader(o), it["text"], ignore_case=True) for o, it in zip(q, items))
    return row


def _verdict(set_name: str, rows: dict) -> tuple[str, bool]:
    base = rows["predictor only (0 steps)"]
    refined = {k: v for k, v in rows.items() if k not in ("ground truth", "input", "predictor only (0 steps)")}
    best_psnr = max(refined, key=lambda k: refined[k]["psnr"])
    gains = []
    mean_rows = {k: v for k, v in refined.items() if "samples" in k}
    if mean_rows and max(v["psnr"] for v in mean_rows.values()) > base["psnr"]:
        gains.append("higher PSNR of the sample mean")
    if "cer" in base and min(v.get("cer", 9) for v in refined.values()) < base["cer"]:
        gains.append("lower OCR error")
    if any(v["sharpness"] > base["sharpness"] and v["psnr"] >= base["psnr"] for v in refined.values()):
        gains.append("sharper at equal or better PSNR")
    delta = refined[best_psnr]["psnr"] - base["psnr"]
    line = f"{set_name}: best refined row {best_psnr} ({delta:+.2f} dB vs the predictor alone); " + (
        "gains: " + ", ".join(gains) if gains else "no gain over the predictor alone"
    )
    return line, bool(gains)


if __name__ == "__main__":
    raise SystemExit(main())
