"""Train and evaluate the degradation analyzer (``m3restore train --stage analyzer``).

Data (:class:`SampleMaker`): clean photos (``--root``, e.g. ``train_clean``) and, optionally,
real motion-blur pairs (``--input`` blurred / ``--target`` sharp, e.g. the GoPro *training*
frames). Every sample is made fresh from a seeded generator:

* a clean photo (randomly rescaled 0.6-1x) or a sharp frame, or — a quarter of the time when
  real pairs are given — a real blurred frame, which is a motion-blur positive;
* 0-3 different labels drawn (:func:`draw_degradations`; at most one of motion blur, defocus
  and low resolution, which hide each other), applied to a 192-pixel
  region in physical order — blur, low resolution, low light, noise, greyscale, JPEG, missing
  regions — with the registry's default parameter ranges;
* the analyzer's inputs (a 128-pixel crop of the region at native resolution, its statistics,
  and a thumbnail of the whole photo carrying the *global* degradations: low light, greyscale,
  missing regions) and per-label targets: presence, strength, and a mask that skips presence
  for degradations too weak to see (strength < 0.15) and strength for labels without one.

Photos that are grey to begin with are greyscale positives. Photo names are split into training
and held-out sets by a CRC of the name (:func:`is_held_out`), so duplicates across folders
("baboon" in classic5 and Set14) fall on the same side.

:func:`evaluate_synthetic` measures the per-label balanced accuracy at moderate-or-stronger
severity on held-out photos, degraded whole and analysed through the same :func:`analyze` path
that ``m3restore caption`` uses; :func:`evaluate_real_blur` gives the rate at which real
blurred / sharp frames are called blurred.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from m3restore.caption.degradation import (
    FOLD,
    LABELS,
    N_STATS,
    AnalyzerConfig,
    DegradationAnalyzer,
    analyze,
    crop_statistics,
    thumbnail,
)
from m3restore.data.degrade import severity_word
from m3restore.errors import ConfigError

REGION = 192
#: Degradations in the order physics applies them (registry names).
PHYSICAL_ORDER = (
    "motion-blur",
    "defocus",
    "gaussian-blur",
    "low-resolution",
    "low-light",
    "noise",
    "poisson",
    "greyscale",
    "jpeg",
    "missing-regions",
)
GLOBAL = ("low-light", "greyscale", "missing-regions")
VISIBLE = 0.15  # presence is not trained below this strength ...
#: ... except for labels listed here, whose damage shows at lower strengths: Gaussian noise of
#: sigma 4 on 0-255 is plain on flat areas, and the denoiser gains about 5 dB at sigma 5 (Kodak24;
#: docs/experiments/analyzer-legs11-12/, the first legs trained so).
VISIBLE_FROM = {"noise": 0.08}
NOISE_FLOOR_SIGMAS = (0, 2, 3, 4, 5, 6, 8, 12)  # evaluate_noise_floor's check, on 0-255
REAL_BLUR_STRENGTH = 0.17  # a real blurred frame's motion-blur strength target: mild (see targets())
TEXT_FRACTION = 0.2  # share of training samples that are text scenes (see text_scene())
TEXT_SEED = 11  # training text scenes draw their pictures from this seed; benchmarks use others
#: Share of text scenes that are one picture filling the frame (:func:`text_picture`). The shipped
#: analyzer was trained without them; a leg with 0.5 read whole-frame text better but found motion
#: blur less often on Kodak24, and was not shipped (docs/experiments/analyzer-leg10/).
TEXT_ALONE = 0.0
BLUR_KINDS = ("motion-blur", "defocus", "gaussian-blur")


def is_held_out(path: str | Path, modulo: int = 5) -> bool:
    """True for about one photo name in ``modulo`` (CRC of the lower-case stem without ``_GT``)."""
    stem = Path(path).stem.lower().removesuffix("_gt")
    return zlib.crc32(stem.encode()) % modulo == 0


def load_rgb(path: str | Path) -> np.ndarray:
    from m3restore.io import read_image

    return np.ascontiguousarray(read_image(path).rgb(), dtype=np.float32)


def is_grey(image: np.ndarray) -> bool:
    return float(np.abs(image - image.mean(axis=2, keepdims=True)).max()) < 1.5 / 255


#: Degradations that remove fine detail and so hide each other (a x2 downscale of a blurred photo,
#: defocus on top of motion blur): a sample gets at most one of them, or its labels are ill-posed.
DETAIL_LOSSES = ("motion-blur", "defocus", "low-resolution")


def draw_degradations(rng: np.random.Generator) -> list[str]:
    """0-3 registry names for distinct labels, at most one of :data:`DETAIL_LOSSES`, in :data:`PHYSICAL_ORDER`.

    Defocus is drawn as ``gaussian-blur`` 30 % of the time and noise as ``poisson`` 25 %."""
    k = int(rng.choice([0, 1, 2, 3], p=[0.14, 0.38, 0.3, 0.18]))
    chosen: list[str] = []
    detail = False
    for name in rng.permutation(list(LABELS)):
        if len(chosen) == k:
            break
        name = str(name)
        if name in DETAIL_LOSSES:
            if detail:
                continue
            detail = True
        if name == "defocus" and rng.random() < 0.3:
            name = "gaussian-blur"
        if name == "noise" and rng.random() < 0.25:
            name = "poisson"
        chosen.append(name)
    return [n for n in PHYSICAL_ORDER if n in chosen]


def apply_chain(image: np.ndarray, names: list[str], rng: np.random.Generator, values: dict | None = None):
    """Apply ``names`` in order; ``values`` fixes natural parameters (name → value). Returns (image, record)."""
    from m3restore.data.degrade import degrade

    items = []
    for name in names:
        value = (values or {}).get(name)
        items.append(name if value is None else f"{name}:{value:g}")
    if not items:
        return image.copy(), []
    return degrade(image, "ordered:" + ",".join(items), rng)


def _natural_value(applied) -> float | None:
    p = applied.params
    return {
        "low-light": p.get("exposure"),
        "missing-regions": p.get("coverage"),
    }.get(applied.name)


@dataclass
class Sample:
    local: np.ndarray  # crop x crop x 3
    thumb: np.ndarray  # g x g x 3
    stats: np.ndarray
    present: np.ndarray  # K
    strength: np.ndarray  # K
    present_mask: np.ndarray  # K
    strength_mask: np.ndarray  # K


def targets(record, *, grey: bool = False, real_blur: bool = False):
    """(present, strength, present_mask, strength_mask) arrays over :data:`LABELS` for a record."""
    k = len(LABELS)
    present, strength = np.zeros(k, np.float32), np.zeros(k, np.float32)
    pmask, smask = np.ones(k, np.float32), np.zeros(k, np.float32)
    for applied in record:
        label = FOLD.get(applied.name, applied.name)
        i = LABELS.index(label)
        s = float(applied.strength)
        if present[i] and s <= strength[i]:
            continue
        present[i], strength[i], smask[i] = 1.0, s, 1.0
        if s < VISIBLE_FROM.get(label, VISIBLE) and label != "greyscale":
            pmask[i] = 0.0
    g = LABELS.index("greyscale")
    if grey:
        present[g], strength[g], smask[g], pmask[g] = 1.0, 1.0, 1.0, 1.0
    if real_blur:
        m = LABELS.index("motion-blur")
        present[m], pmask[m] = 1.0, 1.0
        # Its blur length is unknown; the severity the predictor restores it best with is "mild"
        # (benchmarks/real_blur_severity.py: 21 of 27 GoPro training frames), so that is the target.
        strength[m], smask[m] = REAL_BLUR_STRENGTH, 1.0
        for b in ("defocus",):
            pmask[LABELS.index(b)] = 0.0  # real frames can be a little out of focus too
    return present, strength, pmask, smask


class SampleMaker:
    """Seeded training samples from clean photos and (optionally) real blurred frames."""

    def __init__(
        self,
        clean: list[np.ndarray],
        real_blur: list[np.ndarray] | None = None,
        config: AnalyzerConfig | None = None,
        real_fraction: float = 0.25,
        text_fraction: float = 0.0,
    ):
        if not clean:
            raise ConfigError("the analyzer needs clean photos to degrade (--root)")
        self.clean = clean
        self.real = real_blur or []
        self.config = config or AnalyzerConfig()
        self.real_fraction = real_fraction if self.real else 0.0
        self.text_fraction = text_fraction
        self._grey = [is_grey(im) for im in clean]

    def __call__(self, rng: np.random.Generator) -> Sample:
        cfg = self.config
        real = rng.random() < self.real_fraction
        if real:
            photo = self.real[int(rng.integers(len(self.real)))]
            grey = False
        else:
            i = int(rng.integers(len(self.clean)))
            photo, grey = self.clean[i], self._grey[i]
            scale = float(rng.uniform(0.6, 1.0))
            if rng.random() < self.text_fraction:
                alone = TEXT_ALONE > 0 and rng.random() < TEXT_ALONE  # draws no number at 0: old legs replay
                photo = text_picture(rng) if alone else text_scene(photo, rng)
                grey = is_grey(photo)
            elif scale < 0.97 and min(photo.shape[:2]) * scale >= REGION:
                size = (round(photo.shape[1] * scale), round(photo.shape[0] * scale))
                photo = cv2.resize(photo, size, interpolation=cv2.INTER_AREA)
        if rng.random() < 0.5:
            photo = photo[:, ::-1]
        names = draw_degradations(rng)
        if real:
            names = [n for n in names if n not in BLUR_KINDS and n != "low-resolution"]
        region = _random_region(photo, REGION, rng)
        degraded, record = apply_chain(region, names, rng)
        c = cfg.crop
        y = int(rng.integers(8, REGION - c - 8 + 1))
        x = int(rng.integers(8, REGION - c - 8 + 1))
        local = np.ascontiguousarray(degraded[y : y + c, x : x + c])
        # The thumbnail shows the whole photo; only global degradations are visible at that scale.
        values = {a.name: _natural_value(a) for a in record}
        global_names = [a.name for a in record if a.name in GLOBAL]
        thumb_clean = thumbnail(np.ascontiguousarray(photo), cfg.global_size)
        thumb, _ = apply_chain(thumb_clean, global_names, rng, values)
        present, strength, pmask, smask = targets(record, grey=grey, real_blur=real)
        return Sample(
            local, thumb.astype(np.float32), crop_statistics(local)[: cfg.stats], present, strength, pmask, smask
        )


def text_scene(photo: np.ndarray, rng: np.random.Generator, seed: int = TEXT_SEED, size: int = 320) -> np.ndarray:
    """A ``size``-pixel region of ``photo`` with one to three rendered text pictures pasted in.

    Street signs, licence plates and document lines (:mod:`m3restore.data.text_images`) are what
    many users bring, and the clean photo sets hold few: without them the analyzer called the
    README's motion-blurred street sign "low resolution". Pictures are pasted at their rendered
    size or smaller (area resampling): upscaling would leave the resampling traces the analyzer
    must read as low resolution.
    """
    h, w = photo.shape[:2]
    if min(h, w) > size * 1.5:  # keep the photo's scale close to the text's
        f = size * 1.5 / min(h, w)
        photo = cv2.resize(photo, (round(w * f), round(h * f)), interpolation=cv2.INTER_AREA)
    canvas = _random_region(photo, size, rng).copy()
    for _ in range(int(rng.integers(1, 4))):
        picture = text_picture(rng, seed)
        ph, pw = min(picture.shape[0], size), min(picture.shape[1], size)
        y, x = int(rng.integers(0, size - ph + 1)), int(rng.integers(0, size - pw + 1))
        canvas[y : y + ph, x : x + pw] = picture[:ph, :pw]
    return canvas


def text_picture(rng: np.random.Generator, seed: int = TEXT_SEED) -> np.ndarray:
    """One rendered text picture alone, the whole frame, at its rendered size or smaller.

    Users crop to the plate or the sign; pasted into photos only, a whole-frame plate (96 px
    high: the analysis pads it by reflection to the crop size) was read as "defocus" or "JPEG"
    when it was motion-blurred, and ``restore`` asked the wrong network for the wrong fix.
    The training region pads it the same way (``_random_region``)."""
    from m3restore.data.text_images import text_image

    picture = text_image(int(rng.integers(1 << 30)), seed=seed).image
    f = float(rng.uniform(0.6, 1.0))
    if f < 0.97:
        ph, pw = picture.shape[:2]
        picture = cv2.resize(picture, (max(8, round(pw * f)), max(8, round(ph * f))), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(picture, dtype=np.float32)


def _random_region(photo: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    h, w = photo.shape[:2]
    if h < size or w < size:
        photo = cv2.copyMakeBorder(photo, 0, max(0, size - h), 0, max(0, size - w), cv2.BORDER_REFLECT_101)
        h, w = photo.shape[:2]
    y = int(rng.integers(0, h - size + 1))
    x = int(rng.integers(0, w - size + 1))
    return np.ascontiguousarray(photo[y : y + size, x : x + size], dtype=np.float32)


def batch(samples: list[Sample]) -> dict[str, torch.Tensor]:
    def stack(name, image=False):
        arr = np.stack([getattr(s, name) for s in samples])
        t = torch.from_numpy(np.ascontiguousarray(arr))
        return t.permute(0, 3, 1, 2).contiguous() if image else t

    return {
        "local": stack("local", True),
        "thumb": stack("thumb", True),
        "stats": stack("stats"),
        "present": stack("present"),
        "strength": stack("strength"),
        "pmask": stack("present_mask"),
        "smask": stack("strength_mask"),
    }


def loss_fn(model: DegradationAnalyzer, b: dict[str, torch.Tensor]) -> torch.Tensor:
    logits, strength = model(b["local"], b["thumb"], b["stats"])
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, b["present"], reduction="none")
    cls = (bce * b["pmask"]).sum() / b["pmask"].sum().clamp_min(1)
    reg = ((strength - b["strength"]).abs() * b["smask"]).sum() / b["smask"].sum().clamp_min(1)
    return cls + reg


# -- evaluation ------------------------------------------------------------------------------
def evaluate_synthetic(model: DegradationAnalyzer, photos: list[np.ndarray], per_photo: int = 12, seed: int = 1234):
    """Balanced accuracy per label (moderate+ positives vs absent negatives) on whole degraded photos.

    Returns ``{"labels": {label: {...}}, "samples": n, "mean_balanced_accuracy": x, "rows": [...]}``.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for photo in photos:
        grey = is_grey(photo)
        for _ in range(per_photo):
            names = draw_degradations(rng)
            degraded, record = apply_chain(photo, names, rng)
            present, strength, _, _ = targets(record, grey=grey)
            result = analyze(model, degraded)
            rows.append(
                {
                    "present": present.tolist(),
                    "strength": strength.tolist(),
                    "detected": [bool(f.detected) for f in result.findings],
                    "predicted_strength": [round(f.strength, 4) for f in result.findings],
                }
            )
    return summarise(rows) | {"rows": rows}


