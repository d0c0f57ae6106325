"""Evaluation sets: what ``m3restore eval --dataset ...`` iterates over.

:func:`open_dataset` turns command-line choices into an :class:`EvalSet`, whose
:meth:`~EvalSet.load` gives :class:`EvalItem` objects (degraded input, ground truth, the
dataset's own description as a prompt, and for rendered text the true string).

=============  ==================================================================================
``gopro``      ``GOPRO_Large/<split>/<sequence>/{blur,sharp}/*.png`` (:func:`gopro_pairs`)
``realblur-j`` ``RealBlur_J_<split>_list.txt`` under ``--root`` (:func:`realblur_pairs`); also
``realblur-r``
``hide``       ``HIDE_dataset/<split>/...`` with ``GT/`` (:func:`hide_pairs`)
``pairs``      ``--input DIR`` and ``--target DIR``, matched by file stem (:func:`folder_pairs`)
``synthetic``  clean images under ``--root`` degraded by ``--degrade SPEC``; image ``i`` uses
               ``np.random.default_rng([seed, i])`` (:class:`~m3restore.data.datasets.EvalDataset`),
               so every run with the same seed sees the same inputs
``text``       ``--count N`` rendered signs / plates / document lines
               (:mod:`m3restore.data.text_images`) degraded by ``--degrade`` (default
               ``motion-blur:9-21``); content from ``[seed, i, 0]``, degradation from
               ``[seed, i, 1]``
=============  ==================================================================================

``--limit N`` keeps the first N items (in the dataset's sorted order), so a limited run is a
prefix of the full one and sees the same inputs.

Prompts (the "correct" prompt of the text ablation): ``"motion blur"`` for GoPro, RealBlur and
HIDE; ``describe(record)`` (e.g. ``"strong motion blur"``) for synthetic and text images; none
for ``pairs``, whose degradation is unknown; ``--prompt`` replaces all of them.
:func:`wrong_prompt` gives the mismatched one.

Pair sizes: a pair must have equal sizes, except that an input smaller than its target by the
same integer factor in both directions is a low-resolution pair (the model and the
baselines get its bicubic upscale; see :mod:`m3restore.evaluation.baselines`). Any other
mismatch is an error naming both files, unless ``crop_to_match`` is set: then both images are
cropped to their common top-left region and the item notes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from m3restore.data.datasets import (
    DEFAULT_PAIR_PROMPT,
    EvalDataset,
    Pair,
    clean_images,
    folder_pairs,
    gopro_pairs,
    hide_pairs,
    realblur_pairs,
)
from m3restore.data.degrade import Applied, degrade, describe, parse_spec
from m3restore.errors import ConfigError, DataError, unknown_choice

__all__ = ["DATASETS", "EvalItem", "EvalSet", "open_dataset", "wrong_prompt"]

DATASETS = ("gopro", "realblur-j", "realblur-r", "hide", "pairs", "synthetic", "text")
DEFAULT_TEXT_COUNT = 24


@dataclass
class EvalItem:
    """One evaluation image. ``input`` is as given (float32 HxWx3 in [0, 1]; smaller than
    ``target`` for a low-resolution pair); ``prompt`` is the dataset's own description."""

    name: str
    input: np.ndarray
    target: np.ndarray
    prompt: str = ""
    text: str | None = None
    record: list[Applied] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def size(self) -> tuple[int, int]:
        """``(height, width)`` of the target, which every method's output must have."""
        return tuple(self.target.shape[:2])

    @property
    def model_input(self) -> np.ndarray:
        """The input at the target's size (bicubic upscale of a low-resolution input)."""
        from m3restore.evaluation.baselines import bicubic_upscale

        return bicubic_upscale(self.input, self.size)


def wrong_prompt(prompt: str) -> str:
    """A description of the wrong kind of damage: ``"noise"`` for anything mentioning blur,
    ``"motion blur"`` for everything else (noise, JPEG, low light, ...)."""
    return "noise" if "blur" in prompt.lower() else "motion blur"


class EvalSet:
    """A sized, indexable set of :class:`EvalItem` (load one at a time; images are not cached)."""

    def __init__(self, kind: str, names: list[str], info: dict[str, Any], has_text: bool = False):
        if not names:
            raise DataError(f"{kind}: the dataset is empty")
        self.kind = kind
        self.names = names
        self.info = info
        self.has_text = has_text

    def __len__(self) -> int:
        return len(self.names)

    def load(self, index: int) -> EvalItem:  # pragma: no cover - abstract
        raise NotImplementedError


class _PairSet(EvalSet):
    def __init__(self, kind, pairs: list[Pair], info, prompt: str, crop_to_match: bool):
        super().__init__(kind, [p.name for p in pairs], info)
        self.pairs = pairs
        self.prompt = prompt
        self.crop_to_match = crop_to_match

    def load(self, index: int) -> EvalItem:
        from m3restore.io import read_image

        pair = self.pairs[index]
        inp = read_image(pair.input).rgb()
        tgt = read_image(pair.target).rgb()
        notes: list[str] = []
        (ih, iw), (th, tw) = inp.shape[:2], tgt.shape[:2]
        if (ih, iw) != (th, tw):
            factor = th // ih if ih else 0
            if factor > 1 and th == factor * ih and tw == factor * iw:
                notes.append(f"low-resolution input (x{factor}): bicubic-upscaled for the model and baselines")
            elif self.crop_to_match:
                h, w = min(ih, th), min(iw, tw)
                inp, tgt = inp[:h, :w], tgt[:h, :w]
                notes.append(f"cropped to {w}x{h} (input was {iw}x{ih}, target {tw}x{th})")
            else:
                raise DataError(
                    f"pair size mismatch for {pair.name}: {pair.input} is {iw}x{ih} but {pair.target} is {tw}x{th} "
                    "(use --crop-to-match to score their common top-left region)"
                )
        return EvalItem(pair.name, np.ascontiguousarray(inp), np.ascontiguousarray(tgt), self.prompt, notes=notes)


