"""The diffusion refiner's network: an M3-UNet denoiser with a timestep embedding and pixel control.

Predict-and-refine (Whang et al., "Deblurring via Stochastic Refinement", CVPR 2022): the
predictor gives an estimate x̂ in one pass; the refiner is a conditional diffusion model of the
*residual* between the sharp image and x̂, conditioned on the degraded image and on x̂ (pixel
control at every level) and on the text (the predictor's multi-level text conditioning). The
residual is small and mostly high-frequency, so a few sampler steps suffice.

The module is pure: it maps a noisy residual, a timestep, the control images and the text to
the network's prediction; schedulers and sampling live in :mod:`m3restore.diffusion.refine`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from m3restore.errors import unknown_choice
from m3restore.models.m3unet import M3UNet, M3UNetConfig

PREDICTION_TYPES = ("epsilon", "sample", "v_prediction")
BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2")


def _denoiser() -> M3UNetConfig:
    """A lighter M3-UNet than the predictor: it runs once per sampler step."""
    return M3UNetConfig(
        in_channels=3,
        out_channels=3,
        width=16,
        enc_blocks=(1, 1, 1),
        middle_blocks=2,
        dec_blocks=(1, 1, 1),
        time_embedding=True,
        global_residual=False,
        control_channels=6,
    )


@dataclass
class RefinerConfig:
    """The denoiser's shape and the diffusion it was trained with; travels with the weights."""

    network: M3UNetConfig = field(default_factory=_denoiser)
    prediction_type: str = "sample"  # measured best of the three: docs/REFINER_OBJECTIVE.md
    num_train_timesteps: int = 1000
    beta_schedule: str = "squaredcos_cap_v2"
    residual_scale: float = 5.0  # the residual (sharp - x̂) is multiplied by this before diffusion

    def __post_init__(self) -> None:
        if self.prediction_type not in PREDICTION_TYPES:
            raise ValueError(unknown_choice("prediction_type", self.prediction_type, PREDICTION_TYPES))
        if self.beta_schedule not in BETA_SCHEDULES:
            raise ValueError(unknown_choice("beta_schedule", self.beta_schedule, BETA_SCHEDULES))
        net = self.network
        if not net.time_embedding or net.control_channels != 6 or net.global_residual:
            raise ValueError(
                "the refiner's network needs time_embedding: true, control_channels: 6 and global_residual: false"
            )
        if self.residual_scale <= 0:
            raise ValueError(f"residual_scale must be positive, got {self.residual_scale}")


class Refiner(nn.Module):
    """Denoiser of the predict-and-refine diffusion (see the module docstring)."""

    def __init__(self, config: RefinerConfig | None = None):
        super().__init__()
        self.config = config or RefinerConfig()
        self.net = M3UNet(self.config.network)

    @property
    def multiple(self) -> int:
        return self.config.network.multiple

    def forward(
        self, noisy: torch.Tensor, timestep: torch.Tensor, degraded: torch.Tensor, estimate: torch.Tensor, text=None
    ) -> torch.Tensor:
        """The prediction (ε, x₀ or v, per ``config.prediction_type``) for a noisy residual."""
        if timestep.ndim == 0:
            timestep = timestep.expand(noisy.shape[0])
        control = torch.cat([degraded, estimate], dim=1) * 2 - 1  # centred, like the noisy residual
        return self.net(noisy, text, timestep, control=control)
