"""Training losses."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def multiscale_l1(outputs: list[torch.Tensor], target: torch.Tensor, weights: tuple[float, ...] = (1.0, 0.5, 0.25)):
    """The M3-UNet paper's multi-scale L1 loss (Sec. 3.4).

    ``outputs[k]`` is the prediction at 1/2**k resolution; each is compared with the target
    average-pooled to the same size, and the terms are summed with ``weights[k]``.
    """
    loss = outputs[0].new_zeros(())
    for k, output in enumerate(outputs):
        w = weights[k] if k < len(weights) else weights[-1] / 2 ** (k - len(weights) + 1)
        scaled = target if k == 0 else F.avg_pool2d(target, 2**k)
        loss = loss + w * F.l1_loss(output.float(), scaled.float())
    return loss
