"""Geometric self-ensemble: restore flipped and transposed copies of an image and average them.

The predictor was trained with random 90-degree rotations and flips, so each of the eight
symmetries of the square gives it a slightly different view of the same picture; averaging the
results back in the original orientation cancels part of each pass's error. It costs one
forward pass per view: ``ensemble=8`` is eight times slower, ``ensemble=1`` is the plain pass.
``benchmarks/ensemble.py`` measures what each size gains (``docs/ENSEMBLE.md``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from m3restore.errors import ConfigError

SIZES = (1, 2, 4, 8)

# Each view is (transpose, flip width, flip height). The order makes every prefix of SIZES a
# balanced set: 2 = identity + horizontal mirror, 4 = all flips, 8 = flips of the transpose too.
VIEWS = (
    (False, False, False),
    (False, True, False),
    (False, False, True),
    (False, True, True),
    (True, False, False),
    (True, True, False),
    (True, False, True),
    (True, True, True),
)


def check_ensemble(n: int) -> int:
    """``n`` when it is a valid ensemble size, else a :class:`ConfigError` naming the valid ones."""
    if n not in SIZES:
        valid = ", ".join(map(str, SIZES))
        raise ConfigError(f"--ensemble {n}: must be one of {valid} (1 = a single pass)")
    return n


def _forward(x: torch.Tensor, view: tuple[bool, bool, bool]) -> torch.Tensor:
    transpose, flip_w, flip_h = view
    if transpose:
        x = x.transpose(-1, -2)
    dims = [d for d, on in ((-1, flip_w), (-2, flip_h)) if on]
    return x.flip(dims) if dims else x


def _backward(y: torch.Tensor, view: tuple[bool, bool, bool]) -> torch.Tensor:
    transpose, flip_w, flip_h = view
    dims = [d for d, on in ((-1, flip_w), (-2, flip_h)) if on]
    if dims:
        y = y.flip(dims)
    return y.transpose(-1, -2) if transpose else y


def self_ensemble(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, n: int) -> torch.Tensor:
    """Mean of ``fn`` over the first ``n`` views of ``x`` (B, C, H, W), each mapped back.

    ``fn`` must return an image of its input's height and width (any number of channels).
    The mean is accumulated in float32 so half-precision passes do not lose bits in the sum.
    """
    check_ensemble(n)
    if n == 1:
        return fn(x)
    total = None
    for view in VIEWS[:n]:
        y = _backward(fn(_forward(x, view).contiguous(memory_format=torch.channels_last)), view).float()
        total = y if total is None else total.add_(y)
    return total.div_(n).to(x.dtype)
