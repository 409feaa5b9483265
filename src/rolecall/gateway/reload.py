"""Hot reload: watch the config file, and swap routers without dropping requests.

:class:`ConfigWatcher` polls the file (and the ``.env`` beside it) about once a
second: modification time, size and a SHA-256 of the bytes, so an edit that
keeps size and mtime (coarse file-system clocks) is still seen. No dependency.

:class:`RouterSlot` holds the current :class:`Generation` (router + the config
it was built from). A request takes a lease on the generation that is current
when it starts and keeps it to the end; a swap makes the new generation current
for new requests at once, and closes the old router when its last lease ends.
Settings read once per process (:func:`restart_only_changes`) are named in a
warning at reload instead of being ignored in silence.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from rolecall._descriptors import out_of_descriptors, too_many_open_files
from rolecall._secrets import redact
from rolecall.config._read import FileRefused, read_regular_file
from rolecall.errors import ConfigError

if TYPE_CHECKING:
    from rolecall.config.schema import RolecallConfig
    from rolecall.gateway.auth import KeyChecker
    from rolecall.routing.router import Router

__all__ = ["ConfigWatcher", "Generation", "RouterSlot", "file_signature", "restart_only_changes"]

log = logging.getLogger("rolecall.gateway")
_LOGGED_ISSUES = 20  # in the one warning line of a bad edit

Signature = tuple[tuple[int, int, str] | None, ...]


def file_signature(paths: tuple[Path, ...]) -> Signature:
    """(mtime_ns, size, sha256) per path; None for a missing file. A path that is no file
    to read as config (a FIFO, which would block the read for ever, a directory, a file
    over the size limit) gets the refusal as its digest: the loader then says why. A
    process out of file descriptors cannot tell: its ``OSError`` is raised."""
    parts: list[tuple[int, int, str] | None] = []
    for path in paths:
        try:
            stat = path.stat()
            digest = hashlib.sha256(read_regular_file(path)).hexdigest()
        except FileRefused as exc:
            digest = f"refused: {exc.problem}"
        except OSError as exc:
            if out_of_descriptors(exc):
                raise
            parts.append(None)
            continue
        parts.append((stat.st_mtime_ns, stat.st_size, digest))
    return tuple(parts)


def _content_only(signature: Signature) -> tuple[str | None, ...]:
    # A touch (new mtime, same bytes) is not a change worth rebuilding the router for.
    return tuple(part[2] if part else None for part in signature)


@dataclass(eq=False)
class Generation:
    """One router and the config it serves; ``number`` counts reloads from 1."""

    router: Router
    config: RolecallConfig
    keys: KeyChecker
    number: int
    in_flight: int = 0
    retired: bool = False


@dataclass(eq=False)
class RouterSlot:
    """The current generation, leases on it, and the closing of retired ones."""

    current: Generation
    _closing: set[asyncio.Task[None]] = field(default_factory=set)
    # Retired generations whose requests still run: closed when the last ends, or with the slot.
    _draining: set[Generation] = field(default_factory=set)

    def acquire(self) -> Generation:
        """Lease the current generation (synchronous: no swap can slip in between)."""
        generation = self.current
        generation.in_flight += 1
        return generation

    def release(self, generation: Generation) -> None:
        generation.in_flight -= 1
        if generation.retired and generation.in_flight == 0 and generation in self._draining:
            self._draining.discard(generation)
            self._close(generation)

    def swap(self, generation: Generation) -> Generation:
        """Make ``generation`` current; the old one closes once its requests finish."""
        old, self.current = self.current, generation
        old.retired = True
        if old.in_flight == 0:
            self._close(old)
        else:
            self._draining.add(old)
        return old

    def _close(self, generation: Generation) -> None:
        task = asyncio.get_running_loop().create_task(_close_router(generation))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def aclose(self) -> None:
        """Close the current router, and the retired ones whose requests still run (those
        requests end, recorded as cancelled); wait for retired ones still closing."""
        self.current.retired = True
        draining, self._draining = self._draining, set()
        await asyncio.gather(*(_close_router(g) for g in (self.current, *draining)))
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)


def restart_only_changes(old: RolecallConfig, new: RolecallConfig) -> list[str]:
    """Settings that differ but apply only at restart: the ``metrics`` section.

    The recorder (metrics store and run logs) is opened once per process and
    keeps the gateway run; reopening it under requests still in flight would
    split or lose their records, so a reload keeps it and says so.
    """
    return [
        f"metrics.{name}"
        for name in type(old.metrics).model_fields
        if getattr(old.metrics, name) != getattr(new.metrics, name)
    ]


async def _close_router(generation: Generation) -> None:
    try:
        await generation.router.aclose()
    except Exception as exc:  # closing is best effort; the process keeps serving
        log.warning("closing router of config generation %d failed: %s", generation.number, exc)


class ConfigWatcher:
    """Polls a config file; on a content change loads it and hands it to ``on_change``.

    An invalid file is logged as one warning line (every issue, ``; ``-joined)
    and the old config stays. Each distinct content is tried once: a bad edit is
    not re-reported every second, and the next edit is tried afresh.

    The first poll reads the file whatever it holds: the config being served was
    read before the watcher started (before a credential check that may take
    seconds), and an edit saved in between must not pass for the file already
    served. ``on_change`` may thus get a config equal to the one it serves.
    """

    def __init__(
        self,
        path: Path,
        on_change: Callable[[RolecallConfig], Awaitable[None]],
        *,
        interval: float = 1.0,
        load: Callable[[Path], RolecallConfig] | None = None,
        quiet: bool = False,
    ) -> None:
        self.path = path
        # Each worker of `serve --workers N` watches the file; one of them reports problems.
        self._problem_level = logging.DEBUG if quiet else logging.WARNING
        self.interval = interval
        self._paths = (path, path.parent / ".env")
        self._on_change = on_change
        self._load = load or _load_config
        self._seen: tuple[str | None, ...] | None = None  # None: not read yet
        self._starved = False  # out of file descriptors at the last poll (said once)
        self._task: asyncio.Task[None] | None = None
        self._soon: set[asyncio.Task[None]] = set()
        # One poll at a time: a poll started while another is still checking the credentials
        # of an older edit would apply the newer file first, then be overtaken by the older.
        self._polling = asyncio.Lock()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop polling, and end any poll a SIGHUP started (a reload under way is dropped)."""
        task, self._task = self._task, None
        tasks = [*self._soon, *([task] if task is not None else [])]
        for pending in tasks:
            pending.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def poll_soon(self) -> None:
        """Check now rather than at the next interval (``rolecall serve`` on SIGHUP)."""
        task = asyncio.get_running_loop().create_task(self._poll_logged())
        self._soon.add(task)  # held until done: the loop keeps only weak references
        task.add_done_callback(self._soon.discard)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self._poll_logged()

    async def _poll_logged(self) -> None:
        try:
            await self.poll()
        except Exception as exc:  # the watcher must outlive any one bad poll
            log.warning("config watcher: %s", redact(f"{type(exc).__name__}: {exc}"))

    async def poll(self) -> bool:
        """Check once (after any poll under way); True when a new config was handed over."""
        async with self._polling:
            return await self._poll()

    async def _poll(self) -> bool:
        try:
            signature = _content_only(await asyncio.to_thread(file_signature, self._paths))
        except OSError as exc:
            exhausted = out_of_descriptors(exc)
            if exhausted is None:
                raise
            # Not a change, nor a file gone: read again at the next poll.
            if not self._starved:
                self._starved = True
                log.warning(
                    "cannot read config %s: %s; keeping the previous config until it can",
                    self.path,
                    too_many_open_files(exhausted),
                )
            return False
        self._starved = False
        if signature == self._seen:
            return False
        self._seen = signature
        if signature[0] is None:
            log.log(
                self._problem_level, "config %s disappeared; keeping the previous config", self.path
            )
            return False
        try:
            config = await asyncio.to_thread(self._load, self.path)
        except ConfigError as exc:
            issues = "; ".join(str(issue) for issue in exc.issues[:_LOGGED_ISSUES]) or exc.message
            if len(exc.issues) > _LOGGED_ISSUES:
                issues += f"; ... {len(exc.issues) - _LOGGED_ISSUES} more"
            log.log(
                self._problem_level,
                "config %s changed but is invalid; keeping the previous config: %s",
                self.path,
                redact(issues.replace("\n", " ")),
            )
            return False
        await self._on_change(config)
        return True


def _load_config(path: Path) -> RolecallConfig:
    from rolecall.config.load import load_config

    return load_config(path)
