"""Tests for m3restore.pipeline.ensemble and the pipeline's --ensemble option."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_pipeline import identity_net, psnr, smooth_image, tiny_net

from m3restore.errors import ConfigError
from m3restore.pipeline.ensemble import SIZES, VIEWS, _backward, _forward, check_ensemble, self_ensemble
from m3restore.pipeline.restore import RestorePipeline


def test_every_view_is_undone_by_its_inverse_and_the_views_differ():
    x = torch.arange(2 * 3 * 4 * 6, dtype=torch.float32).reshape(2, 3, 4, 6)
    seen = set()
    for view in VIEWS:
        moved = _forward(x, view)
        assert torch.equal(_backward(moved, view), x)
        seen.add(tuple(moved.flatten().tolist()))
    assert len(seen) == len(VIEWS) == max(SIZES)


def test_the_mean_is_taken_over_the_views_mapped_back():
    # A position-dependent function: adds a ramp that grows to the right. Each view sees the
    # ramp in its own frame, so the ensemble's result is the input plus the mean of the ramps
    # mapped back, which differs from a single pass.
    def fn(t):
        return t + torch.linspace(0, 1, t.shape[-1]).expand_as(t)

    x = torch.rand(1, 3, 8, 8)
    ramp = torch.linspace(0, 1, 8).expand(1, 3, 8, 8)
    expected = {
        1: x + ramp,
        2: x + (ramp + ramp.flip(-1)) / 2,  # identity + horizontal mirror
        4: x + (ramp + ramp.flip(-1)) / 2,  # the vertical flips leave a horizontal ramp alone
        8: x + (ramp + ramp.flip(-1) + ramp.transpose(-1, -2) + ramp.transpose(-1, -2).flip(-2)) / 4,
    }
    for n, want in expected.items():
        torch.testing.assert_close(self_ensemble(fn, x, n), want)


def test_non_square_tiles_and_extra_channels_come_back_in_shape():
    x = torch.rand(1, 3, 8, 12)
    y = self_ensemble(lambda t: torch.cat([t, t[:, :1]], dim=1), x, 8)
    assert y.shape == (1, 4, 8, 12)
    torch.testing.assert_close(y[:, :3], x)


@pytest.mark.parametrize("bad", [0, 3, 16, -1])
def test_invalid_sizes_name_the_valid_ones(bad):
    with pytest.raises(ConfigError, match="1, 2, 4, 8"):
        check_ensemble(bad)
    with pytest.raises(ConfigError, match="--ensemble"):
        RestorePipeline(identity_net(), device="cpu", dtype="fp32", tile=0, ensemble=bad)


def test_identity_network_stays_identity_under_the_ensemble():
    img = smooth_image(30, 44)  # odd-ish sizes: padded, transposed and cropped back
    out = RestorePipeline(identity_net(), device="cpu", dtype="fp32", tile=0, ensemble=8)(img)
    np.testing.assert_allclose(out, img, atol=1e-6)


def test_ensemble_reduces_a_networks_orientation_bias():
    """A network that is not flip-equivariant: the ensemble's error on noisy input is lower
    than the average single view's, and equals the mean of the views computed by hand."""
    net = tiny_net(seed=4)
    clean = smooth_image(32, 32, seed=5)
    rng = np.random.default_rng(0)
    noisy = np.clip(clean + rng.normal(0, 0.1, clean.shape), 0, 1).astype(np.float32)
    single = RestorePipeline(net, device="cpu", dtype="fp32", tile=0)
    eight = RestorePipeline(net, device="cpu", dtype="fp32", tile=0, ensemble=8)
    x = torch.from_numpy(noisy.transpose(2, 0, 1).copy())[None]
    with torch.inference_mode():
        views = [_backward(net(_forward(x, v)), v).clamp(0, 1) for v in VIEWS]
    by_hand = torch.stack(views).mean(0).clamp(0, 1)[0].permute(1, 2, 0).numpy()
    out = eight(noisy)
    assert eight.describe()["ensemble"] == 8
    assert not np.allclose(out, single(noisy), atol=1e-4)  # the views do disagree
    # Views are averaged before clamping, so clamp only matters at the range's ends.
    assert psnr(out, by_hand) > 40
    singles = [psnr(v[0].permute(1, 2, 0).numpy(), clean) for v in views]
    assert psnr(out, clean) > np.mean(singles)


def test_ensemble_with_tiles_matches_untiled():
    net = tiny_net(seed=2)
    img = smooth_image(64, 96, seed=7)
    untiled = RestorePipeline(net, device="cpu", dtype="fp32", tile=0, ensemble=4)(img)
    tiled = RestorePipeline(net, device="cpu", dtype="fp32", tile=32, overlap=16, ensemble=4)(img)
    assert psnr(tiled, untiled) > 50
