"""Open file descriptors: the process's limit, raised as far as it may go, and what to say
when they run out.

Every connection, file and pipe takes a descriptor, and a process may hold at most its
soft ``RLIMIT_NOFILE`` (``ulimit -n``), often 1024 for compatibility with ``select()``,
which nothing here uses. :func:`raise_open_file_limit` lifts the soft limit to the hard
one, as Go's runtime does at start since 1.19: a server should not stop at a default meant
for old programs. When they run out all the same, opening anything fails with ``EMFILE``
(``ENFILE``: the whole host's table is full); :func:`out_of_descriptors` tells that apart
from a file that is missing or a server that is down, and :func:`too_many_open_files`
says it in one line with the fix.
"""

from __future__ import annotations

import errno

try:
    import resource
except ImportError:  # Windows: no such limit to read or raise
    resource = None  # type: ignore[assignment]

__all__ = [
    "open_file_limit",
    "out_of_descriptors",
    "raise_open_file_limit",
    "too_many_open_files",
]

_EXHAUSTED = frozenset({errno.EMFILE, errno.ENFILE})
# macOS refuses a soft limit of RLIM_INFINITY (its usual hard limit); OPEN_MAX it takes.
_DARWIN_OPEN_MAX = 10240


def open_file_limit() -> int | None:
    """The soft ``RLIMIT_NOFILE``: descriptors this process may hold; None without a limit."""
    if resource is None:
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else soft


def raise_open_file_limit() -> int | None:
    """Raise the soft ``RLIMIT_NOFILE`` to the hard limit where the system allows it; the
    soft limit now in force (None: unlimited). A hard limit set low is respected: it is
    the operator's way to say how many."""
    if resource is None:
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for target in (hard, _DARWIN_OPEN_MAX):
        if target == soft or (target != resource.RLIM_INFINITY and target <= soft):
            break
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            continue  # refused (macOS and an unlimited hard limit): try less, or keep it
        break
    return open_file_limit()


def out_of_descriptors(exc: BaseException | None) -> OSError | None:
    """The ``EMFILE``/``ENFILE`` error behind ``exc`` (itself, or what it was raised from),
    or None when ``exc`` is about something else."""
    seen = 0
    while exc is not None and seen < 8:  # a chain, not a cycle: bounded all the same
        if isinstance(exc, OSError) and exc.errno in _EXHAUSTED:
            return exc
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


def too_many_open_files(exc: OSError) -> str:
    """One line naming the shortage of ``exc`` (from :func:`out_of_descriptors`) and its fix."""
    if exc.errno == errno.ENFILE:
        return (
            "too many open files on this host (the system's table is full): raise "
            "fs.file-max, or close what other programs hold open"
        )
    limit = open_file_limit()
    held = f"this process may hold {limit}" if limit is not None else "this process is at its limit"
    return (
        f"too many open files: {held} (ulimit -n); raise the limit (ulimit -n in its shell, "
        "LimitNOFILE= for a systemd service, --ulimit nofile= for a container) or send it "
        "fewer connections at once"
    )
