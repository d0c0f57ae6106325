"""Atomic file writes: every file m3restore writes goes through here.

Data goes to a hidden temporary file beside the target, is flushed and fsynced, then renamed
over the target. The rename is atomic on one filesystem, so a reader — or a crash — sees the old
file or the new one, never half of one; on any failure the temporary file is removed.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from m3restore.errors import M3RestoreError

TEMP_MARKER = ".tmp-"


def atomic_write_bytes(
    path: str | os.PathLike, data: bytes, *, overwrite: bool = True, error: type[M3RestoreError] = M3RestoreError
) -> Path:
    """Write ``data`` to ``path`` atomically; OS failures become ``error`` with a one-line message.

    With ``overwrite=False`` an existing ``path`` is never replaced, even one that appears while
    the data is being written.
    """
    path = Path(path)
    make_parent(path, error)
    temp = path.with_name(f".{path.name}{TEMP_MARKER}{secrets.token_hex(4)}{path.suffix}")
    try:
        # O_EXCL: never clobber someone else's file; mode 0o666 lets the umask apply as usual.
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    except OSError as exc:
        raise error(f"{path.parent}: cannot write here ({exc.strerror or exc})") from exc
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if path.exists() and not overwrite:
            raise error(f"{path}: exists; use --overwrite")
        os.replace(temp, path)
    except BaseException as exc:
        temp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise error(f"{path}: write failed ({exc.strerror or exc})") from exc
        raise
    _fsync_dir(path.parent)
    return path


def atomic_write_text(path: str | os.PathLike, text: str, **kwargs) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"), **kwargs)


def make_parent(path: Path, error: type[M3RestoreError] = M3RestoreError) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        blocker = next((p for p in (path.parent, *path.parent.parents) if p.exists() and not p.is_dir()), None)
        if blocker is not None:
            raise error(f"{blocker}: is a file, so {path} cannot be written inside it") from exc
        raise error(f"{path.parent}: cannot create folder ({exc.strerror or exc})") from exc


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable; best effort, since not every OS can open a folder."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
