"""Named training recipes: documented starting points for :class:`TrainConfig`.

- ``paper``: the M3-UNet paper's Sections 3.4 and 4.1 — 256x256 crops, batch 10,
  Adam(0.9, 0.999), lr 1e-4 halved every 1000 iterations, 3000 iterations, multi-scale L1.
- ``cpu``: what fits two CPU cores — small batches, a higher cosine-decayed learning rate
  (NAFNet's choice, which converges much faster than the paper's step schedule in short
  runs), EMA of the weights, and frequent validation. Crops stay 256 px: a leg with 128-px
  crops improved denoising but lost 0.37 dB on real GoPro blur (blurs up to 41 px need the
  context; weights/m3restore-base/MODEL_CARD.md, leg 3).
- ``gpu``: one larger prepared run on a single modern GPU (fp32 storage, TF32 tensor-core maths).
"""

from __future__ import annotations

from typing import Any

from m3restore.errors import ConfigError, unknown_choice

RECIPES: dict[str, dict[str, Any]] = {
    "paper": dict(
        crop=256,
        batch_size=10,
        lr=1e-4,
        lr_schedule="step",
        lr_halve_every=1000,
        iterations=3000,
        betas=(0.9, 0.999),
        ema_decay=0.0,
    ),
    "cpu": dict(
        crop=256,
        val_crop=256,
        batch_size=4,
        lr=1e-3,
        lr_schedule="cosine",
        lr_min=1e-5,
        warmup=100,
        iterations=6000,
        betas=(0.9, 0.9),
        weight_decay=0.0,
        grad_clip=0.5,
        ema_decay=0.999,
        val_every=500,
        checkpoint_minutes=10.0,
    ),
    "gpu": dict(
        crop=192,
        val_crop=256,
        batch_size=32,
        lr=1e-3,
        lr_schedule="cosine",
        lr_min=1e-5,
        warmup=300,
        iterations=12000,
        betas=(0.9, 0.9),
        grad_clip=0.5,
        ema_decay=0.999,
        # bf16 autocast blew up this network's gradients on the GPU; on the CPU its dilated depthwise
        # convolutions get inf/NaN bf16 weight gradients (docs/TRAIN_PRECISION.md). TF32 instead.
        mixed_precision="no",
        num_workers=12,
        # Loader workers now live across epochs (EpochKeyed keys); long epochs still keep the
        # prefetch queue from draining at each boundary. With workers restarting, 2,000-sample
        # epochs starved a batch-24 H200 run 6 % of its time (docs/experiments/deblur-specialist).
        samples_per_epoch=48000,
        val_every=1000,
        checkpoint_minutes=3.0,
    ),
}


def recipe(name: str) -> dict[str, Any]:
    if name not in RECIPES:
        raise ConfigError(unknown_choice("recipe", name, RECIPES))
    return dict(RECIPES[name], recipe=name)
