"""``rolecall serve --workers N``: a pre-fork parent that keeps N gateway processes serving.

The parent binds the listening socket once, then forks the workers, which
inherit it: the kernel hands each new connection to whichever worker accepts
first, so one port uses every core. The parent runs no event loop and no
thread (forking is safe) and only supervises:

- a worker that dies after it was ready (killed, crashed) is replaced at once;
  the other workers keep serving, so their requests in flight are not lost;
- a worker that is ready but frozen (stopped with SIGSTOP, its event loop
  deadlocked or stuck in a blocking call) is killed with SIGKILL and replaced
  once its heartbeat is older than ``timeout`` seconds: each worker's event loop
  stamps the time in memory shared with the parent every :data:`BEAT_SECONDS`
  (a timer, not per request), and the parent looks at the stamps as often;
- a worker hung while starting (before its first heartbeat) is timed the same way from
  its spawn: killed and replaced ``timeout`` seconds later;
- a worker that dies before it was ready (bad key in the credential check, a
  config problem) stops them all: the parent exits with that worker's status,
  as a single-process ``rolecall serve`` would;
- SIGHUP is passed to every worker, which reads its config file at once (a
  reload, as with nginx or gunicorn; without it each notices the change at
  its next poll);
- SIGINT or SIGTERM asks every worker to finish (uvicorn's graceful shutdown:
  requests in flight complete), waits for them and exits 0; a second signal
  kills them. A worker's silence is not held against it meanwhile (it may be
  sending its last records): the second signal is the way out of a frozen one.

With a ``writer`` (the one process that writes the run logs and the metrics
store for every worker: :mod:`rolecall.recording.relay`), the parent forks it
before the workers, starts another if it dies, and stops it only after every
worker has exited, so it reads all they sent. It beats as a worker does (from its
loop, at least every second), and one silent for ``timeout`` seconds is killed and
replaced the same way, also while the workers stop (they are sending it their last
records): each worker sends the next writer what the frozen one had not written. Once
they have exited it is told to stop, and beats while it closes: one silent for ``timeout``
(:data:`DEFAULT_TIMEOUT` without one) is killed then, as is one still there at a second
signal.

A parent killed with SIGKILL (or crashed) cannot stop its children: each of them
checks every second that its parent is still the one that forked it, and if not
stops itself as on SIGTERM (workers finish their requests, the writer writes what
it was sent), so no orphan keeps serving the port or holding the store.

An ``ended`` callback hears the index of every worker that exited, before its
replacement starts (``rolecall serve`` gives back the provider slots it held).

Readiness travels through a pipe: a worker writes its pid once its gateway
has started (one that starts after its parent was killed finds nobody reading, and
stops as the others do). Signals are blocked in the parent and taken with ``sigwait``, so
no handler runs in the middle of a fork.
"""

from __future__ import annotations

import contextlib
import logging
import mmap
import os
import signal
import struct
import sys
import threading
import time
from collections.abc import Callable

__all__ = ["WorkerExit", "supervise"]

log = logging.getLogger("rolecall.gateway")

_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGCHLD, signal.SIGHUP}
PARENT_CHECK_SECONDS = 1.0
BEAT_SECONDS = 1.0  # how often a worker's event loop stamps its heartbeat
DEFAULT_TIMEOUT = 30.0  # a ready worker silent this long is killed and replaced
_STAMP = struct.Struct("d")
_PR_SET_PDEATHSIG = 1

Run = Callable[[int, Callable[[], None], Callable[[], None]], int]
Writer = Callable[[Callable[[], None]], int]


