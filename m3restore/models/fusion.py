"""Ways to inject text into the image network (the paper's Section 3.3 fusion strategies).

- early: the pooled text vector becomes extra input channels next to the image;
- joint: cross-attention from image features to text tokens inside the network (coarse levels),
  plus a cheap pooled-text gate at every level;
- late: the pooled text gates only the decoder (output) stages;
- circulant: multimodal circulant fusion (Wu & Han, IJCAI 2018) at the bottleneck: each image
  feature vector is circularly convolved with the projected text vector (an FFT product), which
  mixes every channel pair with few parameters.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from m3restore.models.blocks import LayerNorm2d

FUSIONS = ("early", "joint", "late", "circulant")


class TextGate(nn.Module):
    """FiLM-style gate: per-channel scale and shift predicted from the conditioning vector.

    Zero-initialised, so an untrained gate is the identity and text can only help as it learns.
    """

    def __init__(self, cond_dim: int, channels: int):
        super().__init__()
        self.proj = nn.Linear(cond_dim, channels * 2)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        scale, shift = self.proj(cond).to(x.dtype)[:, :, None, None].chunk(2, dim=1)
        return x * (1 + scale) + shift


class CrossAttention(nn.Module):
    """Image features (queries) attend to text tokens (keys/values); residual, zero-initialised out."""

    def __init__(self, channels: int, text_dim: int, head_dim: int = 32):
        super().__init__()
        self.heads = max(1, channels // head_dim)
        self.norm = LayerNorm2d(channels)
        self.q = nn.Conv2d(channels, channels, 1, bias=False)
        self.kv = nn.Linear(text_dim, channels * 2, bias=False)
        self.out = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q = self.q(self.norm(x)).flatten(2).transpose(1, 2)  # B, HW, C
        k, v = self.kv(tokens.to(x.dtype)).chunk(2, dim=-1)  # B, L, C

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(b, t.shape[1], self.heads, c // self.heads).transpose(1, 2)

        attn_mask = mask[:, None, None, :]  # B, 1, 1, L — True where a token may be attended
        y = F.scaled_dot_product_attention(heads(q), heads(k), heads(v), attn_mask=attn_mask)
        y = y.transpose(1, 2).reshape(b, h * w, c).transpose(1, 2).reshape(b, c, h, w)
        return x + self.out(y)


class EarlyFusion(nn.Module):
    """Pooled text projected to ``channels`` constant maps, concatenated to the network input."""

    def __init__(self, cond_dim: int, channels: int = 4):
        super().__init__()
        self.channels = channels
        self.proj = nn.Linear(cond_dim, channels)

    def forward(self, image: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        maps = self.proj(cond).to(image.dtype)[:, :, None, None]
        return torch.cat([image, maps.expand(-1, -1, *image.shape[2:])], dim=1)


class CirculantFusion(nn.Module):
    """Multimodal circulant fusion (Wu & Han, IJCAI 2018) of a feature map with a text vector.

    With ``v`` an image feature vector and ``t`` the projected text, both circulant products
    ``circ(t) v`` and ``circ(v) t`` equal the circular convolution ``v ⊛ t``, computed as
    ``irfft(rfft(v) * rfft(t))`` along channels; a 1x1 conv maps it back (zero-initialised).
    """

    def __init__(self, cond_dim: int, channels: int):
        super().__init__()
        self.text = nn.Linear(cond_dim, channels)
        self.norm = LayerNorm2d(channels)
        self.out = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        v = self.norm(x).float()
        t = self.text(cond).float()[:, :, None, None]
        fused = torch.fft.irfft(torch.fft.rfft(v, dim=1) * torch.fft.rfft(t, dim=1), n=c, dim=1)
        return x + self.out(fused.to(x.dtype))
