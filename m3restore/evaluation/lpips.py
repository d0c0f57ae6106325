"""LPIPS, the learned perceptual image patch similarity of Zhang et al. (CVPR 2018), version 0.1.

Definition: both images (RGB in ``[0, 1]``) are mapped to ``[-1, 1]``, shifted and scaled per
channel (shift ``(-0.030, -0.088, -0.188)``, scale ``(0.458, 0.448, 0.450)``) and passed through
a fixed feature network. At each of its five tap layers the activations are normalised to
unit length along the channel axis, the two images' normalised activations are subtracted and
squared, a learned non-negative 1x1 convolution (one weight per channel, no bias) sums the
channels, and the result is averaged over the spatial positions. The five layer scores are
added. 0 means identical; lower is better.

Backbones (layer layouts of the public LPIPS release, so its weights load unchanged):

* ``alex``: AlexNet's convolutional stack; taps after the ReLUs of conv1..conv5
  (64, 192, 384, 256, 256 channels).
* ``vgg``: VGG-16's convolutional stack; taps after relu1_2, relu2_2, relu3_3, relu4_3,
  relu5_3 (64, 128, 256, 512, 512 channels).

Weights file (``--lpips-weights FILE``, or ``lpips-alex.safetensors`` / ``lpips-vgg.safetensors``
/ ``lpips-alex.pth`` / ``lpips-vgg.pth`` in the cache folder, see
:func:`m3restore.evaluation.extras.cache_dir`): one state dict holding both the backbone and
the linear layers under the names of ``lpips.LPIPS(net=...).state_dict()``:
``net.slice{1..5}.{i}.weight|bias`` and ``lin{0..4}.model.1.weight`` (the duplicate
``lins.*`` and the constant ``scaling_layer.*`` entries may be present and are ignored; a
``module.`` prefix is stripped). Safetensors files are read with ``safetensors``; ``.pth``/``.pt``
files only with ``torch.load(weights_only=True)``, so nothing is unpickled. The backbone is
recognised from the shape of the first convolution. To convert the public weights once, on a
machine that has the ``lpips`` package::

    import lpips, safetensors.torch
    sd = lpips.LPIPS(net="alex").state_dict()
    safetensors.torch.save_file({k: v.contiguous() for k, v in sd.items()}, "lpips-alex.safetensors")
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from m3restore.errors import DataError, WeightsError
from m3restore.evaluation.extras import Availability, locate_weights

__all__ = ["LPIPS", "DEFAULT_FILES", "BACKBONES", "load_lpips", "lpips_availability"]

#: Files looked for in the cache folder, in this order.
DEFAULT_FILES = ("lpips-alex.safetensors", "lpips-vgg.safetensors", "lpips-alex.pth", "lpips-vgg.pth")

# Layer recipes: "C<out>:<kernel>:<stride>:<padding>" convolution (+ ReLU), "M<k>:<s>" max-pool.
# The index of each module in the flat stack is its index in torchvision's `features`.
_ALEX = ["C64:11:4:2", "M3:2", "C192:5:1:2", "M3:2", "C384:3:1:1", "C256:3:1:1", "C256:3:1:1"]
_VGG = (
    ["C64:3:1:1"] * 2 + ["M2:2"] + ["C128:3:1:1"] * 2 + ["M2:2"] + ["C256:3:1:1"] * 3 + ["M2:2"]
    + ["C512:3:1:1"] * 3 + ["M2:2"] + ["C512:3:1:1"] * 3
)  # fmt: skip
#: backbone -> (layer recipe, flat indices where the five slices start, tap channels)
BACKBONES = {
    "alex": (_ALEX, (0, 2, 5, 8, 10, 12), (64, 192, 384, 256, 256)),
    "vgg": (_VGG, (0, 4, 9, 16, 23, 30), (64, 128, 256, 512, 512)),
}
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)
_EPS = 1e-10
MIN_SIZE = 32


def _flat_stack(recipe: list[str]) -> list[nn.Module]:
    modules: list[nn.Module] = []
    channels = 3
    for item in recipe:
        if item.startswith("C"):
            out, k, s, p = (int(v) for v in item[1:].split(":"))
            modules += [nn.Conv2d(channels, out, k, stride=s, padding=p), nn.ReLU(inplace=False)]
            channels = out
        else:
            k, s = (int(v) for v in item[1:].split(":"))
            modules.append(nn.MaxPool2d(k, stride=s))
    return modules


class _Backbone(nn.Module):
    """The feature stack cut into five slices whose outputs are the LPIPS taps."""

    def __init__(self, name: str):
        super().__init__()
        recipe, starts, _ = BACKBONES[name]
        flat = _flat_stack(recipe)
        for k in range(5):
            block = nn.Sequential()
            for index in range(starts[k], starts[k + 1]):
                block.add_module(str(index), flat[index])
            self.add_module(f"slice{k + 1}", block)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        taps = []
        for k in range(1, 6):
            x = getattr(self, f"slice{k}")(x)
            taps.append(x)
        return taps


class _Linear(nn.Module):
    """Per-channel weights as a 1x1 convolution; ``model.0`` stands where LPIPS keeps a dropout."""

    def __init__(self, channels: int):
        super().__init__()
        self.model = nn.Sequential(nn.Identity(), nn.Conv2d(channels, 1, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class LPIPS(nn.Module):
    """``LPIPS(backbone)(a, b)`` -> per-image distances for ``(N, 3, H, W)`` tensors in ``[0, 1]``."""

    def __init__(self, backbone: str = "alex"):
        super().__init__()
        if backbone not in BACKBONES:
            raise WeightsError(f"unknown LPIPS backbone {backbone!r}; use one of {', '.join(BACKBONES)}")
        self.backbone = backbone
        self.net = _Backbone(backbone)
        for k, channels in enumerate(BACKBONES[backbone][2]):
            self.add_module(f"lin{k}", _Linear(channels))
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1), persistent=False)
        self.eval().requires_grad_(False)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if a.shape != b.shape:
            raise DataError(f"LPIPS needs images of the same size, got {tuple(a.shape)} and {tuple(b.shape)}")
        if min(a.shape[-2:]) < MIN_SIZE:
            raise DataError(f"LPIPS needs images of at least {MIN_SIZE}x{MIN_SIZE} pixels, got {tuple(a.shape[-2:])}")
        fa = self.net(((a * 2 - 1) - self.shift) / self.scale)
        fb = self.net(((b * 2 - 1) - self.shift) / self.scale)
        total = torch.zeros(a.shape[0], device=a.device, dtype=a.dtype)
        for k, (x, y) in enumerate(zip(fa, fb)):
            x = x / (x.pow(2).sum(dim=1, keepdim=True).sqrt() + _EPS)
            y = y / (y.pow(2).sum(dim=1, keepdim=True).sqrt() + _EPS)
            total = total + getattr(self, f"lin{k}")((x - y).pow(2)).mean(dim=(1, 2, 3))
        return total

    @torch.no_grad()
    def distance(self, a: np.ndarray, b: np.ndarray) -> float:
        """LPIPS between two float ``HxWx3`` images in ``[0, 1]``."""
        device = self.shift.device
        ta = torch.from_numpy(np.ascontiguousarray(np.asarray(a, np.float32).transpose(2, 0, 1)))[None].to(device)
        tb = torch.from_numpy(np.ascontiguousarray(np.asarray(b, np.float32).transpose(2, 0, 1)))[None].to(device)
        return float(self(ta, tb)[0])


def _read_state(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise WeightsError(f"{path}: no such LPIPS weights file")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as error:  # corrupt file, a pickle with code, a foreign format
        detail = " ".join(str(error).split())[:200]
        raise WeightsError(f"{path}: cannot read LPIPS weights ({detail})") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{path}: expected a state dict of tensors")
    return state


def load_lpips(path: str | Path, device: str | torch.device = "cpu") -> LPIPS:
    """An :class:`LPIPS` with the weights in ``path`` (see the module docstring for the layout)."""
    path = Path(path).expanduser()
    state = {k.removeprefix("module."): v for k, v in _read_state(path).items()}
    state = {k: v for k, v in state.items() if not k.startswith(("lins.", "scaling_layer."))}
    first = state.get("net.slice1.0.weight")
    if first is None:
        if any(k.startswith("lin0.") for k in state):
            raise WeightsError(
                f"{path}: holds only the LPIPS linear layers; the backbone (net.slice*) is missing. "
                "Convert the full lpips.LPIPS(net=...).state_dict() (see docs/evaluation.md)"
            )
        raise WeightsError(f"{path}: not LPIPS weights (no net.slice1.0.weight)")
    backbone = "alex" if tuple(first.shape[-2:]) == (11, 11) else "vgg"
    model = LPIPS(backbone)
    try:
        model.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    except RuntimeError as error:
        detail = " ".join(str(error).split())[:300]
        raise WeightsError(f"{path}: tensors do not fit the LPIPS-{backbone} layout ({detail})") from None
    return model.to(device).eval()


def lpips_availability(path: str | Path | None = None) -> tuple[Availability, Path | None]:
    """``(availability, weights file)``: an explicit ``path`` must exist; otherwise the cache is searched."""
    return locate_weights("LPIPS", "--lpips-weights", path, DEFAULT_FILES, "no weights")
