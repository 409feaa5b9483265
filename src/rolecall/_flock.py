"""Whether a process still holds its lock file.

A process that must be known alive (a run's writer, a worker of ``rolecall
serve``) holds an exclusive ``flock`` on a file of its own for as long as it
runs; the kernel drops the lock when the process ends, also on ``kill -9``.
Another process tells whether it is alive by trying a shared lock.
"""

from __future__ import annotations

import os

try:
    import fcntl
except ImportError:  # pragma: no cover - not on this platform: liveness is unknown
    fcntl = None  # type: ignore[assignment]

__all__ = ["lock_held"]


def lock_held(path: str | os.PathLike[str]) -> bool | None:
    """True while a process holds the lock on ``path``; False once none does (or there is
    no such file: it is removed on release); None when that cannot be told."""
    if fcntl is None:
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return None
    finally:
        os.close(fd)  # also drops the shared lock if it was taken
    return False