def _stop_when_orphaned(parent: int, silent: Callable[[], float], timeout: float | None) -> None:
    """In a child: SIGTERM itself once ``parent`` is gone (its parent pid changes); then,
    as the parent would have, SIGKILL itself if its heartbeat is ``silent()`` for longer
    than ``timeout`` (a frozen event loop never acts on the SIGTERM). A child stopped with
    SIGSTOP is continued when its parent dies (Linux), so it stops as the others do."""
    _continue_when_parent_dies()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_SECONDS)
        log.warning("the parent (pid %d) is gone: pid %d stops", parent, os.getpid())
        os.kill(os.getpid(), signal.SIGTERM)
        while timeout is not None:
            time.sleep(PARENT_CHECK_SECONDS)
            if silent() > timeout:
                log.warning("pid %d is frozen and its parent gone: killed", os.getpid())
                os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _continue_when_parent_dies() -> None:
    """Ask Linux for SIGCONT when the parent dies (prctl PR_SET_PDEATHSIG): a child frozen
    with SIGSTOP then runs again and sees the parent gone. Elsewhere, nothing."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGCONT), 0, 0, 0)


class WorkerExit(Exception):
    """A worker failed before it was ready; ``code`` is the exit status to leave with."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class _Pool:
    def __init__(
        self,
        workers: int,
        run: Run,
        writer: Writer | None = None,
        ended: Callable[[int], None] | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
    ) -> None:
        self.workers = workers
        self.timeout = timeout
        self.ended = ended
        self._run = run
        self._writer = writer
        self.writer_pid: int | None = None
        self.writer_silenced = False  # killed for its silence, not yet reaped
        self._writer_started = -1.0
        self.children: dict[int, int] = {}  # pid -> worker index
        self.ready: set[int] = set()  # pids that said they were ready
        self.silenced: set[int] = set()  # pids killed for their silence, not yet reaped
        self._ready_r, self._ready_w = os.pipe()
        os.set_blocking(self._ready_r, False)
        # One heartbeat stamp (time.monotonic(), the same clock in every process) per worker,
        # and the writer's after theirs, in anonymous shared memory the children inherit.
        self._beats = mmap.mmap(-1, _STAMP.size * (workers + 1))

    def spawn(self, index: int) -> None:
        self._beat(index)  # not the stamp of the worker it replaces
        body = lambda: self._run(index, self._notify, lambda: self._beat(index))  # noqa: E731
        self.children[self._fork(body, f"worker {index}", index, unblock=True)] = index

    def _beat(self, index: int) -> None:
        _STAMP.pack_into(self._beats, index * _STAMP.size, time.monotonic())

    def writer_silence(self) -> float:
        """Seconds since the writer last beat."""
        return self._silent(self.workers)

    def kill_silent_writer(self) -> None:
        """SIGKILL the writer once its heartbeat is older than :attr:`timeout` (another is
        started when it is reaped)."""
        pid = self.writer_pid
        if self.timeout is None or pid is None or self.writer_silenced:
            return
        silent = self.writer_silence()
        if silent > self.timeout:
            log.warning(
                "the run writer (pid %d) silent for %.1f s (worker timeout %g s): killed; "
                "starting another, to which the workers send what it had not written",
                pid, silent, self.timeout,
            )  # fmt: skip
            self.writer_silenced = True
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def kill_silent(self) -> None:
        """SIGKILL every worker whose heartbeat is older than :attr:`timeout` (it is replaced
        when reaped, as a worker that died). A worker still starting is timed from its
        spawn (its stamp until it beats): one hung before its first beat is replaced too."""
        if self.timeout is None:
            return
        now = time.monotonic()
        for pid, index in self.children.items():
            if pid in self.silenced:
                continue
            (stamp,) = _STAMP.unpack_from(self._beats, index * _STAMP.size)
            silent = now - stamp
            if silent > self.timeout:
                what = "silent" if pid in self.ready else "not ready"
                log.warning(
                    "worker %d (pid %d) %s for %.1f s (worker timeout %g s): "
                    "killed; starting another",
                    index, pid, what, silent, self.timeout,
                )  # fmt: skip
                self.silenced.add(pid)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    def spawn_writer(self) -> None:
        if self._writer is None:
            return
        # A writer that dies at once (a bug) is not restarted in a tight loop.
        time.sleep(max(0.0, self._writer_started + 1.0 - time.monotonic()))
        self._writer_started = time.monotonic()
        self._beat(self.workers)
        writer, slot = self._writer, self.workers
        body = lambda: writer(lambda: self._beat(slot))  # noqa: E731
        # Its signals stay blocked until it has its handlers (it unblocks them itself).
        self.writer_pid = self._fork(body, "the run writer", slot, unblock=False)
        log.info(
            "run writer pid %d writes the run logs and metrics of every worker", self.writer_pid
        )

    def _silent(self, slot: int) -> float:
        (stamp,) = _STAMP.unpack_from(self._beats, slot * _STAMP.size)
        return time.monotonic() - float(stamp)

    def _fork(self, body: Callable[[], int], name: str, slot: int, *, unblock: bool) -> int:
        sys.stdout.flush()
        sys.stderr.flush()
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # the child: never returns
            code = 1
            try:
                _stop_when_orphaned(parent, lambda: self._silent(slot), self.timeout)
                os.close(self._ready_r)
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                signal.signal(signal.SIGHUP, signal.SIG_IGN)  # until the child takes it
                signal.pthread_sigmask(
                    signal.SIG_UNBLOCK, _SIGNALS if unblock else {signal.SIGCHLD}
                )
                code = body()
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except BaseException:
                log.exception("%s failed", name)
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        return pid

    def _notify(self) -> None:
        # A parent killed meanwhile reads no more (the pipe is broken): this worker serves
        # on until its parent watch stops it, as it stops the others.
        with contextlib.suppress(BrokenPipeError):
            os.write(self._ready_w, f"{os.getpid()}\n".encode())

    def read_ready(self) -> None:
        try:
            data = os.read(self._ready_r, 65536)
        except BlockingIOError:
            return
        self.ready.update(int(line) for line in data.split() if line.isdigit())

    def reap(self) -> list[tuple[int, int, int]]:
        """(pid, index, exit status) of every worker that ended since the last call;
        the writer ending clears :attr:`writer_pid`."""
        ended = []
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            if pid == self.writer_pid:
                self.writer_pid = None
                code = os.waitstatus_to_exitcode(status)
                if not self.writer_silenced:  # else its one line said why when it was killed
                    log.warning("the run writer (pid %d) ended (status %d)", pid, code)
                self.writer_silenced = False
            index = self.children.pop(pid, None)
            if index is not None:
                if self.ended is not None:
                    self.ended(index)
                ended.append((pid, index, os.waitstatus_to_exitcode(status)))
        return ended

    def signal_all(self, sig: int) -> None:
        for pid in self.children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)


