"""A stand-in for Google Cloud credentials: tokens handed out in turn, expiring on a clock.

It is a real ``google.auth.credentials.Credentials`` (google-genai accepts it, and rolecall's
Vertex adapter reads it the same way it reads Application Default Credentials), but
``refresh`` asks no token server: it takes the next token of its list and sets the expiry
``lifetime`` seconds after ``clock()`` (epoch seconds; the fake clock in routing tests).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from google.auth.credentials import Credentials

__all__ = ["TOKEN", "FakeCredentials"]

TOKEN = "ya29.sim-access-token-1"


class FakeCredentials(Credentials):  # type: ignore[misc]
    """Credentials whose first ``refresh`` gives ``tokens[0]``, the next ``tokens[1]``..."""

    def __init__(
        self,
        tokens: Iterable[str] = (TOKEN,),
        *,
        lifetime: float = 3600.0,
        clock: Callable[[], float] = time.time,
        error: BaseException | None = None,
        quota_project_id: str | None = None,
    ) -> None:
        super().__init__()
        self._tokens = list(tokens)
        self.lifetime = lifetime
        self.clock = clock
        self.error = error  # raised by every refresh, as google-auth raises RefreshError
        self._quota_project_id = quota_project_id
        self.refreshes = 0
        self.refresh_threads: list[str] = []

    def refresh(self, request: Any) -> None:
        self.refreshes += 1
        self.refresh_threads.append(threading.current_thread().name)
        if self.error is not None:
            raise self.error
        self.token = self._tokens[min(self.refreshes, len(self._tokens)) - 1]
        # google-auth keeps expiry as a naive UTC datetime.
        self.expiry = datetime.fromtimestamp(self.clock() + self.lifetime, UTC).replace(tzinfo=None)