def calibrate_thresholds(
    model: DegradationAnalyzer,
    photos: list[np.ndarray],
    samples: int = 240,
    seed: int = 99,
    *,
    real_blur: list[np.ndarray] | None = None,
    real_sharp: list[np.ndarray] | None = None,
    min_specificity: float = 0.95,
) -> list[float]:
    """Per-label probability thresholds from *training* photos (never the held-out ones).

    Each label gets the threshold with the best balanced accuracy among those that reject at
    least ``min_specificity`` of the calibration images without that degradation (the lowest
    threshold reaching it if none does): a prompt that names damage which is not there costs far
    more than a missing one (see docs/TEXT_EFFECT.md), so false alarms are capped first.
    Real blurred / sharp training frames, when given, count as motion-blur positives / blur
    negatives. Thresholds stay in [0.1, 0.9].
    """
    rng = np.random.default_rng(seed)
    k = len(LABELS)
    probs, present, strong, known = [], [], [], []
    for _ in range(samples):
        photo = photos[int(rng.integers(len(photos)))]
        degraded, record = apply_chain(photo, draw_degradations(rng), rng)
        p, s, _, _ = targets(record, grey=is_grey(photo))
        probs.append([f.probability for f in analyze(model, degraded).findings])
        present.append(p)
        strong.append(s)
        known.append(np.ones(k))
    blur_labels = [LABELS.index("motion-blur"), LABELS.index("defocus")]
    for frames, positive in ((real_blur or [], True), (real_sharp or [], False)):
        for frame in frames:
            p, s, mask = np.zeros(k), np.zeros(k), np.zeros(k)
            for i in blur_labels:
                mask[i] = 1
            if positive:
                p[blur_labels[0]], s[blur_labels[0]] = 1, 1
                mask[blur_labels[1]] = 0  # real blurred frames may also be a little out of focus
            probs.append([f.probability for f in analyze(model, frame).findings])
            present.append(p)
            strong.append(s)
            known.append(mask)
    probs, present, strong, known = map(np.array, (probs, present, strong, known))
    grid = np.linspace(0.1, 0.9, 81)
    out = []
    for i in range(k):
        use = known[:, i] > 0
        pos = probs[use & (present[:, i] > 0) & (strong[:, i] >= 0.33), i]
        neg = probs[use & (present[:, i] == 0), i]
        if len(pos) < 5 or len(neg) < 5:
            out.append(0.5)
            continue
        tnr = np.array([(neg < t).mean() for t in grid])
        bacc = np.array([((pos >= t).mean() + (neg < t).mean()) / 2 for t in grid])
        ok = tnr >= min_specificity
        best = grid[int(np.argmax(np.where(ok, bacc, -1)))] if ok.any() else grid[-1]
        out.append(round(float(best), 3))
    return out


