"""Reading the config file and its ``.env``: regular files only, and never without bound.

A device (``/dev/zero``) would be read until memory runs out and a FIFO would block
for ever, so anything but a regular file is refused before it is opened; the read
stops one byte past the limit.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

__all__ = ["MAX_CONFIG_BYTES", "FileRefused", "file_kind", "read_regular_file"]

# Far above any real config (the largest example is a few kilobytes).
MAX_CONFIG_BYTES = 1_000_000


class FileRefused(Exception):
    """The path exists but is not a file to read as config: ``problem`` says why."""

    def __init__(self, problem: str) -> None:
        self.problem = problem
        super().__init__(problem)


def file_kind(mode: int) -> str | None:
    """What a non-regular file is (``a directory``, ``a FIFO``...); None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a special file"


def read_regular_file(path: Path, limit: int = MAX_CONFIG_BYTES) -> bytes:
    """The bytes of ``path``; :class:`FileRefused` for anything but a regular file of at
    most ``limit`` bytes. ``OSError`` (``FileNotFoundError`` among them) passes through."""
    kind = file_kind(os.stat(path).st_mode)
    if kind is not None:
        raise FileRefused(f"{path} is {kind}, not a regular file")
    # O_NONBLOCK: should a FIFO take the file's place after the check, opening it
    # returns at once instead of waiting for a writer (a regular file ignores the flag).
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    with os.fdopen(fd, "rb") as handle:
        kind = file_kind(os.fstat(handle.fileno()).st_mode)
        if kind is not None:
            raise FileRefused(f"{path} is {kind}, not a regular file")
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise FileRefused(f"{path} is larger than {limit} bytes, too large for a config file")
    return data
