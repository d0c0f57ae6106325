"""Training configuration: what to train on, how long, and how.

A config file (YAML or JSON) holds a :class:`TrainConfig`; recipes are named starting points
and CLI options override single fields. Unknown keys are errors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from m3restore.errors import unknown_choice
from m3restore.models.m3unet import M3UNetConfig
from m3restore.models.refiner import RefinerConfig
from m3restore.training.losses import LOSSES

DATASET_KINDS = ("gopro", "realblur-j", "realblur-r", "hide", "pairs", "clean", "text")
STAGES = ("predictor", "refiner")
GROWABLE = ("enc_blocks", "middle_blocks", "dec_blocks")  # block counts --init can grow (TrainConfig.grow)


@dataclass
class SourceConfig:
    """One training or validation source.

    ``clean`` sources (and ``text``: rendered signs, plates and documents, whose prompts also
    name the content half of the time) are degraded on the fly by ``degrade`` (the spec language
    of ``m3restore.data.degrade``); the others are real pairs.
    """

    kind: str = "clean"
    root: str | None = None
    input: str | None = None
    target: str | None = None
    split: str = "train"
    degrade: str = "motion-blur,noise:0-50,jpeg:10-90"
    prompt: str = ""
    weight: float = 1.0
    # clean sources: crops seen at a random scale in [low, high] (<= 1), colour channels shuffled
    scale: tuple[float, float] = (1.0, 1.0)
    shuffle_channels: bool = False
    # paired sources: the share of crops prompted as `m3restore restore` words their frame (the
    # damage ``prompt`` names, at the severity the shipped analyzer reads in the whole input)
    analyzer_prompts: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in DATASET_KINDS:
            raise ValueError(unknown_choice("dataset", self.kind, DATASET_KINDS))
        if self.kind != "clean" and (tuple(self.scale) != (1.0, 1.0) or self.shuffle_channels):
            raise ValueError(f"scale and shuffle_channels are for clean sources, not {self.kind!r}")
        if not 0.0 <= self.analyzer_prompts <= 1.0:
            raise ValueError(f"analyzer_prompts must be between 0 and 1, got {self.analyzer_prompts}")
        if self.analyzer_prompts and self.kind in ("clean", "text"):
            raise ValueError(f"analyzer_prompts is for paired sources, not {self.kind!r}")


@dataclass
class TrainConfig:
    """Everything a training run needs; saved next to its checkpoints and in the exported bundle."""

    recipe: str = "cpu"
    stage: str = "predictor"
    model: M3UNetConfig = field(default_factory=M3UNetConfig)
    # stage refiner: the diffusion refiner, trained against the frozen predictor of a bundle
    refiner: RefinerConfig = field(default_factory=RefinerConfig)
    predictor_bundle: str | None = None  # None: the shipped default bundle
    val_steps: int = 4
    val_sampler: str = "ddim"
    sources: list[SourceConfig] = field(default_factory=list)
    val_sources: list[SourceConfig] = field(default_factory=list)
    crop: int = 256
    val_crop: int = 256
    batch_size: int = 10
    iterations: int = 3000
    samples_per_epoch: int = 2000
    lr: float = 1e-4
    lr_schedule: str = "step"  # step: halve every lr_halve_every; cosine: to lr_min over iterations
    lr_halve_every: int = 1000
    lr_min: float = 1e-6
    warmup: int = 0
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    grad_clip: float = 0.0
    loss: str = "l1"  # l1: the paper's multi-scale L1; psnr: multi-scale negative PSNR per sample
    loss_weights: tuple[float, ...] = (1.0, 0.5, 0.25)
    fft_weight: float = 0.0  # > 0: add MIMO-UNet's frequency L1 at each scale, this much of it
    ema_decay: float = 0.0
    augment: bool = True
    prompt_dropout: float = 0.15
    text_encoder: str = "all-MiniLM-L6-v2"
    text_cache: str | None = None
    mixed_precision: str = "no"
    num_workers: int = 0
    val_every: int = 250
    val_images: int = 16
    log_every: int = 10
    checkpoint_minutes: float = 10.0
    time_limit_minutes: float = 0.0
    seed: int = 0
    bundle_name: str = "m3restore-base"
    # The planner steps the exported bundle declares it fixes; empty: derived from the sources
    # (a paired source's from its prompt, which needs the text-cleaning packages).
    fixes: list[str] = field(default_factory=list)
    # With --init: more blocks than the bundle's network has, e.g. {"dec_blocks": [3, 1, 1]}. The
    # bundle's blocks keep their weights and the added ones start as the identity (their residual
    # scales are zero), so training starts from exactly the bundle's function.
    grow: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.grow) - set(GROWABLE))
        if unknown:
            raise ValueError(f"grow: {unknown_choice('key', unknown[0], GROWABLE)}")
        if self.grow and self.stage != "predictor":
            raise ValueError("grow is for the predictor stage")
        if self.lr_schedule not in ("step", "cosine"):
            raise ValueError(unknown_choice("lr_schedule", self.lr_schedule, ("step", "cosine")))
        if self.mixed_precision not in ("no", "fp16", "bf16"):
            raise ValueError(unknown_choice("mixed_precision", self.mixed_precision, ("no", "fp16", "bf16")))
        if self.loss not in LOSSES:
            raise ValueError(unknown_choice("loss", self.loss, LOSSES))
        if self.stage not in STAGES:
            raise ValueError(unknown_choice("stage", self.stage, STAGES))
        if self.fft_weight < 0:
            raise ValueError(f"fft_weight must be 0 or more, got {self.fft_weight}")
        for value, name in ((self.batch_size, "batch_size"), (self.iterations, "iterations"), (self.crop, "crop")):
            if value <= 0:
                raise ValueError(f"{name} must be positive, got {value}")
