"""Exceptions that carry a one-line message meant for the user.

The CLI catches :class:`M3RestoreError` and prints ``str(error)`` as a single line with a
non-zero exit code; anything else is a bug and keeps its traceback.
"""


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
