"""Building blocks of the M3-UNet, shared by the predictor and the diffusion refiner.

The blocks follow the efficiency lessons of NAFNet (Chen et al., ECCV 2022: simple gate,
simplified channel attention, depthwise convolutions, no non-linear activation functions),
with the M3-UNet's dilated convolutions (the paper's dilation strategies 3, 4, 5 and [3,4,5])
placed in the depthwise stage so the receptive field grows at no extra cost.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from m3restore.errors import unknown_choice


class LayerNorm2d(nn.Module):
    """Layer normalisation over the channel axis of an NCHW tensor."""

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # In channels-last memory the channel axis is innermost, so the permuted view is
        # contiguous and F.layer_norm runs as one fused kernel (7x faster on a CPU than
        # spelling out mean/var); it accumulates in fp32 also for half-precision inputs.
        y = F.layer_norm(x.permute(0, 2, 3, 1), (x.shape[1],), self.weight.to(x.dtype), self.bias.to(x.dtype), self.eps)
        return y.permute(0, 3, 1, 2)


class SimpleGate(nn.Module):
    """Split channels in two halves and multiply them: a non-linearity without activation."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = x.chunk(2, dim=1)
        return a * b


class DilatedDepthwise(nn.Module):
    """Depthwise 3x3 convolution whose channels are split between dilation 1 and dilation ``d``.

    Half the channels keep a dense local view and half look ``d`` pixels away, which widens the
    receptive field like the paper's dilated convolutions without the gridding artefacts that
    stacking only-dilated layers causes. ``dilation=1`` is the plain baseline.
    """

    def __init__(self, channels: int, dilation: int):
        super().__init__()
        self.dilation = dilation
        if dilation == 1:
            self.local = nn.Conv2d(channels, channels, 3, padding=1, groups=channels)
            self.wide = None
        else:
            half = channels // 2
            self.local = nn.Conv2d(half, half, 3, padding=1, groups=half)
            rest = channels - half
            self.wide = nn.Conv2d(rest, rest, 3, padding=dilation, dilation=dilation, groups=rest)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.wide is None:
            return self.local(x)
        a, b = x.split([self.local.in_channels, self.wide.in_channels], dim=1)
        return torch.cat([self.local(a), self.wide(b)], dim=1)


