"""Dataclass configs that round-trip through JSON/YAML.

Unknown keys are an error, not silently ignored: a typo in a config file must not train a
different model than the user asked for.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from pathlib import Path
from typing import Any, TypeVar

from m3restore.errors import ConfigError, unknown_choice

T = TypeVar("T")


def from_dict(cls: type[T], data: dict[str, Any], *, where: str = "") -> T:
    """Build dataclass ``cls`` from ``data``; nested dataclasses are built recursively."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where or cls.__name__}: expected a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if len(unknown) == 1:
        raise ConfigError(f"{where or cls.__name__}: {unknown_choice('key', unknown[0], fields)}")
    if unknown:
        raise ConfigError(f"{where or cls.__name__}: unknown keys {', '.join(unknown)}; valid: {', '.join(fields)}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in data.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint) and isinstance(value, dict):
            value = from_dict(hint, value, where=f"{where or cls.__name__}.{name}")
        elif isinstance(value, list):
            item = _list_item_dataclass(hint)
            if item is not None:
                value = [from_dict(item, v, where=f"{where or cls.__name__}.{name}[{i}]") for i, v in enumerate(value)]
            elif _is_tuple(hint):
                value = tuple(value)
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{where or cls.__name__}: {error}") from None


def _list_item_dataclass(hint: Any) -> type | None:
    if typing.get_origin(hint) is list:
        (arg,) = typing.get_args(hint) or (None,)
        if dataclasses.is_dataclass(arg):
            return arg
    return None


def _is_tuple(hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if origin is tuple:
        return True
    return any(typing.get_origin(arg) is tuple or arg is tuple for arg in typing.get_args(hint))


def to_dict(config: Any) -> dict[str, Any]:
    """Plain JSON-able dict of a dataclass (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def load_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML or JSON mapping; errors name the file."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise ConfigError(f"{path}: cannot read config ({error.strerror})") from None
    try:
        if path.suffix.lower() in {".yaml", ".yml"}:
            import yaml

            data = yaml.safe_load(text) or {}
        else:
            data = json.loads(text)
    except Exception as error:  # noqa: BLE001 - parser errors vary by library
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ConfigError(f"{path}: not valid {path.suffix.lstrip('.') or 'json'}: {first}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data
