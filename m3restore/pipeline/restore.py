"""The restore pipeline: one call from a degraded image (and optional text) to a restored one.

    pipe = load_pipeline()                       # shipped bundle, best device
    restored = pipe(image, prompt="street sign")

``image`` may be a float32 array in [0, 1] (HxW, HxWx1 or HxWx3), a uint8 array, a PIL image
or an :class:`m3restore.io.Image`; the result has the same kind. Alpha channels pass through
untouched; grey stays grey; the colour profile, EXIF and DPI stay with the picture (``.metadata``
of an Image, ``.info`` of a PIL image).

With ``steps > 0`` the bundle's diffusion refiner samples a residual on top of the predictor's
estimate (``m3restore.diffusion.refine``); ``samples > 1`` returns the mean of that many
samples and keeps their per-pixel standard deviation in ``pipe.last.uncertainty``. With
``ensemble`` 2, 4 or 8 the predictor's estimate is the mean over that many flipped and
transposed views of each tile (``m3restore.pipeline.ensemble``).
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from m3restore.device import all_finite, resolve_device, resolve_dtype
from m3restore.errors import ConfigError, WeightsError
from m3restore.pipeline.ensemble import check_ensemble, self_ensemble
from m3restore.pipeline.tiling import auto_tile, run_tiled

DEFAULT_OVERLAP = 64  # wide enough that tile borders agree with the untiled result to ~36-40 dB


@dataclass
class RestoreInfo:
    """What the last call did: prompt used, tile size, timings, fallbacks."""

    prompt: str = ""
    merged: Any = None  # m3restore.caption.prompt.MergedPrompt: where the prompt's parts came from
    tile: int = 0
    seconds: float = 0.0
    fp32_fallback_tiles: int = 0
    steps: int = 0
    samples: int = 1
    uncertainty: Any = None  # HxW float32: per-pixel std of the samples (samples > 1)
    notes: list[str] = field(default_factory=list)
    # The automatic prompt came out empty (the analyzer found nothing the predictor is prompted
    # for, and the user gave no words): the image was handed back unchanged (see __call__).
    passthrough: bool = False


@dataclass
class Sampling:
    """How the diffusion refiner runs: ``steps`` 0 means the predictor alone."""

    steps: int = 0
    sampler: str = "dpm-solver++"
    samples: int = 1
    guidance: float = 1.0

    def __post_init__(self) -> None:
        from m3restore.diffusion.refine import check_sampler, check_steps

        check_steps(self.steps)
        check_sampler(self.sampler)
        if self.samples < 1:
            raise ConfigError(f"--samples {self.samples}: must be at least 1")
        if self.samples > 1 and self.steps == 0:
            raise ConfigError("--samples needs --steps > 0: the predictor alone gives one answer")
        if not (0.0 <= self.guidance <= 20.0):
            raise ConfigError(f"--guidance {self.guidance}: must be between 0 and 20 (1 = no guidance)")


class RestorePipeline:
    """Predictor (+ text encoder) on a device, with padding, tiling and the fp16 NaN guard."""

    def __init__(
        self,
        predictor: torch.nn.Module,
        text_encoder=None,
        *,
        device: str | torch.device = "auto",
        dtype: str | torch.dtype = "auto",
        tile: int | str = "auto",
        overlap: int = DEFAULT_OVERLAP,
        memory_budget_gb: float = 2.5,
        text_encoder_name: str | None = None,
        bundle=None,
        analyzer=None,
        captioner=None,
        auto_prompt: bool = False,
        refiner: torch.nn.Module | None = None,
        sampling: Sampling | None = None,
        ensemble: int = 1,
    ):
        self.ensemble = check_ensemble(ensemble)
        self.device = device if isinstance(device, torch.device) else resolve_device(device)
        self.dtype = dtype if isinstance(dtype, torch.dtype) else resolve_dtype(dtype, self.device)
        self._fp32 = predictor.float().eval()
        self.predictor = self._place(self._fp32, self.dtype)
        self._text_encoder = text_encoder
        self.text_encoder_name = text_encoder_name or getattr(text_encoder, "name", None)
        self.tile = _parse_tile(tile)
        self.overlap = int(overlap)
        self.memory_budget = memory_budget_gb * 2**30
        self.bundle = bundle
        self._analyzer = analyzer
        self.captioner = captioner
        self.auto_prompt = bool(auto_prompt)
        self._warned_prompts: set[str] = set()
        self.last_merged = None
        self._cleaned: dict = {}
        self.last = RestoreInfo()
        self.sampling = sampling or Sampling()
        self._refiner_fp32 = refiner.float().eval() if refiner is not None else None
        self.refiner = self._place(self._refiner_fp32, self.dtype) if refiner is not None else None
        if self.sampling.steps and self.refiner is None:
            if bundle is not None and bundle.has("refiner"):
                self._refiner_fp32 = bundle.load("refiner").float().eval()
                self.refiner = self._place(self._refiner_fp32, self.dtype)
            else:
                where = f"{bundle.path} " if bundle is not None else ""
                raise WeightsError(f"this bundle {where}has no refiner; use --steps 0 (the predictor alone)")

    def _place(self, net: torch.nn.Module, dtype: torch.dtype) -> torch.nn.Module:
        if dtype != torch.float32:
            net = copy.deepcopy(net)
        return net.to(self.device, dtype).to(memory_format=torch.channels_last).eval()

    @classmethod
    def from_bundle(
        cls, weights=None, *, device="auto", dtype="auto", tile="auto", text_encoder=None, captioner=None, **kwargs
    ):
        from m3restore.weights import open_bundle

        bundle = open_bundle(weights)
        predictor = bundle.load("predictor")
        recorded = bundle.index.get("text_encoder", {}).get("name")
        if text_encoder is not None and recorded and text_encoder != recorded:
            raise WeightsError(
                f"{bundle.path} was trained with text encoder '{recorded}'; '{text_encoder}' would give "
                "embeddings the network has never seen (omit --text-encoder)"
            )
        if isinstance(captioner, str):
            from m3restore.caption.mllm import Captioner

            captioner = Captioner.load(captioner, device=device)
        return cls(
            predictor,
            device=device,
            dtype=dtype,
            tile=tile,
            text_encoder_name=recorded,
            bundle=bundle,
            captioner=captioner,
            **kwargs,
        )

    # -- text ---------------------------------------------------------------------------------
    @property
    def text_encoder(self):
        if self._text_encoder is None:
            if not self.text_encoder_name:
                raise WeightsError("this pipeline has no text encoder; restore without a prompt")
            from m3restore.text.encoder import TextEncoder

            self._text_encoder = TextEncoder.load(self.text_encoder_name)
        return self._text_encoder

    @property
    def analyzer(self):
        """The bundle's degradation analyzer (None when the bundle has none)."""
        if self._analyzer is None and self.bundle is not None and self.bundle.has("analyzer"):
            self._analyzer = self.bundle.load("analyzer")
        return self._analyzer

    def prepare_prompt(self, prompt: str | None, image=None, *, auto: bool | None = None) -> str:
        """The prompt actually used (see ``m3restore.caption.prompt``); empty means no text.

        The user's text is cleaned; with ``auto_prompt`` and an ``image`` the analyzer's findings
        (and the content captioner's caption, when one is configured) are merged in. The parts
        are kept in ``self.last_merged``; warnings about the text are issued once per prompt.
        """
        from m3restore.caption.prompt import merge_prompt
        from m3restore.text.clean import clean_text

        key = prompt or ""
        if key not in self._cleaned:  # batch runs reuse one prompt for many images
            if len(self._cleaned) > 256:
                self._cleaned.clear()
            self._cleaned[key] = clean_text(key)
        analysis, caption = None, None
        auto = self.auto_prompt if auto is None else auto
        if auto and image is not None:
            if self.analyzer is not None:
                from m3restore.caption.degradation import analyze

                analysis = analyze(self.analyzer, image)
            if self.captioner is not None:
                caption = self.captioner.caption(image)
        merged = merge_prompt(self._cleaned[key], analysis, caption, auto=auto)
        merged.analysis = analysis
        for message in merged.warnings:
            if message not in self._warned_prompts:
                self._warned_prompts.add(message)
                warnings.warn(message, UserWarning, stacklevel=3)
        self.last_merged = merged
        return merged.prompt

    # -- restore ----------------------------------------------------------------------------
    @property
    def multiple(self) -> int:
        nets = [self._fp32] + ([self._refiner_fp32] if self._refiner_fp32 is not None else [])
        return math.lcm(*(net.multiple for net in nets))

    def __call__(
        self,
        image,
        prompt: str | None = None,
        seed: int | None = None,
        *,
        tile: int | str | None = None,
        auto_prompt: bool | None = None,
    ):
        """Restore ``image``; ``auto_prompt`` overrides the pipeline's setting for this call."""
        started = time.perf_counter()
        info = RestoreInfo(steps=self.sampling.steps, samples=self.sampling.samples)
        if seed is not None:
            torch.manual_seed(seed)
        rgb, rebuild = to_rgb(image)
        info.prompt = self.prepare_prompt(prompt, rgb, auto=auto_prompt)
        info.merged = self.last_merged
        if not info.prompt and getattr(info.merged, "analysis", None) is not None:
            # Nothing to fix by the analyzer's reading and no words from the user: the predictor
            # with no text still changes a clean photo (8 Kodak24 and 18 McMaster photos came back at 24 to
            # 39 dB against themselves) and brightens dark ones (McMaster 11.tif: 11 dB).
            info.passthrough = True
            info.uncertainty = np.zeros(rgb.shape[:2], np.float32)
            info.seconds = time.perf_counter() - started
            self.last = info
            return rebuild(rgb)
        text = self.text_encoder.encode([info.prompt]) if info.prompt else None
        x = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[None]
        multiple = self.multiple
        size = _parse_tile(tile) if tile is not None else self.tile
        if size == "auto":
            size = auto_tile(*x.shape[-2:], multiple, self.memory_budget)
        info.tile = size
        noise = self._noise_fields(x, multiple, seed)

        def run(t: torch.Tensor, pos) -> torch.Tensor:
            cut = [n[..., pos[0] : pos[0] + t.shape[-2], pos[1] : pos[1] + t.shape[-1]] for n in noise]
            return self._run_tile(t, text, cut, info)

        with torch.inference_mode():
            y = run_tiled(run, x, size, self.overlap, multiple)
        out = y[0, :3].clamp(0, 1).permute(1, 2, 0).numpy()
        if y.shape[1] > 3:
            info.uncertainty = y[0, 3:].mean(0).numpy()
        info.seconds = time.perf_counter() - started
        self.last = info
        return rebuild(out)

    def _noise_fields(self, x: torch.Tensor, multiple: int, seed: int | None) -> list[torch.Tensor]:
        """One starting-noise image per sample over the whole padded image, so overlapping tiles
        cut identical noise and the result does not depend on the tiling (no seams)."""
        if not self.sampling.steps:
            return []
        h, w = (-(-side // multiple) * multiple for side in x.shape[-2:])
        base = 0 if seed is None else int(seed)
        return [
            torch.randn(1, 3, h, w, generator=torch.Generator().manual_seed(base * 1009 + k))
            for k in range(self.sampling.samples)
        ]

    def _run_tile(self, t: torch.Tensor, text, noise: list[torch.Tensor], info: RestoreInfo) -> torch.Tensor:
        dev_text = text.to(self.device) if text is not None else None
        y = self._restore_tile(self.predictor, self.refiner, t.to(self.device, self.dtype), dev_text, noise)
        if self.dtype != torch.float32 and not all_finite(y):
            # fp16 overflows on some inputs; never hand back a black tile for it.
            info.fp32_fallback_tiles += 1
            warnings.warn("a tile overflowed in reduced precision and was redone in fp32", RuntimeWarning, stacklevel=2)
            predictor, refiner = self._fp32_on_device()
            y = self._restore_tile(predictor, refiner, t.to(self.device, torch.float32), dev_text, noise)
        return y.float().cpu()

    def _restore_tile(self, predictor, refiner, t: torch.Tensor, text, noise: list[torch.Tensor]) -> torch.Tensor:
        """The predictor's estimate; with the refiner, the mean of its samples (+ their std)."""
        t = t.contiguous(memory_format=torch.channels_last)
        estimate = self_ensemble(lambda view: predictor(view, text), t, self.ensemble)
        if not noise:
            return estimate
        from m3restore.diffusion.refine import refine

        estimate = estimate.clamp(0, 1)
        s = self.sampling
        samples = torch.stack(
            [
                refine(
                    refiner,
                    t,
                    estimate,
                    n.to(self.device),
                    steps=s.steps,
                    sampler=s.sampler,
                    text=text,
                    guidance=s.guidance,
                )
                for n in noise
            ]
        )
        mean = samples.mean(0)
        if len(noise) == 1:
            return mean
        return torch.cat([mean, samples.float().std(0)], dim=1)

    def _fp32_on_device(self):
        """fp32 copies of the predictor and refiner on the device (for the overflow fallback)."""
        if not hasattr(self, "_fp32_device"):
            place = lambda net: net.to(self.device).to(memory_format=torch.channels_last)  # noqa: E731
            refiner = place(self._refiner_fp32) if self._refiner_fp32 is not None else None
            self._fp32_device = (place(self._fp32), refiner)
        return self._fp32_device

    def describe(self) -> dict[str, Any]:
        net = self._fp32
        return {
            "bundle": str(self.bundle.path) if self.bundle else None,
            "device": str(self.device),
            "dtype": str(self.dtype).replace("torch.", ""),
            "predictor_parameters": sum(p.numel() for p in net.parameters()),
            "refiner_parameters": sum(p.numel() for p in self._refiner_fp32.parameters()) if self.refiner else 0,
            "steps": self.sampling.steps,
            "ensemble": self.ensemble,
            "text_encoder": self.text_encoder_name,
        }


def load_pipeline(weights=None, *, device: str = "auto", dtype: str = "auto", tile: int | str = "auto", **kwargs):
    """Open a weights bundle (default: the shipped one) and return a ready :class:`RestorePipeline`."""
    return RestorePipeline.from_bundle(weights, device=device, dtype=dtype, tile=tile, **kwargs)


def _parse_tile(tile: int | str) -> int | str:
    if isinstance(tile, str):
        if tile.strip().lower() == "auto":
            return "auto"
        try:
            tile = int(tile)
        except ValueError:
            raise ConfigError(f"--tile {tile}: expected a number of pixels, 0 for none, or auto") from None
    if tile < 0:
        raise ConfigError(f"--tile {tile}: must be 0 (no tiling), a positive size, or auto")
    return tile


def to_rgb(image):
    """Float HxWx3 RGB in [0,1] plus a function that turns a result back into the input's kind."""
    from PIL import Image as PILImage

    from m3restore.io import Image

    if isinstance(image, Image):
        return image.rgb(), image.with_rgb
    if isinstance(image, PILImage.Image):
        return _pil_to_rgb(image)
    return _array_to_rgb(np.asarray(image))


def is_grey(image) -> bool:
    """Whether ``image`` (any kind :func:`to_rgb` takes) holds one channel, alpha aside: its
    result comes back grey, so greyness is nothing to fix."""
    from PIL import Image as PILImage

    from m3restore.io import Image

    if isinstance(image, Image):
        return image.is_grey
    if isinstance(image, PILImage.Image):
        return PILImage.getmodebase(image.mode) == "L"
    array = np.asarray(image)
    return array.ndim == 2 or array.shape[-1] in (1, 2)


# Pillow modes whose samples go past 8 bits: convert("RGB") would clip them at 255.
_PIL_WIDE_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")


def _pil_to_rgb(image):
    """A PIL image in any mode; the result comes back in its mode (RGB for palette and CMYK,
    RGBA for a palette with transparency)."""
    from PIL import Image as PILImage

    from m3restore.io import profile_fits

    mode, size = image.mode, image.size
    if mode in _PIL_WIDE_MODES:
        samples = np.asarray(image)
        if mode != "F":  # 16-bit grey, which Pillow may hold as 32-bit integers
            samples = np.clip(samples, 0, 65535).astype(np.uint16)
        arr, back_array = _array_to_rgb(samples)
    else:
        if mode == "P" and "transparency" in image.info:
            image = image.convert("RGBA")  # the palette's transparent entries become alpha
        alpha = image.getchannel("A") if "A" in image.getbands() else None
        arr = np.asarray(image.convert("RGB"), dtype=np.float32) / 255

    def back_pil(out):
        if mode in _PIL_WIDE_MODES:
            result = PILImage.fromarray(back_array(out))
            result = result.convert(mode) if mode in ("I", "F") else result
        else:
            result = PILImage.fromarray(np.round(out * 255).astype(np.uint8))
            if mode in ("L", "LA"):
                result = result.convert("L")
            if alpha is not None:
                result.putalpha(alpha)
        # what Pillow saves with the picture: the profile where it fits the result's pixels
        # (not a CMYK one on converted RGB), the DPI only at the same size
        grey = is_grey(result)
        for key in ("exif", "dpi", "icc_profile"):
            if key not in image.info or (key == "dpi" and result.size != size):
                continue
            if key == "icc_profile" and not profile_fits(image.info[key], grey=grey):
                continue
            result.info[key] = image.info[key]
        return result

    return arr, back_pil


# Integer samples and their full scale; floats are taken as [0, 1].
_FULL_SCALE = {np.dtype(np.uint8): 255, np.dtype(np.uint16): 65535}


def _array_to_rgb(arr: np.ndarray):
    """An HxW, HxWx1 or HxWx3 array (HxWx2 / HxWx4 with alpha last, passed through untouched):
    uint8, uint16, or float in [0, 1]. The result comes back in the same shape and dtype."""
    if arr.size == 0:
        raise ConfigError(f"an empty image (shape {arr.shape})")
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 2, 3, 4)):
        raise ConfigError(f"expected an HxW, HxWx1, HxWx3 or, with alpha, HxWx2/HxWx4 image; got shape {arr.shape}")
    grey, alpha = is_grey(arr), None
    if arr.ndim == 3 and arr.shape[2] in (2, 4):
        arr, alpha = arr[..., :-1], arr[..., -1:]
    scale = _FULL_SCALE.get(arr.dtype)
    if scale is None and arr.dtype.kind in "iu":
        raise ConfigError(f"{arr.dtype} pixels: pass uint8 (0-255), uint16 (0-65535) or floats in [0, 1]")
    if scale is None and arr.dtype.kind != "b":
        arr = arr.astype(np.float32)
        if not np.isfinite(arr).all():
            raise ConfigError("the image has NaN or infinite pixels")
        low, high = float(arr.min()), float(arr.max())
        if low < -0.01 or high > 1.01:  # a little over is rounding; 0-255 values would come out white
            hint = "; divide 0-255 values by 255 or pass uint8" if high > 1.01 else ""
            raise ConfigError(f"float pixels must lie in [0, 1]; these span [{low:.3g}, {high:.3g}]{hint}")
    f = np.clip(arr.astype(np.float32) / (scale or 1), 0, 1)
    shape = arr.shape
    if grey:
        f = np.repeat(f.reshape(shape[0], shape[1], 1), 3, axis=2)

    def back(out):
        if grey:
            out = out.mean(axis=2).reshape(shape)
        if scale is not None:
            out = np.round(out * scale).astype(arr.dtype)
        return out if alpha is None else np.concatenate([out, alpha.astype(out.dtype)], axis=-1)

    return f, back