def summarise(rows: list[dict]) -> dict:
    labels = {}
    for i, label in enumerate(LABELS):
        tp = fn = tn = fp = 0
        sev_ok = sev_n = 0
        for r in rows:
            p, s, d = r["present"][i], r["strength"][i], r["detected"][i]
            if p and s >= 0.33:
                tp, fn = tp + d, fn + (not d)
                if label != "greyscale" and d:
                    sev_n += 1
                    sev_ok += severity_word(s) == severity_word(r["predicted_strength"][i])
            elif not p:
                tn, fp = tn + (not d), fp + d
        tpr = tp / (tp + fn) if tp + fn else float("nan")
        tnr = tn / (tn + fp) if tn + fp else float("nan")
        labels[label] = {
            "positives": tp + fn,
            "negatives": tn + fp,
            "tpr": tpr,
            "tnr": tnr,
            "balanced_accuracy": (tpr + tnr) / 2,
            "severity_accuracy": sev_ok / sev_n if sev_n else float("nan"),
        }
    values = [v["balanced_accuracy"] for v in labels.values() if not math.isnan(v["balanced_accuracy"])]
    return {"labels": labels, "samples": len(rows), "mean_balanced_accuracy": float(np.mean(values))}


def evaluate_real_blur(model: DegradationAnalyzer, blurred: list[Path], sharp: list[Path]) -> dict:
    """How often real blurred frames are called blurred (motion blur or defocus) and sharp ones are not."""

    def rate(paths):
        any_blur = motion = 0
        for path in paths:
            result = analyze(model, load_rgb(path))
            names = {f.name for f in result.detected}
            motion += "motion-blur" in names
            any_blur += bool(names & {"motion-blur", "defocus"})
        n = max(1, len(paths))
        return {"frames": len(paths), "called_blurred": any_blur / n, "called_motion_blur": motion / n}

    return {"blurred": rate(blurred), "sharp": rate(sharp)}


