"""The recorder's SIGINT/SIGTERM handlers, and a stop that comes while it closes.

The recorder installs its handler over the process's own (asyncio's, the CLI's) to write
what is queued before that one runs, and gives the old one back once it is closed. A stop
signal that arrives while ``close()`` writes the last records (a second Ctrl-C while the
store is slow) would end that write halfway: those records lost, the run left open and
shown ``abandoned``. The first such signal is held until the write is done (its wait is
bounded), with one line saying so; a further one goes through at once.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

__all__ = ["SignalHandler", "StopSignals"]

log = logging.getLogger("rolecall.recorder")

SignalHandler = Callable[[int, FrameType | None], Any] | int | None
_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopSignals:
    """The handlers the recorder replaced, and the stop signals it holds while it closes."""

    def __init__(self) -> None:
        self.previous: dict[int, SignalHandler] = {}
        self._closing_until: float | None = None
        self._held: list[int] = []

    def install(self, handler: Callable[[int, FrameType | None], None]) -> None:
        for signum in _SIGNALS:
            try:
                self.previous[signum] = signal.getsignal(signum)
                signal.signal(signum, handler)
            except (ValueError, OSError):  # not the main thread, or no such signal here
                self.previous.pop(signum, None)

    def restore(self, handler: Callable[[int, FrameType | None], None]) -> None:
        """The previous handlers back, where ``handler`` is still the one installed."""
        if threading.current_thread() is not threading.main_thread():
            return
        for signum, previous in list(self.previous.items()):
            try:
                if signal.getsignal(signum) == handler:
                    signal.signal(signum, previous)
                    del self.previous[signum]
            except (ValueError, OSError, TypeError):
                pass

    @contextlib.contextmanager
    def closing(self, wait: float) -> Iterator[float]:
        """While the recorder writes its last records, until the deadline this yields."""
        deadline = time.monotonic() + wait
        self._closing_until = deadline
        try:
            yield deadline
        finally:
            self._closing_until = None

    def hold(self, signum: int) -> bool:
        """Hold ``signum`` when it is the first to come while closing; say so."""
        if self._closing_until is None or self._held:
            return False
        self._held.append(signum)
        log.warning(
            "stopping once the last records are written (%.0f s at most); "
            "press Ctrl-C again to stop now and lose them",
            max(1.0, self._closing_until - time.monotonic()),
        )
        return True

    def deliver_held(self, *, drop: bool = False) -> None:
        """Raise the held signal again (to the handlers restored by now), or drop it."""
        held, self._held = self._held, []
        for signum in () if drop else held:
            signal.raise_signal(signum)
