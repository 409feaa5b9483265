"""The thread a loaded local model runs its requests on, one at a time in arrival order.

A daemon thread, unlike a ``ThreadPoolExecutor``'s: the interpreter joins those at exit,
and a runtime reading a long prompt cannot be stopped until it has read it all, so a
``rolecall ask`` interrupted with Ctrl-C (or ended by a timeout) stayed alive, a core
busy, for as long as that took, minutes on a slow CPU. Left behind, the thread ends
with the process.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

__all__ = ["Worker"]

log = logging.getLogger("rolecall.providers.local")


class Worker:
    """Runs the jobs given to :meth:`submit` on one daemon thread, in order."""

    def __init__(self, name: str = "rolecall-local") -> None:
        self._jobs: queue.SimpleQueue[Callable[[], object]] = queue.SimpleQueue()
        self._busy = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def busy(self) -> bool:
        """A job is running now (the runtime is in use)."""
        return self._busy.is_set()

    def submit(self, job: Callable[[], object]) -> None:
        self._jobs.put(job)

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            self._busy.set()
            try:
                job()
            except BaseException:  # pyo3's PanicException too: the thread must outlive it
                log.exception("local model: a request failed outside its own error handling")
            finally:
                self._busy.clear()
