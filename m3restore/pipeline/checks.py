"""Did a restoration step do its own job? Direct image measures, valid on any picture.

The planner's degradation analyzer was trained on degraded photos; a network's output is not
one, and the analyzer's reading of it is biased. On the real GoPro validation blur, a good deblur
pass (+0.4 to +1.8 dB against the sharp frame) left the analyzer's blur strength where it was or
higher on 8 of 10 frames (benchmarks/plan_real_blur.py), so judging a step by the analyzer's
reading of its own damage rolled back good restorations. So the planner also asks a plain
measure of the damage a step claims to fix, taken on its input and its output
(``Planner._verdict``: a step either witness sees working is kept):

========== ======================================================= =========
step       measure                                                 better
========== ======================================================= =========
deblur     sharpness: mean Sobel gradient of luminance / its std   higher
upscale    sharpness (as deblur)                                   higher
denoise    noise σ (0-255): median |finest diagonal Haar| / 0.6745 lower
dejpeg     8x8 blockiness (``degradation._blockiness``)            lower
brighten   mean luminance                                          higher
colorize   colourfulness: std of the two opponent colour axes      higher
inpaint    (none: a classical fill given the user's mask)
========== ======================================================= =========

A measure is left out of a pass that also runs a step which moves it by design: removing noise
or JPEG blocks lowers sharpness, and brightening scales noise up. A check passes when its
measure moved the right way by at least :data:`MIN_CHANGE` of its input value.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from m3restore.caption.degradation import _LUMA, _blockiness

MIN_CHANGE = 0.01  # relative change a step's own measure must show in the right direction


def _luma(img: np.ndarray) -> np.ndarray:
    return np.clip(img, 0, 1).astype(np.float32) @ _LUMA


def sharpness(img: np.ndarray) -> float:
    """Mean Sobel gradient magnitude of luminance over its standard deviation (contrast-free).

    A first derivative, not a Laplacian: on real GoPro blur the predictor's output has *less*
    pixel-level energy than its input (it removes grain and compression noise) while its edges
    are steeper, and the sharp frame has more of both."""
    y = _luma(img)
    gx, gy = cv2.Sobel(y, cv2.CV_32F, 1, 0), cv2.Sobel(y, cv2.CV_32F, 0, 1)
    return float(np.hypot(gx, gy).mean() / (y.std() + 1e-3))


def noise_sigma(img: np.ndarray) -> float:
    """Per-channel noise level on 0-255 from the finest diagonal Haar band (robust median)."""
    x = np.clip(img, 0, 1).astype(np.float32)
    h, w = (x.shape[0] // 2) * 2, (x.shape[1] // 2) * 2
    x = x[:h, :w]
    hh = (x[0::2, 0::2] - x[0::2, 1::2] - x[1::2, 0::2] + x[1::2, 1::2]) / 2
    return float(np.median(np.abs(hh)) / 0.6745 * 255)


def blockiness(img: np.ndarray) -> float:
    return _blockiness(_luma(img))


def brightness(img: np.ndarray) -> float:
    return float(_luma(img).mean())


def colourfulness(img: np.ndarray) -> float:
    """Spread of the red-green and yellow-blue opponent axes (0 for a grey picture)."""
    x = np.clip(img, 0, 1).astype(np.float32)
    rg = x[..., 0] - x[..., 1]
    yb = 0.5 * (x[..., 0] + x[..., 1]) - x[..., 2]
    return float(np.hypot(rg.std(), yb.std()))


@dataclass(frozen=True)
class Measure:
    name: str
    fn: Callable[[np.ndarray], float]
    higher_is_better: bool
    moved_by: frozenset[str]  # steps that move this measure by design


SHARPNESS = Measure("sharpness", sharpness, True, frozenset({"denoise", "dejpeg"}))
MEASURES: dict[str, Measure] = {
    "deblur": SHARPNESS,
    "upscale": SHARPNESS,
    "denoise": Measure("noise σ", noise_sigma, False, frozenset({"brighten"})),
    "dejpeg": Measure("blockiness", blockiness, False, frozenset()),
    "brighten": Measure("brightness", brightness, True, frozenset()),
    "colorize": Measure("colourfulness", colourfulness, True, frozenset()),
}


@dataclass(frozen=True)
class CheckResult:
    step: str
    measure: str
    before: float
    after: float
    passed: bool

    def to_dict(self) -> dict:
        return {
            "step": self.step,
            "measure": self.measure,
            "before": round(self.before, 4),
            "after": round(self.after, 4),
            "passed": self.passed,
        }


def check_steps(steps: list[str] | tuple[str, ...], before: np.ndarray, after: np.ndarray) -> list[CheckResult]:
    """One result per step of a pass that has a measure the pass's other steps do not move."""
    results = []
    for step in steps:
        measure = MEASURES.get(step)
        if measure is None or measure.moved_by & set(steps):
            continue
        a, b = measure.fn(before), measure.fn(after)
        change = (b - a) if measure.higher_is_better else (a - b)
        results.append(CheckResult(step, measure.name, a, b, change >= MIN_CHANGE * abs(a)))
    return results
