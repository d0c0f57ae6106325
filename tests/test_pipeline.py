"""Tests for m3restore.pipeline.restore: input kinds, tiling, devices/dtypes, NaN guard, prompts."""

from __future__ import annotations

import io
import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image as PILImage
from PIL import ImageCms

import m3restore.io
from m3restore.errors import ConfigError, DeviceError, WeightsError
from m3restore.models.m3unet import M3UNet, M3UNetConfig
from m3restore.pipeline.restore import RestorePipeline, _parse_tile
from m3restore.text.encoder import TextEmbedding

TEXT_DIM = 16


def tiny_net(seed: int = 0, std: float = 0.05) -> M3UNet:
    """A tiny network with small random values in every zero-initialised parameter (trained-like)."""
    torch.manual_seed(seed)
    cfg = M3UNetConfig(
        width=8, enc_blocks=(1, 1), dec_blocks=(1, 1), middle_blocks=1, text_dim=TEXT_DIM, cond_dim=16, patch=2
    )
    net = M3UNet(cfg)
    with torch.no_grad():
        for p in net.parameters():
            if torch.count_nonzero(p) == 0:
                p.normal_(std=std)
        # Keep the predicted residual small, as a trained restorer's is.
        net.heads[-1][0].weight.mul_(0.1)
    return net.eval()


def identity_net() -> M3UNet:
    """Fresh blocks plus a zeroed output head: exactly the identity through the global residual."""
    torch.manual_seed(0)
    net = M3UNet(
        M3UNetConfig(width=8, enc_blocks=(1, 1), dec_blocks=(1, 1), middle_blocks=1, text_dim=TEXT_DIM, cond_dim=16)
    )
    with torch.no_grad():
        for p in net.heads[-1].parameters():
            p.zero_()
    return net.eval()


def smooth_image(h: int, w: int, seed: int = 0, channels: int = 3) -> np.ndarray:
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, channels, max(2, h // 8), max(2, w // 8), generator=g)
    img = F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False)
    img = (img + 0.03 * torch.randn(1, channels, h, w, generator=g)).clamp(0, 1)
    return img[0].permute(1, 2, 0).numpy().astype(np.float32)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


class FakeEncoder:
    name = "fake-encoder"

    def __init__(self):
        self.calls: list[list[str]] = []

    def encode(self, prompts):
        self.calls.append(list(prompts))
        g = torch.Generator().manual_seed(len(prompts[0]))
        b, length = len(prompts), 4
        return TextEmbedding(
            tokens=torch.randn(b, length, TEXT_DIM, generator=g),
            mask=torch.ones(b, length, dtype=torch.bool),
            pooled=torch.randn(b, TEXT_DIM, generator=g),
            present=torch.ones(b, dtype=torch.bool),
        )


@pytest.fixture(scope="module")
def ident() -> RestorePipeline:
    return RestorePipeline(identity_net(), device="cpu", dtype="fp32", tile=0)


@pytest.fixture(scope="module")
def pipe() -> RestorePipeline:
    return RestorePipeline(tiny_net(), device="cpu", dtype="fp32", tile=0)


# -- input kinds (identity network: output must equal input) ------------------------------------


def test_float_rgb(ident, pipe):
    img = smooth_image(32, 48)
    out = ident(img)
    assert out.dtype == np.float32 and out.shape == img.shape
    np.testing.assert_allclose(out, img, atol=1e-6)
    restored = pipe(img)
    assert restored.shape == img.shape and restored.dtype == np.float32
    assert restored.min() >= 0 and restored.max() <= 1
    assert not np.allclose(restored, img, atol=1e-4)  # the network did something
    assert pipe.last.tile == 0 and pipe.last.seconds > 0


def test_uint8_rgb(ident):
    img = (smooth_image(32, 40) * 255).round().astype(np.uint8)
    out = ident(img)
    assert out.dtype == np.uint8 and out.shape == img.shape
    np.testing.assert_array_equal(out, img)


