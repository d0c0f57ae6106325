"""Merge a training config from defaults, a recipe, a config file and command-line options.

Precedence, lowest first: TrainConfig defaults < recipe < config file < command-line options.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from m3restore.config import from_dict, load_file
from m3restore.errors import ConfigError, unknown_choice
from m3restore.training.config import DATASET_KINDS, TrainConfig
from m3restore.training.recipes import recipe as recipe_defaults


def build_config(
    *,
    config: Path | None = None,
    recipe: str | None = None,
    stage: str = "predictor",
    dataset: str | None = None,
    root: str | None = None,
    input: str | None = None,
    target: str | None = None,
    degrade: str | None = None,
    overrides: dict[str, Any] | None = None,
) -> TrainConfig:
    data: dict[str, Any] = load_file(config) if config else {}
    name = recipe or data.get("recipe") or "cpu"
    merged = {**recipe_defaults(name), **data, "recipe": name, "stage": stage}
    if dataset:
        if dataset not in DATASET_KINDS:
            raise ConfigError(unknown_choice("--dataset", dataset, DATASET_KINDS))
        source: dict[str, Any] = {"kind": dataset, "root": root, "input": input, "target": target}
        if degrade:
            source["degrade"] = degrade
        merged["sources"] = [source]
    elif degrade:
        raise ConfigError("--degrade needs --dataset clean (or sources in the config)")
    if degrade:
        from m3restore.data.degrade import parse_spec

        parse_spec(degrade)  # fail now, with the list of valid names, not minutes into the run
    merged.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return from_dict(TrainConfig, merged, where="training config")
