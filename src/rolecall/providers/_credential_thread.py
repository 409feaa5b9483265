"""The blocking steps of a credential source (a token refresh, an SSO or STS round trip, a
``credential_process``), run in a thread of their own, one at a time per source.

A caller bounded by its provider's timeout stops waiting, but the thread cannot be
stopped: a credential process that never exits would otherwise hold one more thread for
every call that gives up, until asyncio's default executor (a handful of threads, shared
with the gateway's config reload) has none left. Here the next caller joins the step
still running when it wants the same one, else waits for it to end before starting its
own, so a hung source holds one thread. The threads are daemons: a process told to exit
does not wait for a source that hangs.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["CredentialThread"]

_T = TypeVar("_T")


class CredentialThread:
    """Runs one credential source's blocking steps, never two at once."""

    def __init__(self, name: str) -> None:
        self._name = f"rolecall-credentials-{name}"
        self._running: concurrent.futures.Future[Any] | None = None
        self._step: tuple[Any, ...] = ()

    async def run(self, function: Callable[..., _T], *args: Any) -> _T:
        """``function(*args)`` in the source's thread; its result or its exception."""
        step = (function, *args)
        running = self._running
        if running is not None and not running.done():
            if step == self._step:
                result: _T = await _joined(running)
                return result
            with contextlib.suppress(Exception):  # another step, its caller gone: let it end
                await _joined(running)
        future: concurrent.futures.Future[_T] = concurrent.futures.Future()
        self._running, self._step = future, step
        threading.Thread(
            target=_fill, args=(future, function, args), name=self._name, daemon=True
        ).start()
        return await _joined(future)


async def _joined(future: concurrent.futures.Future[_T]) -> _T:
    # Shielded: a caller that stops waiting leaves the step to finish for the next one.
    return await asyncio.shield(asyncio.wrap_future(future))


def _fill(future: concurrent.futures.Future[_T], function: Callable[..., _T], args: Any) -> None:
    try:
        result = function(*args)
    except BaseException as exc:  # handed to the caller, as asyncio.to_thread would
        future.set_exception(exc)
    else:
        future.set_result(result)