@pytest.mark.parametrize("shape", [(32, 40), (32, 40, 1)])
def test_grey_stays_grey(ident, shape):
    img = smooth_image(32, 40, channels=1).reshape(shape)
    out = ident(img)
    assert out.shape == shape
    np.testing.assert_allclose(out, img, atol=1e-6)
    grey8 = (img * 255).round().astype(np.uint8)
    np.testing.assert_array_equal(ident(grey8), grey8)


def test_uint16_and_alpha_arrays_come_back_as_they_went_in(ident):
    rgb16 = (smooth_image(32, 40) * 65535).round().astype(np.uint16)
    out = ident(rgb16)
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, rgb16)
    alpha = np.random.default_rng(2).integers(0, 256, (32, 40, 1), dtype=np.uint8)
    rgba = np.concatenate([(smooth_image(32, 40) * 255).round().astype(np.uint8), alpha], axis=-1)
    np.testing.assert_array_equal(ident(rgba), rgba)  # HxWx4: alpha passed through


def test_pil_16_bit_grey_is_not_clipped_to_8_bits(ident):
    grey16 = (smooth_image(32, 40, channels=1)[..., 0] * 65535).round().astype(np.uint16)
    for image in (PILImage.fromarray(grey16), PILImage.fromarray(grey16).convert("I")):
        out = ident(image)
        assert out.mode == image.mode
        np.testing.assert_array_equal(np.asarray(out), np.asarray(image))


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.full((8, 8, 3), 200.0), r"float pixels must lie in \[0, 1\]; these span \[200, 200\]; divide 0-255"),
        (np.full((8, 8, 3), np.nan), "NaN or infinite"),
        (np.zeros((0, 8, 3), np.uint8), "an empty image"),
        (np.ones((8, 8, 3), np.int64), "int64 pixels: pass uint8"),
        (np.ones((8, 8, 5), np.uint8), "got shape"),
    ],
)
def test_arrays_the_pipeline_cannot_read_say_why(ident, array, message):
    with pytest.raises(ConfigError, match=message):
        ident(array)


def test_pil_rgb(ident):
    arr = (smooth_image(32, 40) * 255).round().astype(np.uint8)
    out = ident(PILImage.fromarray(arr, "RGB"))
    assert isinstance(out, PILImage.Image)
    assert out.mode == "RGB" and out.size == (40, 32)
    np.testing.assert_array_equal(np.asarray(out), arr)


def test_pil_keeps_what_pillow_saves_with_the_picture(ident):
    arr = (smooth_image(32, 40) * 255).round().astype(np.uint8)
    img = PILImage.fromarray(arr, "RGB")
    exif = PILImage.Exif()
    exif[0x010F] = "Canon"
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    img.info.update(icc_profile=srgb, exif=exif.tobytes(), dpi=(300, 300))
    out = ident(img)
    assert out.info["icc_profile"] == srgb and out.info["dpi"] == (300, 300)
    assert out.getexif()[0x010F] == "Canon"
    cmyk = PILImage.fromarray(arr, "RGB").convert("CMYK")
    cmyk.info.update(icc_profile=srgb[:16] + b"CMYK" + srgb[20:], dpi=(72, 72))  # a profile for CMYK pixels
    out = ident(cmyk)
    assert "icc_profile" not in out.info and out.info["dpi"] == (72, 72)


def test_pil_rgba_keeps_alpha_exactly(pipe):
    rgb = (smooth_image(32, 40) * 255).round().astype(np.uint8)
    alpha = np.random.default_rng(0).integers(0, 256, (32, 40), dtype=np.uint8)
    img = PILImage.fromarray(np.dstack([rgb, alpha]), "RGBA")
    out = pipe(img)
    assert out.mode == "RGBA" and out.size == img.size
    np.testing.assert_array_equal(np.asarray(out.getchannel("A")), alpha)


