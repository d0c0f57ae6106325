"""One picture restored the way ``m3restore restore`` restores it: for the command and for Python.

    from m3restore import load_restorer
    restorer = load_restorer()                  # the shipped bundle and the specialists beside it
    restored = restorer(image, prompt="street sign")
    restorer.last.plan                          # what was found, tried and kept (None: one pass)

With ``plan="auto"`` (the default) the bundle's degradation analyzer decides the steps; each runs
on the best installed model for it and is kept only if the checks pass
(:mod:`m3restore.pipeline.planner`). An automatic plan that finds nothing hands the picture back
unchanged, unless the prompt asks for a restoration: then it gets the one all-in-one pass that
``plan="none"`` always gives; a picture of one flat colour is handed back unchanged whatever the
prompt says (:func:`~m3restore.pipeline.planner.is_flat`). ``"denoise,deblur"`` is a fixed order.
A bundle without an analyzer gets the one pass whatever ``plan`` says, with :attr:`Restorer.note` saying so.

A bare :class:`~m3restore.pipeline.restore.RestorePipeline` is that one pass alone: it uses only
its own bundle's network, never the installed specialists, so it restores noise and JPEG less well.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from m3restore.errors import ConfigError
from m3restore.pipeline.planner import Planner, PlanReport, Pool, parse_plan, read_mask
from m3restore.pipeline.restore import is_grey, load_pipeline, to_rgb


@dataclass
class Outcome:
    """What became of the last picture."""

    plan: PlanReport | None  # None: one all-in-one pass of the pipeline (see ``pipe.last``)
    caption: str = ""  # the captioner's words on the content, when the bundle has one
    fell_back: bool = False  # the plan found nothing, but the prompt asked: one pass instead


class Restorer:
    """A :class:`~m3restore.pipeline.restore.RestorePipeline` with its planner; ``plan`` as the
    module docstring says; ``mask`` (an image file, white = missing, or an HxW array, non-zero =
    missing) marks the regions to inpaint."""

    def __init__(self, pipe, plan: str | list[str] = "auto", *, mask=None):
        self.pipe = pipe
        self.plan = parse_plan(plan if isinstance(plan, str) else ",".join(plan))
        self.note: str | None = None  # what a caller should be told: no plan possible, no refiner for specialists
        self.planner: Planner | None = None
        if self.plan != "none":
            if pipe.analyzer is not None:
                mask = np.asarray(mask) > 0 if isinstance(mask, np.ndarray) else read_mask(mask)
                self.planner = Planner(pipe, Pool.discover(pipe, mask=mask))
                if pipe.sampling.steps:
                    self.note = (
                        "the diffusion refiner (--steps) refines the all-in-one's passes only; "
                        "specialists' steps are not refined"
                    )
            elif self.plan == "auto":
                self.note = "this bundle has no degradation analyzer; one all-in-one pass instead of a plan"
            else:
                raise ConfigError("--plan with steps needs a bundle with a degradation analyzer (use --plan none)")
        self.last: Outcome | None = None

    def __call__(self, image, prompt: str | None = None, seed: int | None = None):
        """Restore ``image`` (any kind the pipeline takes); the result is of the same kind."""
        rgb, rebuild = to_rgb(image)
        outcome = Outcome(plan=None)
        if self.planner is not None:
            if seed is not None:
                torch.manual_seed(seed)
            outcome.caption = self.pipe.captioner.caption(rgb) if self.pipe.captioner is not None else ""
            result = self.planner.run(rgb, self.plan, prompt, outcome.caption, grey=is_grey(image))
            report = result.report
            if self.plan == "auto" and prompt and not report.planned and not report.flat:
                outcome.fell_back = True  # nothing to plan, yet the user's words ask for a restoration
            else:
                outcome.plan = report
                restored = rebuild(result.image)
        if outcome.plan is None:
            restored = self.pipe(image, prompt, seed)
        self.last = outcome
        return restored


def load_restorer(weights=None, *, plan: str | list[str] = "auto", mask=None, **kwargs) -> Restorer:
    """Open a weights bundle (default: the shipped one) with its planner; ``kwargs`` go to
    :func:`~m3restore.pipeline.restore.load_pipeline` (device, dtype, tile, ensemble ...)."""
    return Restorer(load_pipeline(weights, **kwargs), plan, mask=mask)
