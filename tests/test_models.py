"""Tests for the M3-UNet (m3restore.models) and the multi-scale L1 loss, on tiny CPU configs."""

from __future__ import annotations

import dataclasses
import types

import pytest
import torch
import torch.nn.functional as F

from m3restore.models.m3unet import DILATION_STRATEGIES, M3UNet, M3UNetConfig
from m3restore.training.losses import frequency_l1, multiscale_l1, multiscale_loss, psnr_loss

TEXT_DIM = 16


def tiny_config(**overrides) -> M3UNetConfig:
    base = dict(width=8, enc_blocks=(1, 1), dec_blocks=(1, 1), middle_blocks=1, text_dim=TEXT_DIM, cond_dim=16, patch=2)
    base.update(overrides)
    return M3UNetConfig(**base)


def tiny_net(seed: int = 0, **overrides) -> M3UNet:
    torch.manual_seed(seed)
    return M3UNet(tiny_config(**overrides)).eval()


def perturb_zero_inits(net: torch.nn.Module, std: float = 0.1, seed: int = 1) -> torch.nn.Module:
    """Give every all-zero parameter (residual scales, gates, attention outputs) random values."""
    gen_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            if torch.count_nonzero(p) == 0:
                torch.nn.init.normal_(p, std=std)
    torch.random.set_rng_state(gen_state)
    return net


def make_text(batch: int = 2, length: int = 5, dim: int = TEXT_DIM, present=True, seed: int = 3):
    g = torch.Generator().manual_seed(seed)
    if isinstance(present, bool):
        present = [present] * batch
    present_t = torch.tensor(present, dtype=torch.bool)
    mask = torch.ones(batch, length, dtype=torch.bool)
    mask[:, -1] = False  # a padding token
    mask &= present_t[:, None]
    return types.SimpleNamespace(
        tokens=torch.randn(batch, length, dim, generator=g),
        mask=mask,
        pooled=torch.randn(batch, dim, generator=g),
        present=present_t,
    )


def image(batch: int = 2, h: int = 32, w: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.rand(batch, 3, h, w, generator=torch.Generator().manual_seed(seed))


# -- shapes -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [{"fusion": f} for f in ("early", "joint", "late", "circulant")]
    + [{"dilation": d} for d in DILATION_STRATEGIES]
    + [{"down": "maxpool", "up": "deconv"}, {"down": "strided", "up": "pixelshuffle"}]
    + [{"down": "maxpool", "up": "pixelshuffle"}, {"down": "strided", "up": "deconv"}],
    ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()),
)
def test_output_shape_for_every_option(overrides):
    net = tiny_net(**overrides)
    x = image(2, 32, 48)
    with torch.no_grad():
        y = net(x, make_text())
        y_none = net(x)
    assert y.shape == x.shape
    assert y_none.shape == x.shape
    assert torch.isfinite(y).all()


def test_dilation_strategies_build_dilated_convs():
    net = tiny_net(dilation="3,4,5", enc_blocks=(1, 1), middle_blocks=1, dec_blocks=(1, 1))
    dilations = [m.spatial.dilation for m in net.modules() if hasattr(m, "spatial")]
    assert dilations == [3, 4, 5, 3, 4]
    plain = tiny_net(dilation="1")
    assert all(m.spatial.wide is None for m in plain.modules() if hasattr(m, "spatial"))


