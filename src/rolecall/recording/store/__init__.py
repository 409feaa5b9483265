"""The metrics store: raw attempts, tasks and runs plus hourly/daily rollups.

``open_store(url)`` picks the backend from the URL:

- ``sqlite:///relative/path.db`` (relative to ``base_dir`` or the current directory),
  ``sqlite:////absolute/path.db``, ``sqlite://:memory:``;
- ``postgresql://user:password@host:port/db`` (needs ``pip install 'rolecall[postgres]'``).

Backends load on first use so that importing this package stays cheap.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from rolecall.errors import ConfigError, ConfigIssue, RolecallError

if TYPE_CHECKING:
    from rolecall.recording.store.base import MetricsStore

__all__ = [
    "EARLIEST_TIME",
    "LATEST_TIME",
    "MetricsStore",
    "StoreError",
    "StoreNotFound",
    "describe_url",
    "duration_seconds",
    "open_store",
]

# The moments a datetime (and so a query's time range) can hold: years 1 to 9999, UTC.
EARLIEST_TIME = datetime(1, 1, 1, tzinfo=UTC).timestamp()
LATEST_TIME = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp()

# A window's start as a duration back from now, as ``--since`` and the dashboard take it.
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def duration_seconds(text: str) -> float | None:
    """The seconds ``text`` spans when it is a duration (``7d``, ``24h``, ``30m``, ``90s``,
    ``2w``; inf for one too long for a float), else None."""
    match = _DURATION.match(text)
    if match is None:
        return None
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2).lower()]


_SQLITE_MEMORY = ("", ":memory:", "/:memory:")

log = logging.getLogger("rolecall.recording.store")


class StoreError(RolecallError):
    """The metrics store cannot be reached or used."""


class StoreNotFound(StoreError):
    """A read-only command found no store at the configured URL: no SQLite database at
    its path, or no rolecall tables in its PostgreSQL schema."""

    def __init__(self, path: Path | None = None, *, label: str | None = None) -> None:
        self.path = path
        where = f"{path} does not exist" if path is not None else f"{label} holds no tables yet"
        super().__init__(f"no metrics recorded yet: {where}")


def describe_url(url: str) -> str:
    """The URL with any password masked (in its user info or a query parameter such as
    ``?password=``), for messages and logs."""
    from rolecall._secrets import mask_url

    return mask_url(url)


def file_identity(path: Path | None) -> tuple[int, int] | None:
    """(device, inode) of the file at ``path``: another value means another file (one
    deleted, or moved aside and replaced). None for no path or no file."""
    try:
        info = path.stat() if path is not None else None
    except OSError:
        return None
    return None if info is None else (info.st_dev, info.st_ino)


def sqlite_path(url: str, base_dir: Path | None = None) -> Path | None:
    """The database file a ``sqlite:`` URL names (None for an in-memory database)."""
    rest = url[len("sqlite:") :]
    if rest.startswith("//"):
        rest = rest[2:]
    rest = rest.split("?", 1)[0]
    if rest in _SQLITE_MEMORY:
        return None
    if rest.startswith("/"):
        rest = rest[1:]  # sqlite:///relative.db -> relative.db, sqlite:////abs.db -> /abs.db
    path = Path(rest).expanduser()
    if not path.is_absolute():
        path = (base_dir or Path.cwd()) / path
    return path


def open_store(url: str, *, base_dir: Path | None = None, create: bool = True) -> MetricsStore:
    """Open (and migrate) the store at ``url``.

    With ``create=False`` a missing SQLite file raises :class:`StoreNotFound` instead of
    being created, so read-only commands leave no files behind.
    """
    # The rule config validation applies to metrics.url (imported here: the store package
    # itself stays cheap to import).
    from rolecall.config.schema import METRICS_URL_FIX, metrics_store_backend

    backend = metrics_store_backend(url)
    if backend == "sqlite":
        path = sqlite_path(url, base_dir)
        if path is not None and not create and not path.exists():
            raise StoreNotFound(path)
        from rolecall.recording.store.sqlite import SqliteStore

        return _closing_dead_starts(SqliteStore(path, read_only=not create))
    if backend == "postgresql":
        from rolecall.recording.store.postgres import PostgresStore

        return _closing_dead_starts(PostgresStore(url, read_only=not create))
    raise ConfigError(
        [
            ConfigIssue(
                "metrics.url",
                f"unsupported metrics store URL {describe_url(url)!r}",
                METRICS_URL_FIX,
            )
        ]
    )


def _closing_dead_starts(store: MetricsStore) -> MetricsStore:
    """``store``, with the calls in flight of processes killed mid-call stored as the
    ``cancelled`` attempts they were (:mod:`~rolecall.recording.store.starts`), so that
    whoever opens it next, to record or to read, finds them counted.

    A store this process cannot write is read as it is: those calls wait for a writer.
    """
    from rolecall.recording.runwriter import writer_alive

    try:
        store.close_dead_starts(lambda writer: writer_alive(writer) is False)
    except Exception as exc:
        log.debug("calls of dead processes left in flight in %s: %s", store.label, exc)
    return store


def __getattr__(name: str) -> object:
    if name == "MetricsStore":
        from rolecall.recording.store.base import MetricsStore

        return MetricsStore
    raise AttributeError(f"module 'rolecall.recording.store' has no attribute {name!r}")
