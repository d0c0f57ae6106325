"""What the training loop trains: the predictor, or the diffusion refiner against a frozen predictor.

A stage builds the network, computes the loss of one batch, measures validation PSNR and names
the components an exported bundle holds; the loop (:mod:`m3restore.training.loop`) does the rest
the same way for both.
"""

from __future__ import annotations

import copy
from dataclasses import replace

import torch

from m3restore.training.config import TrainConfig
from m3restore.training.losses import multiscale_loss
from m3restore.training.prompts import TrainingPrompts


def _pad(x: torch.Tensor, multiple: int):
    from m3restore.pipeline.tiling import pad_to_multiple

    padded, crop = pad_to_multiple(x, multiple)
    return padded.contiguous(memory_format=torch.channels_last), crop


def _psnr_8bit(y: torch.Tensor, target: torch.Tensor) -> float:
    from m3restore.metrics.quality import psnr_torch

    y = torch.round(y.float().clamp(0, 1) * 255) / 255
    t = torch.round(target.float() * 255) / 255
    return min(float(psnr_torch(y, t)[0]), 120.0)  # 120 dB: an MSE floor of 1e-12


def _warm_start(init: str, component: str, log):
    """A trainable copy of ``component`` from the bundle ``init``."""
    from m3restore.weights import open_bundle

    bundle = open_bundle(init)
    base = bundle.load(component)
    log(f"warm start of the {component} from {bundle.path}")
    model = type(base)(copy.deepcopy(base.config))
    model.load_state_dict(base.state_dict())
    return model


def _counts(value) -> tuple[int, ...]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,)


def grow(model, changes: dict, log):
    """``model`` with more blocks (``changes``: block counts of its config), computing the same function.

    The old blocks keep their weights; the added ones are fresh M3 blocks, whose zero residual
    scales make them the identity. Adding blocks shifts the dilation cycle of every block built
    after them unless a whole number of cycles is added, so the result is checked: on a random
    input the grown network must give the old one's output.
    """
    from m3restore.errors import ConfigError
    from m3restore.models.m3unet import M3UNet

    old = model.config
    try:
        config = replace(copy.deepcopy(old), **changes)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"grow: {error}") from None
    counts = {k: (_counts(getattr(old, k)), _counts(getattr(config, k))) for k in changes}
    for key, (before, after) in counts.items():
        if len(after) != len(before) or any(a < b for b, a in zip(before, after)):
            raise ConfigError(f"grow: {key} {list(after)} is not the bundle's {list(before)} or more at every level")
    added = sum(sum(after) - sum(before) for before, after in counts.values())
    if not added:
        log(f"grow: the bundle's network already has these blocks ({', '.join(changes)})")
        return model
    grown = M3UNet(config)  # the added blocks drawn from the run's seeded generator
    _, unexpected = grown.load_state_dict(model.state_dict(), strict=False)
    assert not unexpected, unexpected  # only blocks were added
    probe = torch.rand(
        1, old.in_channels, 2 * old.multiple, 2 * old.multiple, generator=torch.Generator().manual_seed(0)
    )
    with torch.no_grad():
        drift = float((grown.eval()(probe) - model.eval()(probe)).abs().max())
    if drift > 1e-5:
        raise ConfigError(
            f"grow: the grown network does not compute the bundle's function (max difference {drift:.3g}): "
            f"blocks added before others shift their dilations; add {len(old.dilations)} blocks at a time "
            "there, or add them to the last decoder level (dec_blocks[0])"
        )
    sizes = ", ".join(f"{k} {list(b)} -> {list(a)}" for k, (b, a) in counts.items())
    log(f"grew the network by {added} blocks ({sizes}); same output as the bundle's")
    return grown.train()


class PredictorStage:
    """The one-pass M3-UNet predictor, trained with the multi-scale loss of ``cfg.loss`` (L1 or PSNR)."""

    name = "predictor"

    def __init__(self, cfg: TrainConfig, device):
        self.cfg = cfg  # the loop replaces it with the config ``build`` returns
        self.device = device

    def build(self, cfg: TrainConfig, init: str | None, log):
        """The network to train: fresh from ``cfg``, or a copy of ``init``'s (config included)."""
        from m3restore.models.m3unet import M3UNet

        if not init:
            return cfg, M3UNet(cfg.model)
        model = _warm_start(init, "predictor", log)
        if cfg.grow:
            model = grow(model, cfg.grow, log)
        return replace(cfg, model=model.config), model

    def loss(self, model, inp, target, text):
        outputs = model(inp, text, scales=True)
        return multiscale_loss(outputs, target, self.cfg.loss_weights, self.cfg.loss, self.cfg.fft_weight)

    @torch.no_grad()
    def restore(self, net, x, text):
        return net(x, text)

    def components(self, net) -> dict:
        return {"predictor": net}


class RefinerStage(PredictorStage):
    """The diffusion refiner, learning the residual of a frozen predictor (predict-and-refine)."""

    name = "refiner"

    def __init__(self, cfg: TrainConfig, device):
        from m3restore.diffusion.refine import make_sampler, training_scheduler
        from m3restore.weights import open_bundle

        super().__init__(cfg, device)
        bundle = open_bundle(cfg.predictor_bundle)
        self.predictor_path = str(bundle.path)
        self.predictor = bundle.load("predictor").to(device).to(memory_format=torch.channels_last)
        self.predictor.requires_grad_(False).eval()
        self.scheduler = training_scheduler(cfg.refiner)
        make_sampler(cfg.val_sampler, cfg.refiner)  # an unknown sampler fails now, not at validation

    def build(self, cfg: TrainConfig, init: str | None, log):
        from m3restore.models.refiner import Refiner

        if not init:
            return cfg, Refiner(cfg.refiner)
        model = _warm_start(init, "refiner", log)
        return replace(cfg, refiner=model.config), model

    def estimate(self, inp, text):
        with torch.no_grad():
            return self.predictor(inp, text).clamp(0, 1)

    def loss(self, model, inp, target, text):
        from m3restore.diffusion.refine import diffusion_loss

        return diffusion_loss(model, self.scheduler, inp, self.estimate(inp, text), target, text)

    @torch.no_grad()
    def restore(self, net, x, text):
        from m3restore.diffusion.refine import refine

        estimate = self.estimate(x, text)
        noise = torch.randn(estimate.shape, generator=torch.Generator().manual_seed(0)).to(x.device)
        return refine(net, x, estimate, noise, steps=self.cfg.val_steps, sampler=self.cfg.val_sampler, text=text)

    def components(self, net) -> dict:
        return {"predictor": self.predictor, "refiner": net}


STAGE_CLASSES = {"predictor": PredictorStage, "refiner": RefinerStage}


def make_stage(cfg: TrainConfig, device) -> PredictorStage:
    return STAGE_CLASSES[cfg.stage](cfg, device)


@torch.no_grad()
def evaluate_psnr(stage: PredictorStage, net, encoder, items, device) -> float:
    """Mean PSNR (dB, RGB, 8-bit rounded) of the stage's restoration on validation items."""
    was_training = net.training
    net.eval()
    prompts = TrainingPrompts(encoder)
    scores = []
    for item in items:
        x, (h, w) = _pad(item["input"][None].to(device), net.multiple)
        text = prompts.encode([item["prompt"]]).to(device)
        y = stage.restore(net, x, text)[..., :h, :w]
        scores.append(_psnr_8bit(y, item["target"][None].to(device)))
    net.train(was_training)
    return sum(scores) / len(scores)
