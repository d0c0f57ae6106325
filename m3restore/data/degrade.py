"""Synthetic degradations for training and evaluation.

Every degradation works on the package's image convention (a float32 ``HxWx3`` RGB array in
``[0, 1]``) and takes all of its randomness from an explicit :class:`numpy.random.Generator`, so
the same generator state always gives the same output.

A chain of degradations is described by a spec string such as
``"motion-blur,noise:0-50,jpeg:10-90"`` (see :func:`parse_spec`) and applied by
:func:`degrade`, which returns the degraded image together with a record of exactly what was
done (:class:`Applied`). :func:`describe` turns that record into words for a text prompt
(``"strong motion blur, mild noise"``).

Each degradation has one *natural parameter* (noise sigma, JPEG quality, blur length, ...),
which is what a spec range refers to, and maps it to a normalised *strength* in ``[0, 1]``
(0 = imperceptible, 1 = the strongest value of the default range; values beyond the default
range are clamped to 1). The mappings:

=================  ===================================  =====================  ============================
name               natural parameter                    default range          strength
=================  ===================================  =====================  ============================
motion-blur        ``length``: trajectory extent, px    5-41                   ``(length - 5) / 36``
defocus            ``radius``: disk radius, px          1-8                    ``(radius - 1) / 7``
gaussian-blur      ``sigma``: Gaussian sigma, px        0.5-4                  ``(sigma - 0.5) / 3.5``
noise              ``sigma`` on the 0-255 scale         0-50                   ``sigma / 50``
poisson            ``peak``: photons at white           10-1000 (log-uniform)  ``log(1000/peak) / log(100)``
jpeg               ``quality`` (1-100)                  10-90                  ``(90 - quality) / 80``
low-light          ``exposure`` multiplier              0.1-0.5                ``(0.5 - exposure) / 0.4``
low-resolution     ``scale``: downscale factor          2 or 4                 ``log2(scale) / 2``
missing-regions    ``coverage``: masked area fraction   0.05-0.3               ``coverage / 0.3``
greyscale          (none)                               -                      ``1``
=================  ===================================  =====================  ============================

Other parameters are drawn per call and recorded in :attr:`Applied.params`: motion-blur's
``kind`` (``"linear"`` for a fraction :data:`LINEAR_FRACTION` of draws, else a random
``"trajectory"``) and ``angle``; poisson's read noise ``read_sigma`` (0-4 on the 0-255 scale);
low-light's ``gamma`` (1-2), shot-noise ``peak`` (300-3000) and ``read_sigma`` (0.5-3);
low-resolution's ``down`` method (``"area"`` or ``"bicubic"``; the upscale back is always
bicubic); missing-regions' ``shape`` (strokes/rectangles/mixed), ``fill`` (zero/noise), the
``actual`` masked fraction and the number of ``shapes``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from m3restore.errors import ConfigError, DataError, unknown_choice

__all__ = [
    "DEGRADATIONS",
    "SEVERITIES",
    "Applied",
    "Degradation",
    "DegradationSpec",
    "Step",
    "degrade",
    "describe",
    "disk_kernel",
    "gaussian_noise",
    "motion_blur_kernel",
    "parse_spec",
    "severity_word",
]

#: Fraction of motion-blur draws that use a straight linear kernel instead of a trajectory.
LINEAR_FRACTION = 0.3

_ALIASES = {"grayscale": "greyscale", "gray": "greyscale", "grey": "greyscale"}


# --------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------

#: The severity words of prompts and records, weakest first.
SEVERITIES = ("mild", "moderate", "strong")


def severity_word(strength: float) -> str:
    """``"mild"`` (strength < 0.33), ``"moderate"`` (< 0.66) or ``"strong"``."""
    return SEVERITIES[0] if strength < 0.33 else SEVERITIES[1] if strength < 0.66 else SEVERITIES[2]


@dataclass(frozen=True)
class Applied:
    """One degradation that was actually applied: registry name, strength and exact parameters."""

    name: str
    strength: float
    params: dict = field(default_factory=dict)

    @property
    def severity(self) -> str:
        """``"mild"`` (strength < 0.33), ``"moderate"`` (< 0.66) or ``"strong"``."""
        return severity_word(self.strength)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict ``{"name", "strength", "params"}``."""
        return {"name": self.name, "strength": self.strength, "params": dict(self.params)}


