"""Exceptions that carry a one-line message meant for the user.

The CLI catches :class:`M3RestoreError` and prints ``str(error)`` as a single line with a
non-zero exit code; anything else is a bug and keeps its traceback.
"""

import difflib
from collections.abc import Iterable


class M3RestoreError(Exception):
    """Base class: the message is complete, one line, and safe to show to a user."""


class ImageError(M3RestoreError):
    """An image could not be read or written (missing, corrupt, too large, unwritable)."""


class WeightsError(M3RestoreError):
    """A weights bundle is missing, truncated, tampered with or does not fit its config."""


class ConfigError(M3RestoreError):
    """A configuration or option value is invalid (unknown key, bad value)."""


class DeviceError(M3RestoreError):
    """The requested device or dtype is not available on this machine."""


class DataError(M3RestoreError):
    """A dataset folder is empty, a pair is missing or mismatched, or a spec is unknown."""


def unknown_choice(what: str, value: object, valid: Iterable[object]) -> str:
    """The one message for a value outside a fixed set of names: what was given, the nearest
    valid name when one is close (a typo), then every valid name.

    >>> unknown_choice("recipe", "cpus", ["paper", "cpu", "gpu"])
    "unknown recipe 'cpus' (did you mean 'cpu'?); valid: paper, cpu, gpu"
    """
    names = [str(v) for v in valid]
    close = difflib.get_close_matches(str(value), names, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown {what} {value!r}{hint}; valid: {', '.join(names)}"
