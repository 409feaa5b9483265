"""The gateway's run: one run of kind ``gateway`` per process, rolled over to a new run
every ``max_tasks`` tasks or ``max_seconds`` so that no run log grows without bound."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from rolecall.events import new_run_id

if TYPE_CHECKING:
    from rolecall.recording.recorder import RecordQueue

RUN_MAX_TASKS = 100_000
RUN_MAX_SECONDS = 24 * 3600.0


class GatewayRun:
    """The run the gateway's tasks belong to, opened at once on ``recorder``."""

    def __init__(
        self,
        recorder: RecordQueue,
        *,
        max_tasks: int = RUN_MAX_TASKS,
        max_seconds: float = RUN_MAX_SECONDS,
    ) -> None:
        self.recorder = recorder
        self._max_tasks = max_tasks
        self._max_seconds = max_seconds
        self.run_id = self._open()
        self._tasks = 0

    def _open(self) -> str:
        run_id = new_run_id()
        self.recorder.start_run(run_id, kind="gateway")
        self._opened = time.monotonic()
        return run_id

    def task_run_id(self) -> str:
        """The run a new task belongs to; a full or day-old run is finished and a new one opened.

        Tasks still in flight in the old run finish there (their lines follow its end record).
        """
        self._tasks += 1
        if self._tasks > self._max_tasks or time.monotonic() - self._opened > self._max_seconds:
            self.recorder.finish_run(self.run_id, "ok")
            self.run_id = self._open()
            self._tasks = 1
        return self.run_id

    def close(self) -> None:
        """Finish the run and close the recorder (flushing what it holds)."""
        try:
            self.recorder.finish_run(self.run_id, "ok")
        finally:
            self.recorder.close()
