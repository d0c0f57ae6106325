"""Training loss and sampling for the predict-and-refine diffusion, over diffusers schedulers.

The refiner (:class:`m3restore.models.refiner.Refiner`) models ``r = (sharp - x̂) * scale``, the
scaled residual of the predictor's estimate x̂. Training uses diffusers' ``DDPMScheduler`` to
noise it; sampling uses DDIM, DPM-Solver++ or Euler from diffusers, built from the same
configuration, so every scheduler agrees on the noise schedule the network was trained for.
Nothing here hand-writes a scheduler update.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from m3restore.errors import ConfigError, unknown_choice

SAMPLERS = ("ddim", "dpm-solver++", "euler")
MAX_STEPS = 200  # more than this only costs time: the residual is small and smooth in t


def _base_config(config) -> dict:
    return dict(
        num_train_timesteps=config.num_train_timesteps,
        beta_schedule=config.beta_schedule,
        prediction_type=config.prediction_type,
    )


def training_scheduler(config):
    """The DDPM scheduler that noises training residuals (Ho et al., NeurIPS 2020)."""
    from diffusers import DDPMScheduler

    return DDPMScheduler(**_base_config(config), clip_sample=False)


def make_sampler(name: str, config):
    """A fresh sampling scheduler by name; ``trailing`` spacing starts at the noisiest timestep,
    which matters when only a few steps are taken (Lin et al., WACV 2024)."""
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler

    check_sampler(name)
    common = dict(_base_config(config), timestep_spacing="trailing")
    if name == "ddim":  # Song et al., ICLR 2021, deterministic (eta = 0)
        return DDIMScheduler(**common, clip_sample=False, set_alpha_to_one=False)
    if name == "dpm-solver++":  # Lu et al., 2022, second-order multistep
        return DPMSolverMultistepScheduler(**common, algorithm_type="dpmsolver++", solver_order=2)
    # euler: Karras et al., NeurIPS 2022, Algorithm 2 without churn
    return EulerDiscreteScheduler(**common)


def check_sampler(name: str) -> str:
    if name not in SAMPLERS:
        raise ConfigError(unknown_choice("--sampler", name, SAMPLERS))
    return name


def check_steps(steps: int) -> int:
    if steps < 0:
        raise ConfigError(f"--steps {steps}: must be 0 (predictor only) or a positive number of sampler steps")
    if steps > MAX_STEPS:
        raise ConfigError(f"--steps {steps}: at most {MAX_STEPS} (the refiner gains nothing from more)")
    return steps


def diffusion_loss(refiner, scheduler, degraded, estimate, target, text=None, generator=None) -> torch.Tensor:
    """Mean squared error of the refiner's prediction at a random timestep per sample."""
    config = refiner.config
    residual = (target - estimate).float() * config.residual_scale
    noise = torch.randn(residual.shape, generator=generator, device=residual.device)
    t = torch.randint(0, config.num_train_timesteps, (residual.shape[0],), generator=generator, device=residual.device)
    noisy = scheduler.add_noise(residual, noise, t)
    if config.prediction_type == "epsilon":
        goal = noise
    elif config.prediction_type == "sample":
        goal = residual
    else:
        goal = scheduler.get_velocity(residual, noise, t)
    prediction = refiner(noisy, t, degraded, estimate, text)
    return F.mse_loss(prediction.float(), goal)


@torch.no_grad()
def refine(
    refiner,
    degraded: torch.Tensor,
    estimate: torch.Tensor,
    noise: torch.Tensor,
    *,
    steps: int,
    sampler: str = "dpm-solver++",
    text=None,
    guidance: float = 1.0,
) -> torch.Tensor:
    """Sample a refined image: ``estimate`` plus a residual drawn from the refiner.

    ``noise`` (same shape as ``estimate``) is the starting noise: passing it in keeps the result
    a pure function of it, so callers decide the seeding (the pipeline cuts it from one field
    per image, so overlapping tiles see the same noise). With ``guidance != 1`` and a text, the
    prediction is pushed away from the text-free one (classifier-free guidance, Ho & Salimans
    2021). All three samplers are deterministic given the noise.
    """
    check_steps(steps)
    if steps == 0:
        return estimate
    config = refiner.config
    scheduler = make_sampler(sampler, config)
    scheduler.set_timesteps(steps, device=estimate.device)
    dtype = next(refiner.parameters()).dtype
    cond = (degraded.to(dtype), estimate.to(dtype))
    sample = noise.to(estimate.device, torch.float32) * scheduler.init_noise_sigma
    batch = sample.shape[0]
    for t in scheduler.timesteps:
        model_input = scheduler.scale_model_input(sample, t).to(dtype)
        timestep = t.to(estimate.device).float().expand(batch)
        prediction = refiner(model_input, timestep, *cond, text).float()
        if guidance != 1.0 and text is not None:
            unconditional = refiner(model_input, timestep, *cond, None).float()
            prediction = unconditional + guidance * (prediction - unconditional)
        sample = scheduler.step(prediction, t, sample).prev_sample
    return estimate.float() + sample / config.residual_scale