# --------------------------------------------------------------------------------------------
# Kernels
# --------------------------------------------------------------------------------------------


def _splat(points: np.ndarray) -> np.ndarray:
    """Rasterise complex sub-pixel points (centred on 0) with bilinear weights; sum-normalised."""
    xs, ys = points.real, points.imag
    half = int(math.ceil(max(np.abs(xs).max(initial=0.0), np.abs(ys).max(initial=0.0)))) + 1
    size = 2 * half + 1
    x = xs + half
    y = ys + half
    x0 = np.floor(x).astype(np.int64)
    y0 = np.floor(y).astype(np.int64)
    fx = x - x0
    fy = y - y0
    idx = np.concatenate([y0 * size + x0, y0 * size + x0 + 1, (y0 + 1) * size + x0, (y0 + 1) * size + x0 + 1])
    w = np.concatenate([(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy])
    kernel = np.bincount(idx, weights=w, minlength=size * size).reshape(size, size)
    # Trim all-zero borders symmetrically so the centre stays the centre.
    while kernel.shape[0] > 1 and not (
        kernel[0].any() or kernel[-1].any() or kernel[:, 0].any() or kernel[:, -1].any()
    ):
        kernel = kernel[1:-1, 1:-1]
    kernel = kernel.astype(np.float32)
    kernel /= kernel.sum()
    return kernel


def _trajectory(rng: np.random.Generator, angle: float, steps: int = 64) -> np.ndarray:
    """A camera-shake path: a random walk with inertia (velocity + random acceleration).

    The velocity starts along ``angle`` and is perturbed at every step by a small Gaussian
    acceleration, occasionally by a larger impulsive jerk, and pulled back a little towards the
    origin so the path stays compact. Returns complex positions (unscaled).
    """
    jitter = rng.uniform(0.02, 0.35)
    shake_prob = rng.uniform(0.0, 0.1)
    accel = (rng.standard_normal(steps) + 1j * rng.standard_normal(steps)) * jitter
    jerks = rng.random(steps) < shake_prob
    accel += jerks * (rng.standard_normal(steps) + 1j * rng.standard_normal(steps)) * 1.5
    pull = rng.uniform(0.0, 0.05)
    v = complex(math.cos(math.radians(angle)), math.sin(math.radians(angle)))
    x = 0j
    path = np.empty(steps + 1, dtype=np.complex128)
    path[0] = x
    for t in range(steps):
        v = v + accel[t] - pull * x
        speed = abs(v)
        if speed > 1.0:  # bounded speed: inertia without run-away velocity
            v /= speed
        x = x + v
        path[t + 1] = x
    return path


def motion_blur_kernel(
    rng: np.random.Generator,
    length: int,
    kind: str = "trajectory",
    angle: float | None = None,
) -> np.ndarray:
    """A normalised (sums to 1) odd-sized square motion-blur kernel, float32.

    ``length`` is the extent of the motion in pixels (the longer side of the path's bounding
    box). ``kind="linear"`` gives a straight line at ``angle`` degrees; ``kind="trajectory"``
    gives a random camera-shake path whose initial heading is ``angle``. When ``angle`` is None
    it is drawn from ``rng``. The kernel's centroid is at its centre, so blurring does not shift
    the image.
    """
    if kind not in ("trajectory", "linear"):
        raise ConfigError(f"motion blur kind must be 'trajectory' or 'linear', not {kind!r}")
    length = int(length)
    if length <= 1:
        return np.ones((1, 1), np.float32)
    if angle is None:
        angle = float(rng.uniform(0.0, 180.0 if kind == "linear" else 360.0))
    if kind == "linear":
        t = np.linspace(-(length - 1) / 2, (length - 1) / 2, 4 * length)
        points = t * complex(math.cos(math.radians(angle)), math.sin(math.radians(angle)))
    else:
        path = _trajectory(rng, angle)
        sub = 8  # time-uniform sub-steps per walk step: intensity is time spent at a position
        frac = np.arange(sub) / sub
        points = (path[:-1, None] + (path[1:] - path[:-1])[:, None] * frac[None, :]).ravel()
        points = np.append(points, path[-1])
        extent = max(np.ptp(points.real), np.ptp(points.imag))
        if extent < 1e-9:
            return np.ones((1, 1), np.float32)
        points = points * ((length - 1) / extent)
    points = points - points.mean()
    return _splat(np.asarray(points, dtype=np.complex128))


def disk_kernel(radius: float) -> np.ndarray:
    """A normalised anti-aliased disk (defocus) kernel of odd size ``2*ceil(radius)+1``, float32."""
    radius = float(radius)
    if radius <= 0:
        return np.ones((1, 1), np.float32)
    half = int(math.ceil(radius))
    yy, xx = np.mgrid[-half : half + 1, -half : half + 1]
    dist = np.sqrt(xx * xx + yy * yy)
    kernel = np.clip(radius + 0.5 - dist, 0.0, 1.0).astype(np.float32)
    kernel /= kernel.sum()
    return kernel


try:  # scipy's FFT is several times faster than OpenCV's DFT path for large kernels
    import scipy.fft as _sfft
except ImportError:  # pragma: no cover - scipy comes with scikit-image
    _sfft = None

#: Kernels up to this size are applied with direct ``cv2.filter2D``; larger ones through an FFT.
_DIRECT_MAX = 11


def _filter(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """``cv2.filter2D(image, -1, kernel, borderType=cv2.BORDER_REFLECT)``, faster for big kernels.

    For kernels larger than 11x11 the same correlation (same reflect border, same result to
    ~1e-6) is computed with a real FFT over the reflect-padded image.
    """
    kh, kw = kernel.shape
    if _sfft is None or max(kh, kw) <= _DIRECT_MAX or kh % 2 == 0 or kw % 2 == 0:
        return cv2.filter2D(image, -1, kernel, borderType=cv2.BORDER_REFLECT)
    ry, rx = kh // 2, kw // 2
    h, w = image.shape[:2]
    padded = cv2.copyMakeBorder(image, ry, ry, rx, rx, cv2.BORDER_REFLECT)
    if padded.ndim == 2:
        padded = padded[..., None]
    shape = (_sfft.next_fast_len(h + 2 * ry, True), _sfft.next_fast_len(w + 2 * rx, True))
    spectrum = _sfft.rfft2(np.ascontiguousarray(kernel[::-1, ::-1], np.float32), s=shape)
    img_spec = _sfft.rfft2(padded, s=shape, axes=(0, 1))
    img_spec *= spectrum[..., None]
    full = _sfft.irfft2(img_spec, s=shape, axes=(0, 1))
    out = full[2 * ry : 2 * ry + h, 2 * rx : 2 * rx + w]
    return np.ascontiguousarray(out.reshape(image.shape), dtype=np.float32)


# --------------------------------------------------------------------------------------------
# Individual degradations: fn(image, value, rng) -> (image, params)
# --------------------------------------------------------------------------------------------


def _r(x: float, digits: int = 4) -> float:
    return round(float(x), digits)


def _motion_blur(img: np.ndarray, length: float, rng: np.random.Generator):
    kind = "linear" if rng.random() < LINEAR_FRACTION else "trajectory"
    angle = float(rng.uniform(0.0, 180.0 if kind == "linear" else 360.0))
    kernel = motion_blur_kernel(rng, int(length), kind, angle)
    return _filter(img, kernel), {"length": int(length), "angle": _r(angle, 2), "kind": kind}


def _defocus(img: np.ndarray, radius: float, rng: np.random.Generator):
    return _filter(img, disk_kernel(radius)), {"radius": _r(radius, 3)}


def _gaussian_blur(img: np.ndarray, sigma: float, rng: np.random.Generator):
    if sigma <= 0:
        return img.copy(), {"sigma": 0.0}
    out = cv2.GaussianBlur(img, (0, 0), sigmaX=float(sigma), borderType=cv2.BORDER_REFLECT)
    return out, {"sigma": _r(sigma, 3)}


def gaussian_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma: float = 1.0) -> np.ndarray:
    """Float32 samples of ``N(0, sigma^2)`` drawn from ``rng`` (Box–Muller on float32 uniforms).

    About twice as fast as ``rng.standard_normal(shape, dtype=np.float32)``; the float32
    uniforms cap the tails at about 5.7 sigma, which is irrelevant for image noise.
    """
    n = int(np.prod(shape))
    half = (n + 1) // 2
    u = rng.random(2 * half, dtype=np.float32)
    radius = np.log1p(-u[:half])  # u < 1, so this is finite
    radius *= np.float32(-2.0)
    np.sqrt(radius, out=radius)
    if sigma != 1.0:
        radius *= np.float32(sigma)
    theta = u[half:]
    theta *= np.float32(2.0 * np.pi)
    out = np.empty(2 * half, np.float32)
    np.multiply(radius, np.cos(theta), out=out[:half])
    np.multiply(radius, np.sin(theta), out=out[half:])
    return out[:n].reshape(shape)


def _noise(img: np.ndarray, sigma: float, rng: np.random.Generator):
    return img + gaussian_noise(rng, img.shape, sigma / 255.0), {"sigma": _r(sigma, 3)}


def _poisson_gaussian(img: np.ndarray, peak: float, read_sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Poisson–Gaussian sensor noise in its heteroscedastic Gaussian form (0-1 scale).

    Shot noise with ``peak`` photons at white has variance ``x / peak``; read noise adds
    ``read_sigma**2``. As in Foi et al.'s model, the sum is drawn as one Gaussian with variance
    ``x / peak + read_sigma**2`` (exact Poisson sampling is ~6x slower and indistinguishable
    at these photon counts for training purposes).
    """
    var = np.clip(img, 0.0, None) * np.float32(1.0 / peak)
    var += np.float32(read_sigma * read_sigma)
    noise = gaussian_noise(rng, img.shape)
    noise *= np.sqrt(var)
    return img + noise


def _poisson(img: np.ndarray, peak: float, rng: np.random.Generator):
    read = float(rng.uniform(0.0, 4.0))  # read noise sigma on the 0-255 scale
    out = _poisson_gaussian(img, peak, read / 255.0, rng)
    return out, {"peak": _r(peak, 2), "read_sigma": _r(read, 3)}


def _to_uint8(img: np.ndarray) -> np.ndarray:
    """Clip to [0, 1], scale to 0-255 and round to nearest."""
    return cv2.convertScaleAbs(np.maximum(img, np.float32(0.0)), alpha=255.0)


def _jpeg(img: np.ndarray, quality: float, rng: np.random.Generator):
    q = int(round(quality))
    bgr = cv2.cvtColor(_to_uint8(img), cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, q])
    if not ok:  # pragma: no cover - cv2 always encodes a valid uint8 image
        raise DataError("jpeg degradation: OpenCV could not encode the image")
    dec = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    out = cv2.cvtColor(dec, cv2.COLOR_BGR2RGB).astype(np.float32)
    out *= np.float32(1.0 / 255.0)
    return out, {"quality": q}


def _low_light(img: np.ndarray, exposure: float, rng: np.random.Generator):
    gamma = float(rng.uniform(1.0, 2.0))
    peak = float(np.exp(rng.uniform(np.log(300.0), np.log(3000.0))))
    read = float(rng.uniform(0.5, 3.0))
    dark = np.power(np.clip(img, 0.0, 1.0), np.float32(gamma)) * np.float32(exposure)
    out = _poisson_gaussian(dark, peak, read / 255.0, rng)
    params = {
        "exposure": _r(exposure),
        "gamma": _r(gamma, 3),
        "peak": _r(peak, 1),
        "read_sigma": _r(read, 3),
    }
    return out, params


def _low_resolution(img: np.ndarray, scale: float, rng: np.random.Generator):
    factor = int(scale)
    method = "area" if rng.random() < 0.5 else "bicubic"
    h, w = img.shape[:2]
    if factor <= 1:
        return img.copy(), {"scale": factor, "down": method}
    size = (max(1, round(w / factor)), max(1, round(h / factor)))
    interp = cv2.INTER_AREA if method == "area" else cv2.INTER_CUBIC
    small = cv2.resize(img, size, interpolation=interp)
    out = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    if out.ndim == 2:  # 1-pixel-wide intermediate collapses channels only for grey input
        out = out[..., None]
    return out, {"scale": factor, "down": method}


def _missing_regions(img: np.ndarray, coverage: float, rng: np.random.Generator):
    h, w = img.shape[:2]
    shape = str(rng.choice(["strokes", "rectangles", "mixed"]))
    fill = "zero" if rng.random() < 0.5 else "noise"
    mask = np.zeros((h, w), np.uint8)
    side = min(h, w)
    target = float(coverage) * h * w
    count = 0
    while count < 200 and cv2.countNonZero(mask) < target:
        count += 1
        use_rect = shape == "rectangles" or (shape == "mixed" and rng.random() < 0.5)
        if use_rect:
            rw = int(rng.integers(max(1, side // 16), max(2, side // 3) + 1))
            rh = int(rng.integers(max(1, side // 16), max(2, side // 3) + 1))
            x0 = int(rng.integers(0, max(1, w - rw + 1)))
            y0 = int(rng.integers(0, max(1, h - rh + 1)))
            mask[y0 : y0 + rh, x0 : x0 + rw] = 1
        else:
            n = int(rng.integers(2, 7))
            pts = np.empty((n, 2), np.int32)
            pts[0] = (rng.integers(0, w), rng.integers(0, h))
            for i in range(1, n):
                step = rng.uniform(side / 16, side / 4)
                theta = rng.uniform(0, 2 * np.pi)
                pts[i, 0] = np.clip(pts[i - 1, 0] + step * np.cos(theta), 0, w - 1)
                pts[i, 1] = np.clip(pts[i - 1, 1] + step * np.sin(theta), 0, h - 1)
            thick = int(rng.integers(max(1, side // 64), max(2, side // 12) + 1))
            cv2.polylines(mask, [pts.reshape(-1, 1, 2)], False, 1, thickness=thick)
    sel = mask.astype(bool)
    out = img.copy()
    if fill == "noise":
        out[sel] = rng.random((int(sel.sum()), img.shape[2]), dtype=np.float32)
    else:
        out[sel] = 0.0
    params = {
        "coverage": _r(coverage),
        "actual": _r(sel.mean() if sel.size else 0.0),
        "shape": shape,
        "shapes": count,
        "fill": fill,
    }
    return out, params


_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def _greyscale(img: np.ndarray, value: float, rng: np.random.Generator):
    y = img[..., :3] @ _LUMA
    return np.repeat(y[..., None], img.shape[2], axis=2), {"weights": "bt601"}


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------


def _uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(low) if high <= low else float(rng.uniform(low, high))


def _integer(rng: np.random.Generator, low: float, high: float) -> float:
    lo, hi = math.ceil(low), math.floor(high)
    if hi < lo:
        return float(round(low))
    return float(rng.integers(lo, hi + 1))


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    if high <= low:
        return float(low)
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def _scale_factor(rng: np.random.Generator, low: float, high: float) -> float:
    """Integer factors in [low, high], preferring powers of two (x2 / x4) when any fit."""
    lo, hi = math.ceil(low), math.floor(high)
    if hi < lo:
        return float(round(low))
    options = [f for f in (2, 4, 8, 16) if lo <= f <= hi] or list(range(lo, hi + 1))
    return float(options[int(rng.integers(len(options)))])


def _clamp01(x: float) -> float:
    return float(min(1.0, max(0.0, x)))


@dataclass(frozen=True)
class Degradation:
    """A registry entry: how to draw the natural parameter, apply it and score its strength."""

    name: str
    phrase: str  # words for prompts
    param: str | None  # natural parameter name, None when it takes no value
    default: tuple[float, float] | None  # default range of the natural parameter
    bounds: tuple[float, float] | None  # allowed user values (inclusive)
    apply: Callable[[np.ndarray, float, np.random.Generator], tuple[np.ndarray, dict]]
    strength_of: Callable[[float], float]
    sample: Callable[[np.random.Generator, float, float], float] = _uniform

    def __call__(
        self,
        image: np.ndarray,
        rng: np.random.Generator,
        low: float | None = None,
        high: float | None = None,
    ) -> tuple[np.ndarray, Applied]:
        """Apply once, drawing the natural parameter uniformly in ``[low, high]`` (or default)."""
        if self.default is None:
            value = 0.0
        else:
            if low is None:
                low, high = self.default
            elif high is None:
                high = low
            value = self.sample(rng, float(low), float(high))
        out, params = self.apply(image, value, rng)
        strength = _r(_clamp01(self.strength_of(value)))
        return out, Applied(self.name, strength, params)


DEGRADATIONS: dict[str, Degradation] = {
    d.name: d
    for d in (
        Degradation(
            "motion-blur",
            "motion blur",
            param="length",
            default=(5, 41),
            bounds=(1, 201),
            apply=_motion_blur,
            strength_of=lambda v: (v - 5) / 36,
            sample=_integer,
        ),
        Degradation(
            "defocus",
            "defocus blur",
            param="radius",
            default=(1, 8),
            bounds=(0, 64),
            apply=_defocus,
            strength_of=lambda v: (v - 1) / 7,
        ),
        Degradation(
            "gaussian-blur",
            "gaussian blur",
            param="sigma",
            default=(0.5, 4),
            bounds=(0, 32),
            apply=_gaussian_blur,
            strength_of=lambda v: (v - 0.5) / 3.5,
        ),
        Degradation(
            "noise",
            "noise",
            param="sigma",
            default=(0, 50),
            bounds=(0, 255),
            apply=_noise,
            strength_of=lambda v: v / 50,
        ),
        Degradation(
            "poisson",
            "sensor noise",
            param="peak",
            default=(10, 1000),
            bounds=(1, 1e6),
            apply=_poisson,
            strength_of=lambda v: math.log(1000 / v) / math.log(100),
            sample=_log_uniform,
        ),
        Degradation(
            "jpeg",
            "jpeg compression artifacts",
            param="quality",
            default=(10, 90),
            bounds=(1, 100),
            apply=_jpeg,
            strength_of=lambda v: (90 - v) / 80,
            sample=_integer,
        ),
        Degradation(
            "low-light",
            "low light",
            param="exposure",
            default=(0.1, 0.5),
            bounds=(0.01, 1),
            apply=_low_light,
            strength_of=lambda v: (0.5 - v) / 0.4,
        ),
        Degradation(
            "low-resolution",
            "low resolution",
            param="scale",
            default=(2, 4),
            bounds=(1, 16),
            apply=_low_resolution,
            strength_of=lambda v: math.log2(max(v, 1)) / 2,
            sample=_scale_factor,
        ),
        Degradation(
            "missing-regions",
            "missing regions",
            param="coverage",
            default=(0.05, 0.3),
            bounds=(0, 0.95),
            apply=_missing_regions,
            strength_of=lambda v: v / 0.3,
        ),
        Degradation(
            "greyscale", "greyscale", param=None, default=None, bounds=None, apply=_greyscale, strength_of=lambda v: 1.0
        ),
    )
}
"""Registry: spec name -> :class:`Degradation` (call it as ``entry(image, rng, low, high)``)."""


# --------------------------------------------------------------------------------------------
# Specs
# --------------------------------------------------------------------------------------------


def _fmt(x: float) -> str:
    x = float(x)
    return str(int(x)) if x.is_integer() and abs(x) < 1e15 else repr(x)


@dataclass(frozen=True)
class Step:
    """One spec item: a degradation name, an optional range of its natural parameter, a probability.

    ``low``/``high`` None means the degradation's default range; ``high`` None with ``low`` set
    means the fixed value ``low``. Invalid values raise :class:`ConfigError`.
    """

    name: str
    low: float | None = None
    high: float | None = None
    probability: float = 1.0

    def __post_init__(self) -> None:
        if self.name not in DEGRADATIONS:
            raise ConfigError(unknown_choice("degradation", self.name, DEGRADATIONS))
        if self.low is None and self.high is not None:
            raise ConfigError(f"degradation {self.name!r}: a range needs a low value")
        if self.low is not None:
            object.__setattr__(self, "low", float(self.low))
            object.__setattr__(self, "high", float(self.low if self.high is None else self.high))
        object.__setattr__(self, "probability", float(self.probability))
        entry = DEGRADATIONS[self.name]
        item = str(self)
        if self.low is not None:
            if entry.bounds is None:
                raise ConfigError(f"degradation {item!r}: {self.name} takes no value")
            lo, hi = entry.bounds
            if not (math.isfinite(self.low) and math.isfinite(self.high)):
                raise ConfigError(f"degradation {item!r}: values must be finite numbers")
            if self.low > self.high:
                raise ConfigError(f"degradation {item!r}: range low {_fmt(self.low)} is above high {_fmt(self.high)}")
            if self.low < lo or self.high > hi:
                raise ConfigError(
                    f"degradation {item!r}: {self.name} {entry.param} must be between {_fmt(lo)} and {_fmt(hi)}"
                )
        if not (0.0 <= self.probability <= 1.0):
            raise ConfigError(f"degradation {item!r}: probability must be between 0 and 1")

    def __str__(self) -> str:
        text = self.name
        if self.low is not None:
            high = self.low if self.high is None else self.high
            text += f":{_fmt(self.low)}" if high == self.low else f":{_fmt(self.low)}-{_fmt(high)}"
        if self.probability != 1.0:
            text += f"@{_fmt(self.probability)}"
        return text


@dataclass(frozen=True)
class DegradationSpec:
    """A chain of degradation steps; applied in random order unless ``shuffle`` is False."""

    steps: tuple[Step, ...]
    shuffle: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "steps", tuple(self.steps))

    def __str__(self) -> str:
        body = ",".join(str(s) for s in self.steps)
        return body if self.shuffle else f"ordered:{body}"


_NUM = r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_ITEM = re.compile(
    rf"^(?P<name>[A-Za-z][A-Za-z0-9_-]*)"
    rf"(?::(?P<low>{_NUM})(?:-(?P<high>{_NUM}))?)?"
    rf"(?:@(?P<prob>{_NUM}))?$"
)


def parse_spec(text: str) -> DegradationSpec:
    """Parse ``"motion-blur,noise:0-50,jpeg:10-90"`` into a :class:`DegradationSpec`.

    Grammar: comma-separated items, ``name[:value | :low-high][@probability]``, with an optional
    ``ordered:`` prefix that applies the items in the written order instead of a random one.
    Names are case-insensitive; ``_`` may stand for ``-``; ``grayscale`` means ``greyscale``.
    Raises :class:`ConfigError` naming the offending item.
    """
    if not isinstance(text, str):
        raise ConfigError(f"degradation spec must be a string, not {type(text).__name__}")
    body = text.strip()
    shuffle = True
    if body.lower().startswith("ordered:"):
        shuffle = False
        body = body[len("ordered:") :]
    if not body.strip():
        raise ConfigError(f"degradation spec {text!r} is empty; valid: {', '.join(DEGRADATIONS)}")
    steps = []
    for raw in body.split(","):
        item = raw.strip().replace(" ", "")
        if not item:
            raise ConfigError(f"degradation spec {text!r} has an empty item")
        m = _ITEM.match(item)
        if m is None:
            raise ConfigError(f"degradation item {item!r} is not of the form name[:value|:low-high][@probability]")
        name = m["name"].lower().replace("_", "-")
        name = _ALIASES.get(name, name)
        if name not in DEGRADATIONS:
            raise ConfigError(unknown_choice("degradation", m["name"], DEGRADATIONS))
        try:
            low = float(m["low"]) if m["low"] is not None else None
            high = float(m["high"]) if m["high"] is not None else None
            prob = float(m["prob"]) if m["prob"] is not None else 1.0
        except ValueError as exc:  # pragma: no cover - the regex only admits numbers
            raise ConfigError(f"degradation item {item!r}: {exc}") from None
        try:
            steps.append(Step(name, low, high, prob))
        except ConfigError as exc:
            raise ConfigError(f"in item {item!r}: {exc}") from None
    return DegradationSpec(tuple(steps), shuffle)


# --------------------------------------------------------------------------------------------
# Application and description
# --------------------------------------------------------------------------------------------


def degrade(
    image: np.ndarray,
    spec: DegradationSpec | str,
    rng: np.random.Generator,
    *,
    clip: bool = True,
) -> tuple[np.ndarray, list[Applied]]:
    """Apply a degradation chain; return ``(degraded float32 HxWx3 image, record)``.

    Steps run in a random order drawn from ``rng`` (unless ``spec.shuffle`` is False); each runs
    with its probability and draws its natural parameter uniformly from its range. The record
    lists the steps actually applied, in order. The input is never modified. With ``clip`` the
    result is clipped to ``[0, 1]`` (JPEG always works on clipped 8-bit values internally).
    """
    if isinstance(spec, str):
        spec = parse_spec(spec)
    elif not isinstance(spec, DegradationSpec):
        raise ConfigError(f"degradation spec must be a string or DegradationSpec, not {type(spec).__name__}")
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[2] != 3 or min(arr.shape[:2]) < 1:
        raise DataError(f"degrade needs an HxWx3 RGB image, got an array of shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.floating):
        raise DataError(f"degrade needs a float image in [0, 1], got dtype {arr.dtype}")
    out = np.array(arr, dtype=np.float32, copy=True, order="C")
    order = rng.permutation(len(spec.steps)) if spec.shuffle else range(len(spec.steps))
    record: list[Applied] = []
    for i in order:
        step = spec.steps[int(i)]
        if step.probability < 1.0 and rng.random() >= step.probability:
            continue
        out, applied = DEGRADATIONS[step.name](out, rng, step.low, step.high)
        out = np.ascontiguousarray(out, dtype=np.float32)
        record.append(applied)
    if clip:
        np.clip(out, 0.0, 1.0, out=out)
    return out, record


def describe(record: Sequence[Applied], *, min_strength: float = 0.0) -> str:
    """Words for a prompt, e.g. ``"strong motion blur, mild noise"``; ``""`` for an empty record.

    Items follow the record's order; a degradation applied twice is named once with its largest
    strength. Items with strength below ``min_strength`` are left out. Greyscale has no
    severity word.
    """
    strongest: dict[str, Applied] = {}
    for a in record:
        if a.strength < min_strength:
            continue
        prev = strongest.get(a.name)
        if prev is None or a.strength > prev.strength:
            strongest[a.name] = a
    words = []
    for name, a in strongest.items():
        entry = DEGRADATIONS.get(name)
        phrase = entry.phrase if entry is not None else name.replace("-", " ")
        words.append(phrase if name == "greyscale" else f"{a.severity} {phrase}")
    return ", ".join(words)
