"""Training losses."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from m3restore.errors import unknown_choice

LOSSES = ("l1", "psnr")


def l1(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error."""
    return F.l1_loss(output, target)


def psnr_loss(output: torch.Tensor, target: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Negative PSNR (data range 1), averaged over the batch.

    Each sample's error is measured against its own MSE, so a lightly degraded crop whose
    residual error is small counts as much as a heavily degraded one: the loss optimises the
    mean PSNR a benchmark reports, where an L1 or MSE loss is dominated by the hardest crops.
    """
    mse = (output - target).pow(2).flatten(1).mean(dim=1)
    return 10.0 * torch.log10(mse + eps).mean()


def frequency_l1(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of the real and imaginary parts of the 2-D Fourier transforms.

    The frequency term of MIMO-UNet's deblurring loss (Cho et al., 2021): unnormalised
    ``rfft2``, so an error spread over the picture weighs more than in the pixel L1, and the
    fine detail a blurred output lacks is compared coefficient by coefficient.
    """
    diff = torch.fft.rfft2(output.float()) - torch.fft.rfft2(target.float())
    return torch.view_as_real(diff).abs().mean()


_TERMS = {"l1": l1, "psnr": psnr_loss}


def multiscale_loss(
    outputs: list[torch.Tensor],
    target: torch.Tensor,
    weights: tuple[float, ...] = (1.0, 0.5, 0.25),
    kind: str = "l1",
    fft_weight: float = 0.0,
) -> torch.Tensor:
    """The M3-UNet paper's multi-scale loss (Sec. 3.4), with an L1 (the paper's) or PSNR term.

    ``outputs[k]`` is the prediction at 1/2**k resolution; each is compared with the target
    average-pooled to the same size, and the terms are summed with ``weights[k]``. With
    ``fft_weight`` each scale also adds that much of :func:`frequency_l1` (MIMO-UNet uses 0.1).
    """
    if kind not in _TERMS:
        raise ValueError(unknown_choice("loss", kind, LOSSES))
    term = _TERMS[kind]
    loss = outputs[0].new_zeros((), dtype=torch.float32)
    for k, output in enumerate(outputs):
        w = weights[k] if k < len(weights) else weights[-1] / 2 ** (k - len(weights) + 1)
        scaled = target if k == 0 else F.avg_pool2d(target, 2**k)
        loss = loss + w * term(output.float(), scaled.float())
        if fft_weight:
            loss = loss + w * fft_weight * frequency_l1(output, scaled)
    return loss


def multiscale_l1(outputs: list[torch.Tensor], target: torch.Tensor, weights: tuple[float, ...] = (1.0, 0.5, 0.25)):
    """The paper's multi-scale L1 loss: :func:`multiscale_loss` with ``kind="l1"``."""
    return multiscale_loss(outputs, target, weights, "l1")
