"""The faults a sim is scripted with: a FIFO queue for chat requests, one for the model
endpoints (the credential check's calls), and sticky faults taken in turn when the chat
queue is empty."""

from __future__ import annotations

from collections import deque
from typing import Any

from rolecall.sim.faults import Fault, parse_fault

__all__ = ["FaultScript"]

# Sticky faults that also hit the model endpoints (the credential check): a
# zero-credit or rate-limited key still lists models.
_MODEL_ENDPOINT_KINDS = frozenset(
    {"auth", "permission", "region", "server", "overloaded", "timeout", "reset"}
)


class FaultScript:
    """What the next request of each kind meets (see :class:`rolecall.sim.SimServer`)."""

    def __init__(self) -> None:
        self._chat: deque[Fault] = deque()
        self._models: deque[Fault] = deque()
        self._sticky: tuple[Fault, ...] = ()
        self._sticky_turn = 0

    def queue(self, faults: tuple[Fault | str, ...]) -> None:
        self._chat.extend(parse_fault(f) for f in faults)

    def queue_models(self, faults: tuple[Fault | str, ...]) -> None:
        self._models.extend(parse_fault(f) for f in faults)

    def stick(self, faults: tuple[Fault | str, ...]) -> None:
        self._sticky = tuple(parse_fault(f) for f in faults)
        self._sticky_turn = 0

    def clear(self) -> None:
        self._chat.clear()
        self._models.clear()
        self._sticky = ()

    @property
    def pending(self) -> int:
        return len(self._chat)

    def next_chat(self) -> Fault | None:
        """The queued fault, else the sticky one whose turn it is, else None."""
        if self._chat:
            return self._chat.popleft()
        sticky = self._sticky
        if not sticky:
            return None
        fault = sticky[self._sticky_turn % len(sticky)]
        self._sticky_turn += 1
        return fault

    def next_model(self) -> Fault | None:
        """The queued model-endpoint fault, else the first sticky one a credential check
        would meet, else None."""
        if self._models:
            return self._models.popleft()
        return next((f for f in self._sticky if f.kind in _MODEL_ENDPOINT_KINDS), None)

    def to_dict(self) -> dict[str, Any]:
        """``queued`` and ``sticky`` as ``GET /_sim/stats`` shows them."""
        return {
            "queued": [f.to_dict() for f in list(self._chat)],
            "sticky": [f.to_dict() for f in self._sticky],
        }