def test_scales_returns_one_output_per_level():
    for enc in ((1, 1), (1, 1, 1)):
        net = tiny_net(enc_blocks=enc, dec_blocks=enc)
        m = net.config.multiple
        x = image(1, 2 * m, 3 * m)
        with torch.no_grad():
            outs = net(x, scales=True)
        assert len(outs) == len(enc)
        for k, out in enumerate(outs):
            assert out.shape == (1, 3, 2 * m // 2**k, 3 * m // 2**k)
        with torch.no_grad():
            assert torch.equal(outs[0], net(x))


def test_multiple_is_patch_times_levels():
    assert tiny_config().multiple == 8
    assert tiny_config(patch=1, enc_blocks=(1, 1, 1), dec_blocks=(1, 1, 1)).multiple == 8
    assert tiny_config(patch=4).multiple == 16


# -- identity at initialisation --------------------------------------------------------------


@pytest.mark.parametrize("fusion", ["joint", "circulant"])
def test_fresh_network_is_input_plus_head_residual(fusion):
    net = tiny_net(fusion=fusion)
    x = image(1, 32, 32)
    captured = {}
    final_head = net.heads[-1]

    def hook(module, args, out):
        captured["residual"] = out.clone()

    final_head.register_forward_hook(hook)
    with torch.no_grad():
        y = net(x, make_text(1))
    torch.testing.assert_close(y, x + captured["residual"], rtol=0, atol=0)
    # With the head zeroed, a fresh network is exactly the identity (global residual).
    with torch.no_grad():
        for p in final_head.parameters():
            p.zero_()
        torch.testing.assert_close(net(x, make_text(1)), x, rtol=0, atol=0)


def test_fresh_blocks_are_identity():
    from m3restore.models.blocks import M3Block, RefineLayer

    x = torch.randn(2, 8, 16, 16)
    with torch.no_grad():
        assert torch.equal(M3Block(8, 3)(x), x)
        assert torch.equal(RefineLayer(8)(x), x)


@pytest.mark.parametrize("fusion", ["joint", "late", "circulant"])
def test_fresh_network_ignores_text(fusion):
    """Zero-initialised gates and attention outputs: text cannot change an untrained network."""
    net = tiny_net(fusion=fusion)
    x = image()
    with torch.no_grad():
        torch.testing.assert_close(net(x, make_text(seed=5)), net(x, make_text(seed=6)), rtol=0, atol=0)


# -- text ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("fusion", ["early", "joint", "late", "circulant"])
def test_absent_text_equals_null_text(fusion):
    net = perturb_zero_inits(tiny_net(fusion=fusion))
    x = image()
    with torch.no_grad():
        y_none = net(x)
        y_absent = net(x, make_text(present=False))
    torch.testing.assert_close(y_absent, y_none, rtol=1e-5, atol=1e-6)


def test_mixed_batch_rows_are_independent():
    """A row with present=False gives the no-text result even when its neighbour has text."""
    net = perturb_zero_inits(tiny_net(fusion="joint"))
    x = image(2)
    text = make_text(present=[True, False])
    with torch.no_grad():
        y = net(x, text)
        y_none = net(x[1:])
        y_text = net(x[:1], types.SimpleNamespace(**{k: v[:1] for k, v in vars(text).items()}))
    torch.testing.assert_close(y[1:], y_none, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(y[:1], y_text, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("fusion", ["early", "joint", "late", "circulant"])
def test_text_changes_output_once_trained(fusion):
    net = perturb_zero_inits(tiny_net(fusion=fusion))
    x = image()
    with torch.no_grad():
        a = net(x, make_text(seed=5))
        b = net(x, make_text(seed=6))
        none = net(x)
    assert (a - b).abs().max() > 1e-4
    assert (a - none).abs().max() > 1e-4


def test_cross_attention_uses_tokens_not_only_pooled():
    net = perturb_zero_inits(tiny_net(fusion="joint"))
    x = image()
    t1 = make_text(seed=5)
    t2 = types.SimpleNamespace(**vars(t1))
    t2.tokens = t1.tokens + torch.randn_like(t1.tokens)
    with torch.no_grad():
        assert (net(x, t1) - net(x, t2)).abs().max() > 1e-4
    # Masked-out tokens must not matter.
    t3 = types.SimpleNamespace(**vars(t1))
    t3.tokens = t1.tokens.clone()
    t3.tokens[:, -1] += 100.0
    with torch.no_grad():
        torch.testing.assert_close(net(x, t3), net(x, t1), rtol=1e-5, atol=1e-6)


def test_wrong_text_dim_raises():
    net = tiny_net()
    with pytest.raises(ValueError, match="expects 16-d"):
        net(image(), make_text(dim=TEXT_DIM + 1))


@pytest.mark.parametrize("size", [(30, 32), (32, 36), (4, 8)])
def test_non_multiple_size_raises(size):
    net = tiny_net()
    with pytest.raises(ValueError, match="multiple of 8"):
        net(image(1, *size))


@pytest.mark.parametrize(
    "overrides",
    [
        {"dilation": "2"},
        {"dilation": "3,4"},
        {"fusion": "middle"},
        {"enc_blocks": (1, 1), "dec_blocks": (1,)},
        {"in_channels": 3, "out_channels": 4},
    ],
)
def test_config_validation(overrides):
    with pytest.raises(ValueError):
        tiny_config(**overrides)


def test_bad_down_up_kind_raises():
    with pytest.raises(ValueError, match="downsampling"):
        M3UNet(tiny_config(down="avgpool"))
    with pytest.raises(ValueError, match="upsampling"):
        M3UNet(tiny_config(up="bilinear"))


def test_config_round_trips_through_dict():
    from m3restore.config import from_dict, to_dict

    cfg = tiny_config(fusion="circulant", dilation="5")
    assert from_dict(M3UNetConfig, to_dict(cfg)) == cfg
    assert dataclasses.asdict(from_dict(M3UNetConfig, to_dict(cfg)))["enc_blocks"] == (1, 1)


def test_time_embedding_requires_timestep():
    net = perturb_zero_inits(tiny_net(time_embedding=True, in_channels=6, out_channels=3))
    x = torch.rand(2, 6, 32, 32)
    with pytest.raises(ValueError, match="timestep"):
        net(x)
    with torch.no_grad():
        y0 = net(x, timestep=torch.tensor([0, 0]))
        y1 = net(x, timestep=torch.tensor([500, 500]))
    assert y0.shape == (2, 3, 32, 32)
    assert (y0 - y1).abs().max() > 1e-5
    assert tiny_net().time is None


# -- training -----------------------------------------------------------------------------------

# Parameters that legitimately receive no gradient: the null-token sequence only feeds
# cross-attention, which exists only in "joint" fusion.
UNUSED_WITHOUT_ATTENTION = {"null_tokens"}


@pytest.mark.parametrize("fusion", ["early", "joint", "late", "circulant"])
def test_gradient_reaches_every_parameter(fusion):
    net = perturb_zero_inits(tiny_net(fusion=fusion)).train()
    x = image(2, 16, 16)
    target = image(2, 16, 16, seed=9)
    # One row with a prompt and one without, so both the text path and the null text are used.
    outs = net(x, make_text(present=[True, False]), scales=True)
    loss = multiscale_l1(outs, target)
    loss.backward()
    allowed = set() if fusion == "joint" else UNUSED_WITHOUT_ATTENTION
    missing = {n for n, p in net.named_parameters() if p.grad is None}
    assert missing == allowed
    zero = [n for n, p in net.named_parameters() if p.grad is not None and not torch.any(p.grad != 0)]
    assert zero == []
    # One optimiser step lowers the loss.
    opt = torch.optim.SGD(net.parameters(), lr=1e-2)
    opt.step()
    with torch.no_grad():
        assert multiscale_l1(net(x, make_text(present=[True, False]), scales=True), target) < loss


# -- multi-scale L1 -----------------------------------------------------------------------------


def test_multiscale_l1_zero_for_perfect_outputs():
    target = torch.rand(2, 3, 32, 32)
    outputs = [target, torch.nn.functional.avg_pool2d(target, 2), torch.nn.functional.avg_pool2d(target, 4)]
    assert multiscale_l1(outputs, target).item() == pytest.approx(0.0, abs=1e-7)


def test_multiscale_l1_weights_respected():
    target = torch.zeros(1, 1, 16, 16)
    outputs = [torch.full((1, 1, 16, 16), 1.0), torch.full((1, 1, 8, 8), 2.0), torch.full((1, 1, 4, 4), 4.0)]
    assert multiscale_l1(outputs, target).item() == pytest.approx(1.0 * 1 + 0.5 * 2 + 0.25 * 4)
    assert multiscale_l1(outputs, target, weights=(2.0, 0.0, 1.0)).item() == pytest.approx(2.0 + 0.0 + 4.0)
    # Beyond the given weights, each extra scale halves the last weight.
    outputs.append(torch.full((1, 1, 2, 2), 8.0))
    assert multiscale_l1(outputs, target, weights=(1.0,)).item() == pytest.approx(1 + 0.5 * 2 + 0.25 * 4 + 0.125 * 8)


def test_multiscale_l1_pools_target_per_scale():
    target = torch.rand(1, 3, 16, 16)
    coarse = torch.nn.functional.avg_pool2d(target, 2)
    loss = multiscale_l1([target, coarse + 0.1], target, weights=(1.0, 1.0))
    assert loss.item() == pytest.approx(0.1, abs=1e-6)


def test_psnr_loss_is_minus_the_mean_psnr_per_sample():
    target = torch.zeros(2, 3, 8, 8)
    output = torch.stack([torch.full((3, 8, 8), 0.1), torch.full((3, 8, 8), 0.01)])  # PSNR 20 and 40 dB
    assert psnr_loss(output, target).item() == pytest.approx(-30.0, abs=1e-3)
    # Halving the error of either sample gains the same 6.02 dB / 2, however small that error is.
    for i in range(2):
        better = output.clone()
        better[i] /= 2
        assert psnr_loss(output, target).item() - psnr_loss(better, target).item() == pytest.approx(3.0103, abs=1e-3)


def test_multiscale_loss_kinds():
    target = torch.zeros(1, 1, 16, 16)
    outputs = [torch.full((1, 1, 16, 16), 0.1), torch.full((1, 1, 8, 8), 0.01)]
    assert multiscale_loss(outputs, target, (1.0, 0.5), "l1").item() == pytest.approx(0.1 + 0.5 * 0.01)
    assert multiscale_loss(outputs, target, (1.0, 0.5), "psnr").item() == pytest.approx(-20.0 + 0.5 * -40.0, abs=1e-3)
    with pytest.raises(ValueError, match="unknown loss 'l2'.*; valid: l1, psnr"):
        multiscale_loss(outputs, target, kind="l2")


def test_frequency_l1_sees_lost_detail_that_keeps_the_mean():
    torch.manual_seed(0)
    target = torch.rand(2, 3, 16, 16)
    assert frequency_l1(target, target).item() == 0.0
    # A constant offset changes only the DC coefficient: 16*16*0.1 on one of 16*9*2 real numbers.
    assert frequency_l1(target + 0.1, target).item() == pytest.approx(25.6 / (16 * 9 * 2), rel=1e-4)
    blurred = torch.nn.functional.avg_pool2d(target, 3, stride=1, padding=1, count_include_pad=False)
    assert frequency_l1(blurred, target) > frequency_l1(0.5 * (blurred + target), target) > 0
    outputs = [blurred, torch.nn.functional.avg_pool2d(blurred, 2)]
    plain = multiscale_loss(outputs, target, (1.0, 0.5))
    extra = 0.1 * (
        frequency_l1(outputs[0], target) + 0.5 * frequency_l1(outputs[1], torch.nn.functional.avg_pool2d(target, 2))
    )
    assert multiscale_loss(outputs, target, (1.0, 0.5), fft_weight=0.1).item() == pytest.approx(
        (plain + extra).item(), rel=1e-5
    )


def test_local_mean_matches_a_sliding_average():
    from m3restore.models.blocks import _box_mean, expand, local_mean

    x = torch.randn(2, 3, 13, 17)
    inner = F.avg_pool2d(x, 5, stride=1)  # every full window
    m = _box_mean(x, 5, 5)
    assert torch.allclose(m[..., 2:-2, 2:-2], inner, atol=1e-5)
    assert torch.allclose(m[..., 0, 0], inner[..., 0, 0], atol=1e-5)  # border windows are shifted inside
    assert torch.allclose(m[..., -1, -1], inner[..., -1, -1], atol=1e-5)
    whole, f = local_mean(x, 64)
    assert f == 0 and torch.allclose(expand(whole, f, x.shape[-2:]), x.mean((2, 3), keepdim=True))
    yy, xx = torch.meshgrid(torch.arange(100.0), torch.arange(140.0), indexing="ij")
    big = torch.stack([torch.sin(xx / 9) + yy / 50, torch.cos(yy / 7) * xx / 70])[None]  # image-like structure
    coarse, f = local_mean(big, 40)  # on a 5x coarser grid, still close to the exact local mean
    exact = _box_mean(big, 40, 40)
    approx = expand(coarse, f, big.shape[-2:])
    assert f == 5 and approx.shape == big.shape
    assert (approx - exact).abs().mean() < 0.1 * exact.abs().mean()


def test_attention_window_reaches_every_block_and_travels_in_the_config():
    net = M3UNet(M3UNetConfig(width=8, enc_blocks=(1, 1), dec_blocks=(1, 1), middle_blocks=1, cond_dim=16))
    net.set_attention_window(64)
    windows = {m.window for m in net.modules() if hasattr(m, "window") and hasattr(m, "proj")}
    assert windows == {32, 16, 8}  # patch 2, then halved per level
    assert net.config.attention_window == 64
    again = M3UNet(net.config)
    assert {m.window for m in again.modules() if hasattr(m, "window") and hasattr(m, "proj")} == windows
    with pytest.raises(ValueError):
        net.set_attention_window(-1)


def test_a_window_smaller_than_the_image_is_local():
    torch.manual_seed(0)
    net = M3UNet(M3UNetConfig(width=8, enc_blocks=(1, 1), dec_blocks=(1, 1), middle_blocks=1, cond_dim=16)).eval()
    with torch.no_grad():
        for p in net.parameters():
            if torch.count_nonzero(p) == 0:
                p.normal_(std=0.3)
        x = torch.rand(1, 3, 32, 320)
        changed = x.clone()
        changed[..., 256:] = 0  # only the far right changes (and with it the global mean)
        net.set_attention_window(0)
        far_global = (net(x) - net(changed))[..., :32].abs().max()
        net.set_attention_window(16)
        far_local = (net(x) - net(changed))[..., :32].abs().max()
    assert far_global > 1e-4 and far_local < far_global / 100