def evaluate_noise_floor(
    model: DegradationAnalyzer, photos: list[np.ndarray], sigmas=NOISE_FLOOR_SIGMAS, seed: int = 0
) -> dict[str, float]:
    """Share of ``photos`` called noisy with seeded Gaussian noise of each sigma (0-255), saved to 8 bits.

    Sigma 0 is the photo itself: the false-alarm rate. Keys are the sigmas as strings."""
    from m3restore.io import from_uint8, to_uint8

    rng = np.random.default_rng(seed)
    out = {}
    for sigma in sigmas:
        hits = 0
        for photo in photos:
            noisy = from_uint8(to_uint8(photo + rng.normal(0.0, sigma / 255, photo.shape) if sigma else photo))
            hits += any(f.name == "noise" for f in analyze(model, noisy).detected)
        out[str(sigma)] = hits / max(1, len(photos))
    return out


# -- training --------------------------------------------------------------------------------
def widen_statistics(model: DegradationAnalyzer) -> DegradationAnalyzer:
    """A copy of ``model`` that reads all :data:`N_STATS` statistics and computes exactly what it did.

    An analyzer trained on fewer statistics (an older bundle) gets zero weights for the new ones,
    so a warm start begins from the old function and learns to use them."""
    old = model.config.stats
    if old >= N_STATS:
        return model
    wide = DegradationAnalyzer(dataclasses.replace(model.config, stats=N_STATS))
    state = model.state_dict()
    weight = state["stats.0.weight"]
    state["stats.0.weight"] = torch.cat([weight, weight.new_zeros(weight.shape[0], N_STATS - old)], dim=1)
    wide.load_state_dict(state)
    return wide