class _SyntheticSet(EvalSet):
    def __init__(self, images: list[Path], spec: str, seed: int, info, prompt: str | None):
        self.data = EvalDataset(images, spec, seed=seed, prompt=prompt)
        super().__init__("synthetic", list(self.data.names), info)

    def load(self, index: int) -> EvalItem:
        item = self.data.load(index)
        return EvalItem(item["name"], item["input"], item["target"], item["prompt"], record=item["record"])


class _TextSet(EvalSet):
    def __init__(self, count: int, spec: str, seed: int, info, prompt: str | None):
        from m3restore.data.text_images import KINDS

        self.spec = parse_spec(spec)
        self.seed = int(seed)
        self.prompt = prompt
        names = [f"{KINDS[i % len(KINDS)]}_{i:04d}" for i in range(count)]
        super().__init__("text", names, info, has_text=True)

    def load(self, index: int) -> EvalItem:
        from m3restore.data.text_images import text_image

        rendered = text_image(index, self.seed)
        degraded, record = degrade(rendered.image, self.spec, np.random.default_rng([self.seed, index, 1]))
        prompt = describe(record) if self.prompt is None else self.prompt
        return EvalItem(rendered.name, degraded, rendered.image, prompt, text=rendered.text, record=record)


def _need(value, option: str, dataset: str):
    if value is None or value == "":
        raise ConfigError(f"--dataset {dataset} needs {option}")
    return value


def open_dataset(
    dataset: str | None,
    *,
    root: str | Path | None = None,
    split: str = "test",
    input: str | Path | None = None,
    target: str | Path | None = None,
    degrade_spec: str | None = None,
    seed: int = 0,
    limit: int | None = None,
    count: int | None = None,
    prompt: str | None = None,
    crop_to_match: bool = False,
) -> EvalSet:
    """Build the evaluation set for ``dataset`` (see the module docstring); errors are one line."""
    if dataset is None:
        if input is None:
            raise ConfigError(f"--dataset is required (one of {', '.join(DATASETS)})")
        dataset = "pairs"
    kind = str(dataset).strip().lower().replace("_", "-")
    if kind not in DATASETS:
        raise ConfigError(unknown_choice("dataset", dataset, DATASETS))
    if limit is not None and int(limit) < 1:
        raise ConfigError(f"--limit must be at least 1, not {limit}")
    if degrade_spec is not None and kind not in ("synthetic", "text"):
        raise ConfigError(f"--degrade applies to --dataset synthetic or text, not {kind}")
    if count is not None and kind != "text":
        raise ConfigError(f"--count applies to --dataset text, not {kind}")
    if (input is not None or target is not None) and kind != "pairs":
        raise ConfigError(f"--input/--target apply to --dataset pairs, not {kind}")
    if root is not None and kind in ("pairs", "text"):
        raise ConfigError(f"--root does not apply to --dataset {kind}")
    if degrade_spec is not None:
        parse_spec(degrade_spec)  # unknown names fail here, listing the valid ones
    info: dict[str, Any] = {"dataset": kind, "seed": int(seed), "limit": limit}

    def cut(seq):
        return list(seq)[: int(limit)] if limit is not None else list(seq)

    if kind == "text":
        from m3restore.data.text_images import DEFAULT_TEXT_DEGRADATION

        spec = degrade_spec or DEFAULT_TEXT_DEGRADATION
        n = DEFAULT_TEXT_COUNT if count is None else int(count)
        if n < 1:
            raise ConfigError(f"--count must be at least 1, not {count}")
        n = min(n, int(limit)) if limit is not None else n
        info.update(degrade=spec, count=n)
        return _TextSet(n, spec, seed, info, prompt)
    if kind == "synthetic":
        _need(root, "--root DIR (clean images)", kind)
        _need(degrade_spec, '--degrade SPEC (e.g. "noise:25")', kind)
        images = cut(clean_images(root))
        info.update(root=str(root), degrade=degrade_spec, count=len(images))
        return _SyntheticSet(images, degrade_spec, seed, info, prompt)
    if kind == "pairs":
        _need(input, "--input DIR", kind)
        _need(target, "--target DIR", kind)
        pairs = cut(folder_pairs(input, target))
        info.update(input=str(input), target=str(target), count=len(pairs))
        return _PairSet(kind, pairs, info, prompt or "", crop_to_match)
    _need(root, "--root DIR", kind)
    if kind == "gopro":
        pairs = gopro_pairs(root, split)
    elif kind == "hide":
        pairs = hide_pairs(root, split)
    else:
        pairs = realblur_pairs(root, kind[-1].upper(), split)
    pairs = cut(pairs)
    info.update(root=str(root), split=split, count=len(pairs))
    return _PairSet(kind, pairs, info, DEFAULT_PAIR_PROMPT if prompt is None else prompt, crop_to_match)
