"""A file written whole or not at all."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import stat
from pathlib import Path

__all__ = ["atomic_write_text", "remove_leftover_temps"]

# The names _temp_for gives, and only those: ``.NAME.`` then 8 hex digits then ``.tmp``.
_TEMP_NAME = re.compile(r"\..+\.[0-9a-f]{8}\.tmp")


def _temp_for(path: Path) -> Path:
    """The temporary file a write to ``path`` goes through, beside it."""
    return path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")


def atomic_write_text(path: Path, text: str, mode: int = 0o666) -> None:
    """Write ``text`` to ``path`` through a temporary file and ``os.replace``.

    A reader (or a resumed run) sees the old content or the new, never a mix, even
    if the process is killed mid-write. No fsync: surviving a power cut is not the
    goal, and an fsync per task would stall every other task on the event loop.
    A file that exists keeps its permissions (a private file stays private, a script
    stays executable); a new one gets ``mode`` less the umask.
    """
    temp = _temp_for(path)
    try:
        kept: int | None = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:  # none yet
        kept = None
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if kept is not None else mode)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        if kept is not None:
            os.chmod(temp, kept)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise


def remove_leftover_temps(root: Path) -> list[Path]:
    """Remove under ``root`` the temporary files of writes a killed process never finished.

    Only names of the exact shape :func:`atomic_write_text` gives its temporary files,
    only regular files (never a symlink or what it points to), never inside ``.git`` or
    a linked directory. Call it only where no other process writes (a run's claimed
    output directory): a write in flight there would lose its file. Returns what went.
    """
    removed: list[Path] = []
    for directory, subdirs, names in os.walk(root):
        subdirs[:] = [name for name in subdirs if name != ".git"]
        for name in names:
            if not _TEMP_NAME.fullmatch(name):
                continue
            path = Path(directory, name)
            with contextlib.suppress(OSError):
                if stat.S_ISREG(os.lstat(path).st_mode):
                    path.unlink()
                    removed.append(path)
    return removed
