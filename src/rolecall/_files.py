"""A file written whole or not at all."""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path

__all__ = ["atomic_write_text"]


def atomic_write_text(path: Path, text: str, mode: int = 0o666) -> None:
    """Write ``text`` to ``path`` through a temporary file and ``os.replace``.

    A reader (or a resumed run) sees the old content or the new, never a mix, even
    if the process is killed mid-write. No fsync: surviving a power cut is not the
    goal, and an fsync per task would stall every other task on the event loop.
    A file that exists keeps its permissions (a private file stays private, a script
    stays executable); a new one gets ``mode`` less the umask.
    """
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
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
