"""Tests for m3restore.pipeline.tiling: padding, overlapping tiles with blending, auto tile size."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from m3restore.pipeline.tiling import BYTES_PER_PIXEL, auto_tile, pad_to_multiple, run_tiled


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = torch.mean((a.double() - b.double()) ** 2).item()
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


def smooth_image(h: int, w: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, max(2, h // 8), max(2, w // 8), generator=g)
    img = F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False)
    return (img + 0.02 * torch.randn(1, 3, h, w, generator=g)).clamp(0, 1)


def identity(t: torch.Tensor, _pos) -> torch.Tensor:
    return t


# -- padding ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("h", "w", "multiple"), [(37, 53, 8), (32, 32, 8), (5, 3, 8), (64, 17, 16), (1, 1, 4)])
def test_pad_to_multiple(h, w, multiple):
    x = torch.rand(1, 3, h, w)
    padded, size = pad_to_multiple(x, multiple)
    assert size == (h, w)
    H, W = padded.shape[-2:]
    assert H % multiple == 0 and W % multiple == 0
    assert 0 <= H - h < multiple and 0 <= W - w < multiple
    assert torch.equal(padded[..., :h, :w], x)  # the crop gives back the original
    if (H, W) == (h, w):
        assert padded is x


def test_pad_reflects_when_possible():
    x = torch.arange(10.0).reshape(1, 1, 1, 10).expand(1, 1, 10, 10).contiguous()
    padded, _ = pad_to_multiple(x, 4)
    assert padded.shape[-2:] == (12, 12)
    assert padded[0, 0, 0, 10:].tolist() == [8.0, 7.0]  # reflect, not zeros


# -- run_tiled ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("h", "w", "tile", "overlap"),
    [(37, 53, 16, 8), (37, 53, 24, 16), (64, 96, 32, 16), (37, 53, 0, 16), (37, 53, 256, 32), (40, 40, 8, 0)],
)
def test_identity_fn_returns_input(h, w, tile, overlap):
    x = torch.rand(1, 3, h, w)
    y = run_tiled(identity, x, tile, overlap, multiple=8)
    assert y.shape == x.shape
    torch.testing.assert_close(y, x, rtol=0, atol=1e-6)


def test_tiles_are_multiples_and_cover_the_image():
    seen = []
    coverage = torch.zeros(1, 1, 40, 56)

    def fn(t, pos):
        top, left = pos
        seen.append((t.shape[-2:], pos))
        coverage[..., top : top + t.shape[-2], left : left + t.shape[-1]] += 1
        return t

    run_tiled(fn, torch.rand(1, 3, 37, 53), tile=20, overlap=8, multiple=8)  # tile rounds to 16
    assert len(seen) > 1
    for shape, (top, left) in seen:
        assert shape == (16, 16)
        assert top % 8 == 0 and left % 8 == 0
    assert coverage.min() >= 1


def test_out_channels_and_channel_change():
    x = torch.rand(1, 3, 24, 40)
    y = run_tiled(lambda t, _p: t[:, :1] * 2, x, tile=16, overlap=8, multiple=8)
    assert y.shape == (1, 1, 24, 40)
    torch.testing.assert_close(y, x[:, :1] * 2, rtol=0, atol=1e-6)


def test_tiled_blur_matches_untiled():
    """A position-independent convolution, tiled with overlap 16, is close to the untiled result.

    Tile borders see replicate padding instead of the true neighbours; the feathered blending
    must hide that.
    """
    g = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0])
    kernel = (g[:, None] * g[None, :]) / g.sum() ** 2
    weight = kernel.expand(3, 1, 5, 5).contiguous()

    def blur(t, _pos):
        return F.conv2d(F.pad(t, (2, 2, 2, 2), mode="replicate"), weight, groups=3)

    x = smooth_image(96, 128)
    untiled = run_tiled(blur, x, 0, 0, multiple=8)
    tiled = run_tiled(blur, x, 32, 16, multiple=8)
    assert tiled.shape == untiled.shape == x.shape
    assert psnr(tiled, untiled) > 40
    # Sanity: without overlap the seams are visible, so the check above is not vacuous.
    hard = run_tiled(blur, x, 32, 0, multiple=8)
    assert psnr(hard, untiled) < psnr(tiled, untiled)


# -- auto_tile ----------------------------------------------------------------------------------


def test_auto_tile_small_image_is_untiled():
    assert auto_tile(64, 64, 8) == 0
    assert auto_tile(512, 512, 8) == 0


def test_auto_tile_large_image():
    tile = auto_tile(3000, 4000, 8)
    assert tile > 0
    assert tile % 8 == 0
    assert tile * tile * BYTES_PER_PIXEL <= 2.5 * 2**30
    smaller = auto_tile(3000, 4000, 8, budget_bytes=0.25 * 2**30)
    assert 0 < smaller < tile
    assert smaller % 8 == 0
    odd_multiple = auto_tile(3000, 4000, 24)
    assert odd_multiple % 24 == 0
    assert auto_tile(3000, 4000, 16, budget_bytes=1) == 16 * 4  # floor of four multiples
