"""Where optional metric resources live, and how their absence is reported.

LPIPS and FID need network weights that m3restore does not ship; OCR needs Tesseract. When
something is missing, the evaluation reports one line such as
``"LPIPS: unavailable (no weights at ~/.cache/m3restore/lpips-alex.safetensors; ...)"`` and
leaves the metric empty — it never substitutes a proxy number under the metric's name.

Default weight files are looked for in the cache folder :func:`cache_dir`:
``$M3RESTORE_CACHE`` if set, else ``$XDG_CACHE_HOME/m3restore``, else ``~/.cache/m3restore``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Availability", "cache_dir", "display_path", "locate_weights"]


@dataclass(frozen=True)
class Availability:
    """Whether an optional metric can run; ``message`` is the one line shown to the user."""

    available: bool
    message: str
    detail: str | None = None


def cache_dir() -> Path:
    """The folder searched for LPIPS / FID weights when no file is given."""
    env = os.environ.get("M3RESTORE_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "m3restore"


def display_path(path: Path) -> str:
    """``path`` with the home folder shown as ``~`` (shorter messages)."""
    try:
        return "~/" + Path(path).resolve().relative_to(Path.home().resolve()).as_posix()
    except ValueError:
        return str(path)


def locate_weights(
    metric: str, option: str, path: str | Path | None, default_files: tuple[str, ...], missing: str
) -> tuple[Availability, Path | None]:
    """``(availability, file)`` for a metric's network: an explicit ``path`` (``--option``) must
    exist; otherwise the first of ``default_files`` in :func:`cache_dir`; otherwise unavailable,
    with ``missing`` (e.g. "no weights") naming what was not found."""
    from m3restore.errors import WeightsError

    if path is not None:
        p = Path(path).expanduser()
        if not p.is_file():
            raise WeightsError(f"{option} {path}: no such file")
        return Availability(True, f"{metric}: {p.name}"), p
    for name in default_files:
        candidate = cache_dir() / name
        if candidate.is_file():
            return Availability(True, f"{metric}: {display_path(candidate)}"), candidate
    where = display_path(cache_dir() / default_files[0])
    return Availability(False, f"{metric}: unavailable ({missing} at {where}; pass {option} FILE)"), None
