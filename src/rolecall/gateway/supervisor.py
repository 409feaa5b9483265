"""``rolecall serve --workers N``: a pre-fork parent that keeps N gateway processes serving.

The parent binds the listening socket once, then forks the workers, which
inherit it: the kernel hands each new connection to whichever worker accepts
first, so one port uses every core. The parent runs no event loop and no
thread (forking is safe) and only supervises:

- a worker that dies after it was ready (killed, crashed) is replaced at once;
  the other workers keep serving, so their requests in flight are not lost;
- a worker that dies before it was ready (bad key in the credential check, a
  config problem) stops them all: the parent exits with that worker's status,
  as a single-process ``rolecall serve`` would;
- SIGINT or SIGTERM asks every worker to finish (uvicorn's graceful shutdown:
  requests in flight complete), waits for them and exits 0; a second signal
  kills them.

Readiness travels through a pipe: a worker writes its index once its gateway
has started. Signals are blocked in the parent and taken with ``sigwait``, so
no handler runs in the middle of a fork.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable

__all__ = ["WorkerExit", "supervise"]

log = logging.getLogger("rolecall.gateway")

_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGCHLD}


class WorkerExit(Exception):
    """A worker failed before it was ready; ``code`` is the exit status to leave with."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class _Pool:
    def __init__(self, workers: int, run: Callable[[int, Callable[[], None]], int]) -> None:
        self.workers = workers
        self._run = run
        self.children: dict[int, int] = {}  # pid -> worker index
        self.ready: set[int] = set()  # pids that said they were ready
        self._ready_r, self._ready_w = os.pipe()
        os.set_blocking(self._ready_r, False)

    def spawn(self, index: int) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the worker: never returns
            code = 1
            try:
                os.close(self._ready_r)
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)
                code = self._run(index, self._notify)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except BaseException:
                log.exception("worker %d failed", index)
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        self.children[pid] = index

    def _notify(self) -> None:
        os.write(self._ready_w, f"{os.getpid()}\n".encode())

    def read_ready(self) -> None:
        try:
            data = os.read(self._ready_r, 65536)
        except BlockingIOError:
            return
        self.ready.update(int(line) for line in data.split() if line.isdigit())

    def reap(self) -> list[tuple[int, int, int]]:
        """(pid, index, exit status) of every worker that ended since the last call."""
        ended = []
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            index = self.children.pop(pid, None)
            if index is not None:
                ended.append((pid, index, os.waitstatus_to_exitcode(status)))
        return ended

    def signal_all(self, sig: int) -> None:
        for pid in self.children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)


def supervise(workers: int, run: Callable[[int, Callable[[], None]], int]) -> int:
    """Fork ``workers`` processes running ``run(index, ready)``; supervise until a signal.

    ``run`` serves in the worker and returns its exit status; it calls ``ready()``
    once it can take requests. Returns the parent's exit status (0 after a signal);
    raises :class:`WorkerExit` when a worker fails before it was ready.
    """
    signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # delivered to sigwait, never ignored
    pool = _Pool(workers, run)
    for index in range(workers):
        pool.spawn(index)
    stopping = False
    while pool.children:
        sig = signal.sigwait(_SIGNALS)
        pool.read_ready()
        if sig in (signal.SIGINT, signal.SIGTERM):
            if stopping:
                pool.signal_all(signal.SIGKILL)
            else:
                stopping = True
                log.info("stopping %d worker(s)", len(pool.children))
                pool.signal_all(signal.SIGTERM)
            continue
        for pid, index, code in pool.reap():
            was_ready = pid in pool.ready
            pool.ready.discard(pid)
            if stopping:
                continue
            if not was_ready:
                stopping = True
                pool.signal_all(signal.SIGTERM)
                _wait_all(pool)
                raise WorkerExit(code if code > 0 else 1)
            log.warning("worker %d (pid %d) ended (status %d); starting another", index, pid, code)
            pool.spawn(index)
    return 0


def _wait_all(pool: _Pool) -> None:
    while pool.children:
        try:
            pid, _ = os.waitpid(-1, 0)
        except ChildProcessError:
            return
        pool.children.pop(pid, None)
