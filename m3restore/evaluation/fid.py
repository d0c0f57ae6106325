"""FID, the Fréchet inception distance of Heusel et al. (NeurIPS 2017).

Features of the restored images and of the ground-truth images are extracted with a feature
network; a Gaussian (mean ``mu``, covariance ``S``) is fitted to each set and

    FID = |mu_r - mu_t|^2 + Tr(S_r + S_t - 2 (S_r S_t)^(1/2))

with the matrix square root from :func:`scipy.linalg.sqrtm` (:func:`frechet_distance`). Lower
is better. FID is a property of a *set* of images, so it is one number per method, not per
image; it is biased upwards for small sets (the usual figures use thousands of images), so
compare FIDs only between runs over the same images.

Feature network (``--fid-weights FILE``, or ``fid-inception.pt2`` / ``fid-inception.pt`` in the
cache folder, see :func:`m3restore.evaluation.extras.cache_dir`): a network whose ``forward``
takes a float32 tensor ``(1, 3, 299, 299)`` of RGB values in ``[0, 1]`` (images are fed one at
a time) and returns ``(1, D)`` features (``(1, D, 1, 1)`` is flattened; a tuple or list output
uses its first element), saved as either

* a ``torch.export`` archive (``torch.export.save``, extension ``.pt2``), the current format, or
* a TorchScript archive (``torch.jit.save``, any other extension), which PyTorch now deprecates
  but still loads.

The standard FID features are Inception-v3's 2048-d pool3 activations; e.g. with the
``pytorch-fid`` package, once, on a machine that has it::

    import torch
    from pytorch_fid.inception import InceptionV3

    class Pool3(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = InceptionV3([3], resize_input=False, normalize_input=True).eval()
        def forward(self, x):
            return self.net(x)[0].flatten(1)

    program = torch.export.export(Pool3().eval(), (torch.rand(1, 3, 299, 299),))
    torch.export.save(program, "fid-inception.pt2")

Images are resized to 299 x 299 (bilinear, antialiased) before the network sees them. Both
formats hold code as well as weights: load only networks you trust.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from m3restore.errors import DataError, WeightsError
from m3restore.evaluation.extras import Availability, locate_weights

__all__ = [
    "DEFAULT_FILES",
    "INPUT_SIZE",
    "FeatureNetwork",
    "fid_availability",
    "fid_from_features",
    "frechet_distance",
    "gaussian_statistics",
]

#: Files looked for in the cache folder, in this order.
DEFAULT_FILES = ("fid-inception.pt2", "fid-inception.pt")
INPUT_SIZE = 299


def gaussian_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (sample) covariance of ``(N, D)`` features, float64; needs N >= 2."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise DataError(f"FID needs at least 2 feature vectors, got an array of shape {f.shape}")
    return f.mean(axis=0), np.atleast_2d(np.cov(f, rowvar=False))


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6
) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2).

    ``sqrtm(sigma1 @ sigma2)`` comes from :func:`scipy.linalg.sqrtm`. When the product is
    singular (fewer images than feature dimensions) and the root is not finite, ``eps`` is added
    to both diagonals first. A tiny imaginary part from rounding is dropped.
    """
    from scipy import linalg

    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise DataError(f"FID statistics do not match: {mu1.shape}/{s1.shape} vs {mu2.shape}/{s2.shape}")
    diff = mu1 - mu2
    covmean = linalg.sqrtm(s1 @ s2)
    if not np.isfinite(covmean).all():
        offset = np.eye(s1.shape[0]) * eps
        covmean = linalg.sqrtm((s1 + offset) @ (s2 + offset))
    covmean = np.real(covmean)
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(covmean))


def fid_from_features(a: np.ndarray, b: np.ndarray) -> float:
    """FID between two ``(N, D)`` feature sets."""
    return frechet_distance(*gaussian_statistics(a), *gaussian_statistics(b))


class FeatureNetwork:
    """A TorchScript feature network (see the module docstring): ``net(images) -> (N, D)``."""

    def __init__(self, path: str | Path, device: str | torch.device = "cpu"):
        path = Path(path).expanduser()
        if not path.is_file():
            raise WeightsError(f"{path}: no such FID feature network file")
        try:
            if path.suffix == ".pt2":
                self.module = torch.export.load(str(path)).module().to(device)
            else:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeprecationWarning)
                    self.module = torch.jit.load(str(path), map_location=device).eval()
        except Exception as error:
            detail = " ".join(str(error).split())[:200]
            kind = "torch.export (.pt2)" if path.suffix == ".pt2" else "TorchScript"
            raise WeightsError(
                f"{path}: not a {kind} feature network ({detail}); see docs/evaluation.md for the format"
            ) from None
        self.path = path
        self.device = torch.device(device)

    @torch.no_grad()
    def features(self, images: list[np.ndarray] | np.ndarray) -> np.ndarray:
        """``(N, D)`` float64 features of float ``HxWx3`` images in ``[0, 1]`` (any sizes)."""
        out = []
        for im in images:
            x = torch.nn.functional.interpolate(
                torch.from_numpy(np.ascontiguousarray(np.asarray(im, np.float32).transpose(2, 0, 1)))[None],
                size=(INPUT_SIZE, INPUT_SIZE),
                mode="bilinear",
                align_corners=False,
                antialias=True,
            )
            x = x.clamp_(0, 1).to(self.device)
            try:
                y = self.module(x)
            except Exception as error:
                detail = " ".join(str(error).split())[:200]
                raise WeightsError(
                    f"{self.path}: the feature network failed on a 1x3x299x299 input ({detail})"
                ) from None
            if isinstance(y, (tuple, list)):
                y = y[0]
            if not isinstance(y, torch.Tensor) or y.ndim < 2 or y.shape[0] != x.shape[0]:
                raise WeightsError(f"{self.path}: the feature network must return (N, D) features")
            out.append(y.flatten(1).double().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, 0))


def fid_availability(path: str | Path | None = None) -> tuple[Availability, Path | None]:
    """``(availability, network file)``: an explicit ``path`` must exist; else the cache is searched."""
    return locate_weights("FID", "--fid-weights", path, DEFAULT_FILES, "no feature network")