def run(
    out_dir: str | Path,
    *,
    root: str,
    real_blur: str | None = None,
    real_sharp: str | None = None,
    iterations: int = 3000,
    batch_size: int = 32,
    lr: float = 2e-3,
    seed: int = 0,
    time_limit_minutes: float = 0.0,
    add_to: str | None = None,
    init: str | None = None,
    eval_per_photo: int = 12,
    calibration_samples: int = 600,
    text_fraction: float = TEXT_FRACTION,
    log=print,
) -> Path:
    """The ``--stage analyzer`` entry point: train, evaluate on held-out photos, export a bundle."""
    from m3restore.data.datasets import clean_images
    from m3restore.weights import save_bundle

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    paths = clean_images(root)
    if real_sharp:
        paths = paths + clean_images(real_sharp)
    train_paths = [p for p in paths if not is_held_out(p)]
    held_paths = [p for p in clean_images(root) if is_held_out(p)]
    if not train_paths:
        raise ConfigError(f"{root}: no training photos left after holding out the evaluation ones")
    clean = [load_rgb(p) for p in train_paths]
    real = [load_rgb(p) for p in clean_images(real_blur)] if real_blur else []
    log(
        f"analyzer data: {len(clean)} clean photos for training, {len(held_paths)} held out, "
        f"{len(real)} real blurred frames"
    )
    earlier_legs: list[dict] = []
    if init:
        from m3restore.weights import open_bundle

        source = open_bundle(init)
        earlier_legs = _legs(source.index.get("analyzer_training") or {})
        model = widen_statistics(source.load("analyzer"))
        model.config.thresholds = (0.5,) * len(LABELS)
        config = model.config
        log(f"warm start from {init}")
    else:
        config = AnalyzerConfig()
        model = DegradationAnalyzer(config)
    maker = SampleMaker(clean, real, config, text_fraction=text_fraction)
    rng = np.random.default_rng(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    started = time.perf_counter()
    cpu_started = time.process_time()  # the budget is CPU time: fair on a shared, busy machine
    budget = time_limit_minutes * 60 if time_limit_minutes else float("inf")
    history = []
    step = 0
    while step < iterations:
        elapsed = time.process_time() - cpu_started
        if elapsed > budget:
            log(f"time limit reached after {step} iterations")
            break
        progress = min(1.0, max(step / iterations, elapsed / budget if budget < float("inf") else 0.0))
        for group in opt.param_groups:
            group["lr"] = lr * (min(1.0, (step + 1) / 100)) * 0.5 * (1 + math.cos(math.pi * progress))
        model.train()
        b = batch([maker(rng) for _ in range(batch_size)])
        loss = loss_fn(model, b)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        history.append(loss.item())
        if step % 50 == 0 or step == 1:
            log(
                f"step {step}/{iterations} · loss {np.mean(history[-50:]):.4f} · "
                f"{time.process_time() - cpu_started:.0f} s CPU, {time.perf_counter() - started:.0f} s wall"
            )
    model.eval()
    train_seconds = time.perf_counter() - started
    calibration = [im for im in clean if max(im.shape[:2]) <= 800]
    sharp = [load_rgb(p) for p in clean_images(real_sharp)] if real_sharp and calibration else []
    if calibration:
        thresholds = calibrate_thresholds(
            model, calibration, samples=calibration_samples, seed=seed + 99, real_blur=real, real_sharp=sharp
        )
        model.config.thresholds = tuple(thresholds)
        log("calibrated thresholds (training photos): " + ", ".join(f"{n} {t:.2f}" for n, t in zip(LABELS, thresholds)))
    held = [load_rgb(p) for p in held_paths]
    leg = {
        "iterations": step,
        "batch_size": batch_size,
        "cpu_seconds": round(time.process_time() - cpu_started, 1),
        "train_seconds": round(train_seconds, 1),
        "text_fraction": text_fraction,
        "note": (f"warm start from {init}" if init else "from scratch")
        + f", lr {lr:g}, seed {seed}, {torch.get_num_threads()} thread(s), text scenes {text_fraction:.0%}",
    }
    legs = [*earlier_legs, leg]
    report = {
        "legs": legs,
        "iterations": sum(leg["iterations"] for leg in legs),
        "batch_size": batch_size,
        "cpu_seconds": round(sum(leg["cpu_seconds"] for leg in legs), 1),
        "final_loss": float(np.mean(history[-50:])) if history else None,
        "calibration": (
            f"{calibration_samples} synthetic samples of training photos"
            + (f" + the {len(real)} real blurred and {len(sharp)} sharp training frames" if real or sharp else "")
            + "; per label the best balanced accuracy among thresholds that reject at least 95% of the "
            "negatives, within [0.1, 0.9]"
        )
        if calibration
        else None,
        "thresholds": dict(zip(LABELS, model.config.thresholds)),
        "held_out_photos": [str(p) for p in held_paths],
    }
    if held:
        result = evaluate_synthetic(model, held, per_photo=eval_per_photo)
        report["held_out"] = {k: v for k, v in result.items() if k != "rows"}
        for label, v in result["labels"].items():
            log(
                f"held-out {label:16s} balanced accuracy {v['balanced_accuracy']:.3f} "
                f"(TPR {v['tpr']:.3f} on {v['positives']}, TNR {v['tnr']:.3f} on {v['negatives']})"
            )
    (out / "analyzer.json").write_text(json.dumps(report, indent=2, default=float) + "\n")
    bundle = save_bundle(out / "bundle", {"analyzer": model}, name="m3restore-analyzer", analyzer_training=report)
    if add_to:
        add_analyzer(bundle, add_to)
        log(f"added analyzer to {add_to}")
    return bundle


def _legs(training: dict) -> list[dict]:
    """The training legs a bundle's ``analyzer_training`` records (one for a single-leg record)."""
    if training.get("legs"):
        return list(training["legs"])
    if training.get("iterations"):
        keys = ("iterations", "batch_size", "cpu_seconds", "train_seconds", "text_fraction", "note")
        return [{k: training[k] for k in keys if k in training}]
    return []


def add_analyzer(run_bundle: str | Path, target: str | Path) -> Path:
    """Put the analyzer of a training run's bundle into ``target`` with its training record
    (every leg since the first, calibration, thresholds), which the model card reports."""
    from m3restore.weights import extend_bundle, open_bundle

    source = open_bundle(run_bundle)
    fields = {"analyzer_training": source.index.get("analyzer_training") or {}}
    return extend_bundle(target, {"analyzer": source.load("analyzer")}, fields=fields)