def supervise(
    workers: int,
    run: Run,
    writer: Writer | None = None,
    *,
    ended: Callable[[int], None] | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
) -> int:
    """Fork ``workers`` processes running ``run(index, ready, beat)``; supervise until a signal.

    ``run`` serves in the worker and returns its exit status; it calls ``ready()``
    once it can take requests, and ``beat()`` then and every :data:`BEAT_SECONDS`
    from its event loop: a ready worker that has not beaten for ``timeout`` seconds
    (None: never) is killed and replaced. ``writer(beat)``, when given, runs in a process of
    its own that outlives the workers and ends on SIGTERM; it beats as they do, and is
    replaced as they are. Returns the parent's exit status
    (0 after a signal); raises :class:`WorkerExit` when a worker fails before it
    was ready.
    """
    signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # delivered to sigwait, never ignored
    pool = _Pool(workers, run, writer, ended, timeout)
    pool.spawn_writer()
    for index in range(workers):
        pool.spawn(index)
    try:
        return _supervise(pool)
    finally:
        _stop_writer(pool)


def _supervise(pool: _Pool) -> int:
    stopping = False
    # With a timeout the parent wakes to look at the heartbeats as often as they come.
    every = None if pool.timeout is None else min(BEAT_SECONDS, pool.timeout / 2)
    while pool.children:
        sig: int | None
        if every is None:
            sig = signal.sigwait(_SIGNALS)
        else:
            info = signal.sigtimedwait(_SIGNALS, every)
            sig = None if info is None else info.si_signo
        pool.read_ready()
        pool.kill_silent_writer()  # also while stopping: the workers send it their last records
        if not stopping:
            pool.kill_silent()
        if sig is None:
            continue
        if sig == signal.SIGHUP:  # a reload: every worker reads its config file now
            if not stopping:
                log.info("SIGHUP: %d worker(s) read the config now", len(pool.children))
                pool.signal_all(signal.SIGHUP)
            continue
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
            silenced = pid in pool.silenced
            pool.silenced.discard(pid)
            if stopping:
                continue
            if not was_ready and not silenced:
                stopping = True
                pool.signal_all(signal.SIGTERM)
                _wait_all(pool)
                raise WorkerExit(code if code > 0 else 1)
            if not silenced:  # else its one line said why when it was killed
                log.warning(
                    "worker %d (pid %d) ended (status %d); starting another", index, pid, code
                )
            pool.spawn(index)
        if pool.writer_pid is None and pool.children:  # stopping workers still send to it
            pool.spawn_writer()
    return 0


def _stop_writer(pool: _Pool) -> None:
    """SIGTERM to the writer (every worker has exited: all they sent is in its socket
    buffers), then wait for it to write that and exit. It beats until it exits, while it
    closes its recorder too: one silent for the timeout (with none, :data:`DEFAULT_TIMEOUT`:
    nothing is served any more) is frozen, and is killed, as is one still there at a
    second SIGINT or SIGTERM."""
    pid = pool.writer_pid
    if pid is None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    silence = DEFAULT_TIMEOUT if pool.timeout is None else pool.timeout
    while True:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            break
        if done:
            break
        info = signal.sigtimedwait(_SIGNALS, min(BEAT_SECONDS, silence / 2))
        silent = pool.writer_silence()
        if info is not None and info.si_signo in (signal.SIGINT, signal.SIGTERM):
            log.warning("the run writer (pid %d) is killed: a second stop signal", pid)
        elif silent > silence:
            limit = "worker timeout" if pool.timeout is not None else "no worker timeout: at most"
            log.warning(
                "the run writer (pid %d) silent for %.1f s while it stops (%s %g s): killed",
                pid, silent, limit, silence,
            )  # fmt: skip
        else:
            continue
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        break
    pool.writer_pid = None


def _wait_all(pool: _Pool) -> None:
    while pool.children:
        try:
            pid, _ = os.waitpid(-1, 0)
        except ChildProcessError:
            return
        pool.children.pop(pid, None)
        if pid == pool.writer_pid:
            pool.writer_pid = None