def _box_mean(x: torch.Tensor, kh: int, kw: int) -> torch.Tensor:
    """Mean over a kh x kw window around each pixel, windows shifted inside at the borders
    (never shrunk), from an integral image in fp32."""
    h, w = x.shape[-2:]
    s = F.pad(x.float().cumsum(2).cumsum(3), (1, 0, 1, 0))

    def edges(n: int, k: int):
        start = (torch.arange(n, device=x.device) - k // 2).clamp(0, n - k)
        return start, start + k

    top, bottom = edges(h, kh)
    left, right = edges(w, kw)
    rows_b, rows_t = s.index_select(2, bottom), s.index_select(2, top)
    total = (
        rows_b.index_select(3, right) - rows_t.index_select(3, right) - rows_b.index_select(3, left)
        + rows_t.index_select(3, left)
    )  # fmt: skip
    return total / (kh * kw)


def local_mean(x: torch.Tensor, window: int) -> tuple[torch.Tensor, int]:
    """Local means of ``x`` (B, C, H, W) over ``window`` x ``window`` squares, on a coarse grid.

    The statistic is smooth, so it is taken on a grid ``f = window // 8`` times coarser (block
    means, then a box mean of ``window / f`` blocks from an integral image). Returns the coarse
    map and ``f``; :func:`expand` brings a map of that grid back to full resolution. Windows
    never cross the border: there they are shifted inside, so each mean covers as many pixels as
    the global mean of a training crop did. A window covering the image is the global mean.
    """
    h, w = x.shape[-2:]
    if window >= h and window >= w:
        return x.mean((2, 3), keepdim=True), 0
    f = max(1, window // 8)
    small = F.avg_pool2d(x, f, ceil_mode=True) if f > 1 else x
    sh, sw = small.shape[-2:]
    k = max(1, window // f)
    return _box_mean(small, min(k, sh), min(k, sw)).to(x.dtype), f


def expand(coarse: torch.Tensor, f: int, size: tuple[int, int]) -> torch.Tensor:
    """A coarse map of :func:`local_mean` at full resolution ``size`` (bilinear; f 0 or 1: as is)."""
    if f <= 1:
        return coarse
    h, w = coarse.shape[-2:]
    up = F.interpolate(coarse, size=(h * f, w * f), mode="bilinear", align_corners=False)
    return up[..., : size[0], : size[1]]


class ChannelAttention(nn.Module):
    """Simplified channel attention: average pool, one 1x1 conv, multiply.

    The pool is global by default, as in training. ``window`` (pixels at this block's
    resolution, 0 = global) pools over a local square instead: a network trained on crops then
    sees, on a large photo, statistics of the same extent as in training (the train/test
    mismatch TLC, Chu et al. ECCV 2022, points out), and tiles agree with the whole image. The
    1x1 conv runs on the coarse grid (it commutes with the bilinear expansion), so the local
    pool costs little more than the global one.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.proj = nn.Conv2d(channels, channels, 1)
        self.window = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.window:
            return x * self.proj(x.mean((2, 3), keepdim=True))
        coarse, f = local_mean(x, self.window)
        return x * expand(self.proj(coarse), f, x.shape[-2:])


class M3Block(nn.Module):
    """One M3-UNet block: a dilated spatial-mixing branch and a gated feed-forward branch.

    Both branches are residual with learned per-channel scales initialised to zero, so a fresh
    block is the identity and deep stacks train stably.
    """

    def __init__(self, channels: int, dilation: int = 1, expansion: int = 2):
        super().__init__()
        hidden = channels * expansion
        self.norm1 = LayerNorm2d(channels)
        self.expand = nn.Conv2d(channels, hidden, 1)
        self.spatial = DilatedDepthwise(hidden, dilation)
        self.gate = SimpleGate()
        self.attention = ChannelAttention(hidden // 2)
        self.project = nn.Conv2d(hidden // 2, channels, 1)
        self.norm2 = LayerNorm2d(channels)
        self.ffn_in = nn.Conv2d(channels, hidden, 1)
        self.ffn_out = nn.Conv2d(hidden // 2, channels, 1)
        self.beta = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.gate(self.spatial(self.expand(self.norm1(x))))
        x = x + self.project(self.attention(y)) * self.beta
        y = self.ffn_out(self.gate(self.ffn_in(self.norm2(x))))
        return x + y * self.gamma


class RefineLayer(nn.Module):
    """The paper's Refine Layer: refines the image encoder's shallow features.

    A residual stack of dilated depthwise-separable convolutions (dilations 1, 2, 4) gives every
    shallow feature a view of its neighbourhood before the U-Net mixes scales, at full resolution
    and low cost.
    """

    def __init__(self, channels: int, dilations: tuple[int, ...] = (1, 2, 4)):
        super().__init__()
        self.layers = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(channels, channels, 3, padding=d, dilation=d, groups=channels),
                nn.Conv2d(channels, channels, 1),
                nn.GELU(),
            )
            for d in dilations
        )
        self.scale = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        for layer in self.layers:
            y = layer(y)
        return x + y * self.scale


def downsample(kind: str, channels: int) -> nn.Module:
    """Halve the resolution and double the channels.

    ``maxpool`` is the paper's choice (max-pool, then a 1x1 conv to widen); ``strided`` is a 2x2
    stride-2 convolution, which learns its own anti-aliasing and is as fast.
    """
    if kind == "maxpool":
        return nn.Sequential(nn.MaxPool2d(2), nn.Conv2d(channels, channels * 2, 1))
    if kind == "strided":
        return nn.Conv2d(channels, channels * 2, 2, stride=2)
    raise ValueError(unknown_choice("downsampling", kind, ("maxpool", "strided")))


def upsample(kind: str, channels: int) -> nn.Module:
    """Double the resolution and halve the channels.

    ``deconv`` is the paper's transposed convolution; ``pixelshuffle`` (a 1x1 conv then
    sub-pixel rearrangement) avoids checkerboard artefacts.
    """
    if kind == "deconv":
        return nn.ConvTranspose2d(channels, channels // 2, 2, stride=2)
    if kind == "pixelshuffle":
        return nn.Sequential(nn.Conv2d(channels, channels * 2, 1, bias=False), nn.PixelShuffle(2))
    raise ValueError(unknown_choice("upsampling", kind, ("deconv", "pixelshuffle")))


def timestep_embedding(timesteps: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of diffusion timesteps (Vaswani et al. 2017; Ho et al. 2020)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=timesteps.device) / half)
    args = timesteps.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    return F.pad(emb, (0, dim % 2))


class PixelControl(nn.Module):
    """Pixel control: features of conditioning images added to the U-Net at every level.

    The diffusion refiner sees the degraded image and the predictor's estimate through this
    module (Whang et al., CVPR 2022, condition their denoiser on the blurry input the same way).
    A small convolutional pyramid matches each level's resolution and width; its outputs pass
    through zero-initialised 1x1 convolutions, so at the start of training the control adds
    nothing and grows only as it helps (the zero-convolution trick of ControlNet).
    """

    def __init__(self, channels: int, widths: list[int], patch: int):
        super().__init__()
        first = widths[0]
        self.stem = nn.Sequential(
            nn.PixelUnshuffle(patch), nn.Conv2d(channels * patch**2, first, 3, padding=1), nn.GELU()
        )
        self.downs = nn.ModuleList(
            nn.Sequential(nn.Conv2d(w, w_next, 2, stride=2), nn.GELU()) for w, w_next in zip(widths, widths[1:])
        )
        self.outs = nn.ModuleList(nn.Conv2d(w, w, 1) for w in widths)
        for out in self.outs:
            nn.init.zeros_(out.weight)
            nn.init.zeros_(out.bias)

    def forward(self, control: torch.Tensor) -> list[torch.Tensor]:
        """One feature map per level, finest first."""
        feat = self.stem(control)
        features = [self.outs[0](feat)]
        for down, out in zip(self.downs, self.outs[1:]):
            feat = down(feat)
            features.append(out(feat))
        return features
