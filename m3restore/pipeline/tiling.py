"""Padding and overlapping tiles with feathered blending.

Large photos are restored tile by tile so memory stays bounded. Tiles overlap and are blended
with weights that fall off linearly towards each tile's edge (but never to zero), so the seams
that hard tile borders leave disappear and a tiled result matches an untiled one closely.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

# Measured in benchmarks/speed.py for the default predictor (fp32, CPU): peak bytes per input
# pixel of one forward pass, with margin. Used only to choose a tile size from a RAM budget.
BYTES_PER_PIXEL = 1400


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Reflect-pad (B, C, H, W) on the bottom/right to multiples; returns the original (H, W)."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x, (h, w)


def auto_tile(height: int, width: int, multiple: int, budget_bytes: float = 2.5 * 2**30) -> int:
    """Largest tile side (a multiple of ``multiple``) whose forward pass fits ``budget_bytes``.

    Returns 0 (no tiling) when the whole image fits.
    """
    if height * width * BYTES_PER_PIXEL <= budget_bytes:
        return 0
    side = int((budget_bytes / BYTES_PER_PIXEL) ** 0.5)
    return max(multiple * 4, side // multiple * multiple)


def _ramp(n: int, overlap: int, at_start: bool, at_end: bool, device) -> torch.Tensor:
    w = torch.ones(n, device=device)
    if overlap > 0:
        ramp = torch.linspace(0, 1, overlap + 2, device=device)[1:-1]
        if not at_start:
            w[:overlap] = ramp
        if not at_end:
            w[-overlap:] = ramp.flip(0)
    return w


def _starts(size: int, tile: int, overlap: int) -> list[int]:
    if size <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, size - tile, stride))
    starts.append(size - tile)
    return starts


def run_tiled(
    fn: Callable[[torch.Tensor, tuple[int, int]], torch.Tensor],
    x: torch.Tensor,
    tile: int,
    overlap: int,
    multiple: int,
    out_channels: int | None = None,
) -> torch.Tensor:
    """Apply ``fn`` to overlapping tiles of ``x`` (1, C, H, W) and blend the results.

    ``fn(tile_tensor, (top, left))`` receives tiles whose sides are multiples of ``multiple``
    (the image is padded first) and the tile position, so stochastic callers can seed noise
    per position. ``tile <= 0`` runs the whole (padded) image at once.
    """
    padded, (h, w) = pad_to_multiple(x, multiple)
    H, W = padded.shape[-2:]
    if tile <= 0 or (tile >= H and tile >= W):
        return fn(padded, (0, 0))[..., :h, :w]
    tile = max(multiple, tile // multiple * multiple)
    overlap = min(overlap // multiple * multiple, tile // 2)
    th, tw = min(tile, H), min(tile, W)
    out = None
    weight = torch.zeros(1, 1, H, W, device=x.device)
    ys, xs = _starts(H, th, overlap), _starts(W, tw, overlap)
    for top in ys:
        for left in xs:
            y = fn(padded[..., top : top + th, left : left + tw], (top, left)).float()
            if out is None:
                out = torch.zeros(1, out_channels or y.shape[1], H, W, device=x.device)
            wy = _ramp(th, overlap, top == 0, top + th >= H, x.device)
            wx = _ramp(tw, overlap, left == 0, left + tw >= W, x.device)
            mask = (wy[:, None] * wx[None, :])[None, None]
            out[..., top : top + th, left : left + tw] += y * mask
            weight[..., top : top + th, left : left + tw] += mask
    return (out / weight)[..., :h, :w]
