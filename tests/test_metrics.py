"""Tests for m3restore.metrics.quality against closed forms and scikit-image."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from m3restore.errors import DataError
from m3restore.metrics.quality import psnr, psnr_torch, quantize, rgb_to_y, ssim

skmetrics = pytest.importorskip("skimage.metrics")


def natural_image(rng: np.random.Generator, h: int = 64, w: int = 80, c: int = 3) -> np.ndarray:
    """Smooth gradients and blobs plus mild noise, clipped to [0, 1]."""
    y, x = np.mgrid[0:h, 0:w] / np.array([h, w]).reshape(2, 1, 1)
    chans = []
    for k in range(c):
        base = 0.5 + 0.3 * np.sin(2 * np.pi * (x * (k + 1) + 0.5 * y)) * np.cos(np.pi * y * (2 - k % 2))
        chans.append(base + 0.02 * rng.standard_normal((h, w)))
    return np.clip(np.stack(chans, axis=-1), 0.0, 1.0)


def sk_ssim(a: np.ndarray, b: np.ndarray) -> float:
    return float(
        skmetrics.structural_similarity(
            a,
            b,
            channel_axis=-1,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=1.0,
        )
    )


def test_psnr_known_mse():
    target = np.full((16, 16, 3), 0.5)
    pred = target + 0.1  # MSE = 0.01 -> 20 dB
    assert psnr(pred, target) == pytest.approx(20.0, abs=1e-9)
    assert psnr(pred, target, data_range=2.0) == pytest.approx(20.0 + 20 * math.log10(2), abs=1e-9)
    assert psnr(target, target) == math.inf


def test_psnr_matches_skimage():
    rng = np.random.default_rng(0)
    a = natural_image(rng)
    b = np.clip(a + 0.05 * rng.standard_normal(a.shape), 0, 1)
    ref = skmetrics.peak_signal_noise_ratio(a, b, data_range=1.0)
    assert psnr(b, a) == pytest.approx(ref, abs=1e-9)


def test_uint8_input_is_scaled():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, size=(20, 20, 3), dtype=np.uint8)
    b = rng.integers(0, 256, size=(20, 20, 3), dtype=np.uint8)
    assert psnr(a, b) == pytest.approx(psnr(a / 255.0, b / 255.0))
    assert ssim(a, b) == pytest.approx(ssim(a / 255.0, b / 255.0))


@pytest.mark.parametrize("channels", [1, 3])
def test_ssim_matches_skimage_random(channels):
    rng = np.random.default_rng(2)
    a = rng.random((48, 40, channels))
    b = np.clip(a + 0.2 * rng.standard_normal(a.shape), 0, 1)
    assert ssim(b, a) == pytest.approx(sk_ssim(b, a), abs=1e-3)
    assert ssim(b, a) == pytest.approx(sk_ssim(b, a), abs=1e-10)  # same definition, not just close


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("noise", [0.01, 0.05, 0.15])
def test_ssim_matches_skimage_natural(channels, noise):
    rng = np.random.default_rng(3)
    a = natural_image(rng, c=channels)
    b = np.clip(a + noise * rng.standard_normal(a.shape), 0, 1)
    assert ssim(b, a) == pytest.approx(sk_ssim(b, a), abs=1e-3)


def test_ssim_grey_2d_and_identical():
    rng = np.random.default_rng(4)
    a = natural_image(rng, c=1)
    b = np.clip(a + 0.05 * rng.standard_normal(a.shape), 0, 1)
    assert ssim(b[:, :, 0], a[:, :, 0]) == pytest.approx(ssim(b, a))
    assert ssim(a, a) == pytest.approx(1.0)
    assert psnr(b[:, :, 0], a[:, :, 0]) == pytest.approx(psnr(b, a))


def test_rgb_to_y_bt601():
    color = pytest.importorskip("skimage.color")
    rng = np.random.default_rng(5)
    img = rng.random((10, 12, 3))
    y = rgb_to_y(img)
    assert y.shape == (10, 12, 1)
    np.testing.assert_allclose(y[:, :, 0], color.rgb2ycbcr(img)[:, :, 0] / 255.0, atol=1e-12)
    assert rgb_to_y(np.zeros((2, 2, 3)))[0, 0, 0] == pytest.approx(16 / 255)
    assert rgb_to_y(np.ones((2, 2, 3)))[0, 0, 0] == pytest.approx(235 / 255)


def test_y_channel_path():
    rng = np.random.default_rng(6)
    a = natural_image(rng)
    b = np.clip(a + 0.05 * rng.standard_normal(a.shape), 0, 1)
    ya, yb = rgb_to_y(a), rgb_to_y(b)
    assert ssim(b, a, y_channel=True) == pytest.approx(sk_ssim(yb, ya), abs=1e-3)
    assert psnr(b, a, y_channel=True) == pytest.approx(
        skmetrics.peak_signal_noise_ratio(ya, yb, data_range=1.0), abs=1e-9
    )
    # A grey image has no colour conversion to do.
    assert ssim(b[:, :, :1], a[:, :, :1], y_channel=True) == pytest.approx(ssim(b[:, :, :1], a[:, :, :1]))


def test_crop_border():
    rng = np.random.default_rng(7)
    a = natural_image(rng)
    b = np.clip(a + 0.05 * rng.standard_normal(a.shape), 0, 1)
    b[:4] = 1.0 - a[:4]  # damage only the border
    inner = (slice(4, -4), slice(4, -4))
    assert psnr(b, a, crop_border=4) == pytest.approx(psnr(b[inner], a[inner]))
    assert ssim(b, a, crop_border=4) == pytest.approx(sk_ssim(b[inner], a[inner]), abs=1e-3)
    assert psnr(b, a, crop_border=4) > psnr(b, a)


def test_quantize():
    img = np.array([[[0.0, 0.5, 1.0]], [[-0.2, 1.3, 0.2]]])
    q = quantize(img)
    np.testing.assert_allclose(q * 255, np.round(q * 255))
    np.testing.assert_allclose(q, [[[0.0, 128 / 255, 1.0]], [[0.0, 1.0, 51 / 255]]])
    np.testing.assert_allclose(quantize(q), q)
    assert quantize(img.astype(np.float32)).dtype == np.float32


def test_psnr_torch_equals_psnr():
    rng = np.random.default_rng(8)
    targets = np.stack([natural_image(rng) for _ in range(3)])
    preds = np.clip(targets + 0.03 * rng.standard_normal(targets.shape), 0, 1)
    preds[2] = targets[2]
    t = torch.from_numpy(targets).permute(0, 3, 1, 2).float()
    p = torch.from_numpy(preds).permute(0, 3, 1, 2).float().requires_grad_(True)
    out = psnr_torch(p, t)
    assert out.shape == (3,) and not out.requires_grad
    for i in range(2):
        ref = psnr(p[i].detach().permute(1, 2, 0).double().numpy(), t[i].permute(1, 2, 0).double().numpy())
        assert float(out[i]) == pytest.approx(ref, abs=1e-4)
    assert math.isinf(float(out[2]))


def test_errors():
    a = np.zeros((20, 20, 3))
    with pytest.raises(DataError):
        psnr(a, np.zeros((20, 21, 3)))
    with pytest.raises(DataError):
        ssim(np.zeros((10, 10, 3)), np.zeros((10, 10, 3)))
    with pytest.raises(DataError):
        psnr(a, a, crop_border=10)
    with pytest.raises(ValueError):
        psnr(a, a, data_range=0)
    with pytest.raises(DataError):
        psnr_torch(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 5))


def test_ssim_numpy_fallback_matches(monkeypatch):
    from m3restore.metrics import quality

    rng = np.random.default_rng(9)
    a = natural_image(rng, h=30, w=26)
    b = np.clip(a + 0.05 * rng.standard_normal(a.shape), 0, 1)
    fast = ssim(b, a)
    monkeypatch.setattr(quality, "_cv2", None)
    assert ssim(b, a) == pytest.approx(fast, abs=1e-12)


def test_sharpness_falls_with_blur_and_needs_no_reference():
    import cv2

    from m3restore.metrics.sharpness import sharpness

    rng = np.random.default_rng(0)
    img = np.kron(rng.random((12, 12, 3)), np.ones((8, 8, 1))).astype(np.float32)  # hard edges
    blurred = cv2.GaussianBlur(img, (0, 0), 2.0)
    assert sharpness(img) > 1.5 * sharpness(blurred) > 0
    assert sharpness(np.full((32, 32, 3), 0.5, np.float32)) == 0.0
    assert sharpness((img * 255).astype(np.uint8)) == pytest.approx(sharpness(img), rel=0.02)
    assert sharpness(img[..., 0]) > 0  # grey works too
