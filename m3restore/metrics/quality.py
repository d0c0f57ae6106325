"""Full-reference image quality metrics, defined as in the deblurring/denoising literature.

Conventions (all functions):

* Images are numpy arrays ``H x W x C`` (or ``H x W`` for grey), float in [0, 1]; ``uint8``
  arrays are accepted and divided by 255 first. ``data_range`` is the span of the values
  (1.0 for [0, 1] floats).
* Published tables evaluate 8-bit images; the evaluation therefore passes both images
  through :func:`quantize` (``round(img * 255) / 255``) before scoring. The metric
  functions themselves do not quantize.
* ``crop_border`` removes that many pixels from every side of both images first.
* ``y_channel=True`` scores the luma Y of YCbCr (ITU-R BT.601, "studio swing", as MATLAB's
  ``rgb2ycbcr`` and the super-resolution literature use it):
  ``Y = (16 + 65.481 R + 128.553 G + 24.966 B) / 255`` for R, G, B in [0, 1]
  (see :func:`rgb_to_y`). A single-channel image is used as is.

PSNR
    ``10 * log10(data_range**2 / MSE)`` with the MSE taken over all pixels and channels
    together (RGB unless ``y_channel``); ``inf`` when the images are identical.

SSIM
    Wang, Bovik, Sheikh & Simoncelli (2004): local statistics under an 11 x 11 Gaussian
    window with sigma = 1.5 (taps exp(-x^2 / 2 sigma^2) for x = -5..5, normalised to sum 1),
    ``C1 = (0.01 * data_range)**2``, ``C2 = (0.03 * data_range)**2``, population
    (not sample) covariances. The SSIM map is averaged over the pixels whose window lies
    fully inside the image (the 5-pixel border is left out), separately for each channel,
    and the channel means are averaged. This is what
    ``skimage.metrics.structural_similarity(a, b, channel_axis=-1, gaussian_weights=True,
    sigma=1.5, use_sample_covariance=False, data_range=1.0)`` computes (it filters with
    reflected borders and then crops the same 5 pixels, which leaves exactly the windows
    that fit), and what the MATLAB reference code computes with ``filter2(..., 'valid')``.
    Images must be at least 11 x 11 after cropping.

:func:`psnr_torch` is the batched PyTorch PSNR used for validation during training.
Computation is in float64; results are Python floats (``psnr``/``ssim``).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from m3restore.errors import DataError

try:  # OpenCV filters ~10x faster than the numpy fallback; both give the same values.
    import cv2 as _cv2
except ImportError:  # pragma: no cover - opencv-python-headless is a dependency
    _cv2 = None

__all__ = ["psnr", "ssim", "psnr_torch", "quantize", "rgb_to_y", "SSIM_WINDOW", "SSIM_SIGMA"]

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
_K1 = 0.01
_K2 = 0.03
_BT601_Y = np.array([65.481, 128.553, 24.966], dtype=np.float64) / 255.0
_BT601_Y_OFFSET = 16.0 / 255.0


def _as_float(img: np.ndarray, what: str) -> np.ndarray:
    arr = np.asarray(img)
    if arr.dtype == np.uint8:
        arr = arr.astype(np.float64) / 255.0
    elif arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.number):
        raise TypeError(f"{what} must be a numeric image array, got dtype {arr.dtype}")
    else:
        arr = arr.astype(np.float64, copy=False)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3:
        raise DataError(f"{what} must be an H x W x C or H x W image, got shape {tuple(arr.shape)}")
    return arr


def quantize(img: np.ndarray) -> np.ndarray:
    """Round a [0, 1] image to the nearest 8-bit level: ``round(img * 255) / 255`` (clipped).

    Rounding is numpy's (ties to even), like ``(img * 255).round()`` in the usual
    tensor-to-uint8 conversions. Float input keeps its float dtype; uint8 input gives float64.
    """
    arr = np.asarray(img)
    if arr.dtype == np.uint8:
        return arr.astype(np.float64) / 255.0
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float64)
    return np.clip(np.round(arr * 255.0), 0.0, 255.0) / 255.0


def rgb_to_y(img: np.ndarray) -> np.ndarray:
    """Luma Y of ITU-R BT.601 YCbCr for an RGB image in [0, 1]; returns ``H x W x 1`` in [16/255, 235/255]."""
    arr = _as_float(img, "image")
    if arr.shape[2] != 3:
        raise DataError(f"rgb_to_y needs an RGB image with 3 channels, got {arr.shape[2]}")
    return (arr @ _BT601_Y + _BT601_Y_OFFSET)[:, :, None]


def _prepare(pred: np.ndarray, target: np.ndarray, y_channel: bool, crop_border: int) -> tuple[np.ndarray, np.ndarray]:
    a = _as_float(pred, "prediction")
    b = _as_float(target, "target")
    if a.shape != b.shape:
        raise DataError(f"prediction and target sizes differ: {a.shape[:2]}x{a.shape[2]} vs {b.shape[:2]}x{b.shape[2]}")
    if not isinstance(crop_border, (int, np.integer)) or isinstance(crop_border, bool) or crop_border < 0:
        raise ValueError(f"crop_border must be an integer >= 0, got {crop_border!r}")
    if crop_border:
        if 2 * crop_border >= min(a.shape[0], a.shape[1]):
            raise DataError(f"crop_border={crop_border} removes the whole {a.shape[0]}x{a.shape[1]} image")
        a = a[crop_border:-crop_border, crop_border:-crop_border]
        b = b[crop_border:-crop_border, crop_border:-crop_border]
    if y_channel and a.shape[2] == 3:
        a, b = rgb_to_y(a), rgb_to_y(b)
    elif y_channel and a.shape[2] != 1:
        raise DataError(f"y_channel needs an RGB or single-channel image, got {a.shape[2]} channels")
    return a, b


def _check_range(data_range: float) -> float:
    value = float(data_range)
    if not value > 0 or not math.isfinite(value):
        raise ValueError(f"data_range must be a positive number, got {data_range!r}")
    return value


def psnr(
    pred: np.ndarray,
    target: np.ndarray,
    *,
    data_range: float = 1.0,
    y_channel: bool = False,
    crop_border: int = 0,
) -> float:
    """Peak signal-to-noise ratio in dB over all pixels and channels; ``inf`` if identical."""
    peak = _check_range(data_range)
    a, b = _prepare(pred, target, y_channel, crop_border)
    mse = float(np.mean((a - b) ** 2))
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(peak * peak / mse)


def _gaussian_taps(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> np.ndarray:
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    taps = np.exp(-(x * x) / (2.0 * sigma * sigma))
    return taps / taps.sum()


def _filter_valid(img: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """Separable correlation of ``H x W x C`` with ``taps`` along H and W, 'valid' region only."""
    if _cv2 is not None:
        # The border mode is irrelevant: the pixels it affects are cropped away.
        r = taps.shape[0] // 2
        planes = [
            _cv2.sepFilter2D(
                np.ascontiguousarray(img[:, :, c]), _cv2.CV_64F, taps, taps, borderType=_cv2.BORDER_REFLECT
            )
            for c in range(img.shape[2])
        ]
        return np.stack(planes, axis=-1)[r:-r, r:-r]
    return _filter_valid_numpy(img, taps)


def _filter_valid_numpy(img: np.ndarray, taps: np.ndarray) -> np.ndarray:
    k = taps.shape[0]
    h, w = img.shape[0] - k + 1, img.shape[1] - k + 1
    rows = taps[0] * img[0:h]
    for i in range(1, k):
        rows += taps[i] * img[i : i + h]
    out = taps[0] * rows[:, 0:w]
    for i in range(1, k):
        out += taps[i] * rows[:, i : i + w]
    return out


def ssim(
    pred: np.ndarray,
    target: np.ndarray,
    *,
    data_range: float = 1.0,
    y_channel: bool = False,
    crop_border: int = 0,
) -> float:
    """Mean structural similarity (Wang et al. 2004, Gaussian 11x11, sigma 1.5), channel-averaged."""
    peak = _check_range(data_range)
    a, b = _prepare(pred, target, y_channel, crop_border)
    if min(a.shape[0], a.shape[1]) < SSIM_WINDOW:
        raise DataError(
            f"SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels, got {a.shape[0]}x{a.shape[1]}"
        )
    taps = _gaussian_taps()
    c1 = (_K1 * peak) ** 2
    c2 = (_K2 * peak) ** 2
    mu_a = _filter_valid(a, taps)
    mu_b = _filter_valid(b, taps)
    var_a = _filter_valid(a * a, taps) - mu_a * mu_a
    var_b = _filter_valid(b * b, taps) - mu_b * mu_b
    cov = _filter_valid(a * b, taps) - mu_a * mu_b
    num = (2.0 * mu_a * mu_b + c1) * (2.0 * cov + c2)
    den = (mu_a * mu_a + mu_b * mu_b + c1) * (var_a + var_b + c2)
    ssim_map = num / den
    per_channel = ssim_map.reshape(-1, ssim_map.shape[2]).mean(axis=0)
    return float(per_channel.mean())


def psnr_torch(pred: torch.Tensor, target: torch.Tensor, *, data_range: float = 1.0) -> torch.Tensor:
    """Per-image PSNR of batched ``(B, C, H, W)`` tensors (values in [0, data_range]) -> ``(B,)``.

    Same definition as :func:`psnr` (MSE over C, H, W); computed in float64 without
    gradients and returned as float32 on the input's device (``inf`` for identical images).
    Clamp/quantize the prediction first if the evaluation should see what is saved to disk.
    """
    peak = _check_range(data_range)
    if pred.shape != target.shape:
        raise DataError(f"prediction and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
    if pred.ndim != 4:
        raise DataError(f"psnr_torch expects (B, C, H, W) tensors, got shape {tuple(pred.shape)}")
    # float64 for accuracy near identical images; MPS has no float64.
    wide = torch.float32 if pred.device.type == "mps" else torch.float64
    with torch.no_grad():
        diff = pred.detach().to(wide) - target.detach().to(wide)
        mse = diff.pow(2).flatten(1).mean(dim=1)
        out = 10.0 * torch.log10(peak * peak / mse)
    return out.to(torch.float32)