def test_pil_palette_with_transparency_keeps_it(ident):
    rgba = np.zeros((32, 40, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[8:24, 8:32, 3] = 255  # a transparent frame around an opaque red box
    buffer = io.BytesIO()
    PILImage.fromarray(rgba, "RGBA").quantize(colors=4).save(buffer, "PNG")
    palette = PILImage.open(buffer)  # as a web graphic opens: a palette with transparent entries
    assert palette.mode == "P" and "transparency" in palette.info
    out = ident(palette)
    assert out.mode == "RGBA"
    np.testing.assert_array_equal(np.asarray(out.getchannel("A")), np.asarray(palette.convert("RGBA").getchannel("A")))


def test_pil_grey_stays_grey(ident):
    arr = (smooth_image(32, 40, channels=1)[..., 0] * 255).round().astype(np.uint8)
    out = ident(PILImage.fromarray(arr, "L"))
    assert out.mode == "L"
    np.testing.assert_array_equal(np.asarray(out), arr)


def test_m3restore_image_rgb_with_alpha(pipe, ident):
    pixels = smooth_image(32, 40)
    alpha = np.random.default_rng(1).integers(0, 65536, (32, 40), dtype=np.uint16)
    img = m3restore.io.Image(pixels, alpha, 16)
    out = pipe(img)
    assert isinstance(out, m3restore.io.Image)
    assert out.pixels.shape == pixels.shape
    assert out.bit_depth == 16
    np.testing.assert_array_equal(out.alpha, alpha)
    np.testing.assert_allclose(ident(img).pixels, pixels, atol=1e-6)


def test_m3restore_image_grey(ident):
    pixels = smooth_image(32, 40, channels=1)
    out = ident(m3restore.io.Image(pixels, None, 8))
    assert out.pixels.shape == (32, 40, 1)
    assert out.alpha is None
    np.testing.assert_allclose(out.pixels, pixels, atol=1e-5)


# -- sizes and tiling ---------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(37, 53), (9, 8), (33, 31)])
def test_odd_sizes_come_back_the_same_size(pipe, ident, size):
    img = smooth_image(*size)
    out = pipe(img)
    assert out.shape == img.shape
    np.testing.assert_allclose(ident(img), img, atol=1e-6)


def test_tiled_matches_untiled():
    img = smooth_image(64, 96, seed=3)
    net = tiny_net(seed=1)
    untiled_pipe = RestorePipeline(net, device="cpu", dtype="fp32", tile=0)
    tiled_pipe = RestorePipeline(net, device="cpu", dtype="fp32", tile=32, overlap=16)
    untiled = untiled_pipe(img)
    tiled = tiled_pipe(img)
    assert tiled_pipe.last.tile == 32
    assert tiled.shape == untiled.shape == img.shape
    assert abs(psnr(tiled, img) - psnr(untiled, img)) < 0.1
    assert psnr(tiled, untiled) > 50  # hard (overlap 0) tiles give ~45 dB here
    # The per-call tile argument overrides the pipeline's.
    np.testing.assert_allclose(untiled_pipe(img, tile=32), tiled, atol=1e-6)


def test_auto_tile_small_image(pipe):
    auto = RestorePipeline(tiny_net(), device="cpu", dtype="fp32", tile="auto")
    auto(smooth_image(32, 32))
    assert auto.last.tile == 0


# -- devices and dtypes -------------------------------------------------------------------------


def test_fp16_on_cpu_is_refused():
    with pytest.raises(DeviceError) as excinfo:
        RestorePipeline(tiny_net(), device="cpu", dtype="fp16")
    assert "\n" not in str(excinfo.value)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_without_cuda_is_refused():
    with pytest.raises(DeviceError):
        RestorePipeline(tiny_net(), device="cuda", dtype="fp32")


@pytest.mark.filterwarnings("ignore:this CPU has no bf16 instructions")
def test_bf16_on_cpu_is_close_to_fp32(pipe):
    img = smooth_image(32, 48, seed=2)
    bf16 = RestorePipeline(tiny_net(), device="cpu", dtype="bf16", tile=0)
    assert bf16.dtype == torch.bfloat16
    assert next(bf16.predictor.parameters()).dtype == torch.bfloat16
    out = bf16(img)
    assert out.dtype == np.float32 and np.isfinite(out).all()
    assert psnr(out, pipe(img)) > 30
    assert bf16.last.fp32_fallback_tiles == 0


@pytest.mark.parametrize("has_bf16", [False, True])
def test_bf16_on_a_cpu_without_bf16_instructions_warns(monkeypatch, has_bf16):
    from m3restore.device import resolve_dtype

    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: has_bf16, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert resolve_dtype("bf16", torch.device("cpu")) == torch.bfloat16
        assert resolve_dtype("fp32", torch.device("cpu")) == torch.float32
    messages = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    if has_bf16:
        assert messages == []
    else:
        assert len(messages) == 1 and "no bf16 instructions" in messages[0] and "--dtype fp32" in messages[0]


@pytest.mark.filterwarnings("ignore:this CPU has no bf16 instructions")
def test_nan_guard_falls_back_to_fp32(pipe):
    img = smooth_image(32, 48, seed=4)
    expected = pipe(img)
    guarded = RestorePipeline(tiny_net(), device="cpu", dtype="bf16", tile=0)

    def broken(x, text=None):
        return torch.full_like(x, float("nan"))

    guarded.predictor = broken
    with pytest.warns(RuntimeWarning, match="fp32"):
        out = guarded(img)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out, expected, atol=1e-6)
    assert guarded.last.fp32_fallback_tiles > 0
    # Tiled, every tile falls back.
    with pytest.warns(RuntimeWarning):
        tiled = guarded(smooth_image(64, 64), tile=32)
    assert np.isfinite(tiled).all()
    assert guarded.last.fp32_fallback_tiles > 1


# -- options ------------------------------------------------------------------------------------


def test_parse_tile():
    assert _parse_tile("auto") == "auto"
    assert _parse_tile(" AUTO ") == "auto"
    assert _parse_tile("64") == 64
    assert _parse_tile(0) == 0
    assert _parse_tile(128) == 128
    for bad in ("big", "", "1.5", -1, "-8"):
        with pytest.raises(ConfigError) as excinfo:
            _parse_tile(bad)
        assert "\n" not in str(excinfo.value)
    with pytest.raises(ConfigError):
        RestorePipeline(tiny_net(), device="cpu", dtype="fp32", tile="huge")


# -- prompts ------------------------------------------------------------------------------------


def test_whitespace_prompt_is_no_prompt():
    encoder = FakeEncoder()
    net = tiny_net()
    with_encoder = RestorePipeline(net, encoder, device="cpu", dtype="fp32", tile=0)
    assert with_encoder.text_encoder_name == "fake-encoder"
    img = smooth_image(32, 32)
    no_prompt = with_encoder(img)
    for prompt in ("", "   ", "\t\n ", None):
        out = with_encoder(img, prompt)
        assert encoder.calls == []
        assert with_encoder.last.prompt == ""
        np.testing.assert_array_equal(out, no_prompt)


def test_prompt_is_normalised_and_changes_the_result():
    encoder = FakeEncoder()
    pipe_text = RestorePipeline(tiny_net(), encoder, device="cpu", dtype="fp32", tile=0)
    img = smooth_image(32, 32)
    plain = pipe_text(img)
    out = pipe_text(img, "  street\t sign \n")
    assert encoder.calls == [["street sign"]]
    assert pipe_text.last.prompt == "street sign"
    assert np.abs(out - plain).max() > 1e-4


def test_prompt_without_encoder_is_an_error(pipe):
    with pytest.raises(WeightsError):
        pipe(smooth_image(16, 16), "a prompt")
