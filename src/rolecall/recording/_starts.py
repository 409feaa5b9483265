"""The calls a recorder saw begin and not yet end: which starts a batch writes, and which
of those written before its ends close.

A start and its end in one batch cancel out (nearly every call lasts less than a flush
interval): nothing of the start is written. A start whose end is not in its batch is
written (the run log's ``attempt_start`` line, a row of the store's ``attempt_starts``)
and kept here by its key until its end comes; the batch holding that end removes the
row. A process killed mid-call so leaves the call's start in the records, unless the
kill came before the flush that would have written it (at most one flush interval).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from rolecall.events import AttemptEvent, AttemptStart
from rolecall.recording.runlog import attempt_start_record
from rolecall.recording.store.starts import CallsInFlight, StartKey, start_key

__all__ = ["OpenStarts"]


class OpenStarts:
    """The keys of the starts written and not yet ended, with how many of each."""

    def __init__(self) -> None:
        self._written: Counter[StartKey] = Counter()

    def __bool__(self) -> bool:
        return bool(self._written)

    def pair(self, batch: Sequence[object]) -> tuple[list[AttemptStart], list[StartKey]]:
        """Of the batch's calls, in their order: the starts to write (no end in the batch)
        and the keys of the written starts the batch's ends close."""
        waiting: dict[StartKey, list[AttemptStart]] = {}
        ended: list[StartKey] = []
        written = self._written
        for item in batch:
            if isinstance(item, AttemptStart):
                waiting.setdefault(start_key(item), []).append(item)
            elif isinstance(item, AttemptEvent):
                key = start_key(item)
                begun = waiting.get(key)
                if begun:
                    begun.pop(0)
                elif written.get(key):
                    written[key] -= 1
                    if not written[key]:
                        del written[key]
                    ended.append(key)
        kept = {id(start) for group in waiting.values() for start in group}
        unended = [item for item in batch if isinstance(item, AttemptStart) and id(item) in kept]
        written.update(map(start_key, unended))
        return unended, ended

    def in_flight(
        self,
        batch: Sequence[object],
        records: list[Any],
        placed: Sequence[tuple[int, AttemptStart]],
        writer: Mapping[str, Any] | None,
    ) -> CallsInFlight:
        """What ``batch`` changes of the calls in flight, for the store; the lines of the
        starts it writes go into ``records`` (the run log's) where ``placed`` says they
        came, each with how long its call has run by now."""
        unended, ended = self.pair(batch)
        now = time.time()
        latency = {id(start): max(0.0, (now - start.ts) * 1000.0) for start in unended}
        for index, start in reversed(placed):
            if id(start) in latency:
                records.insert(index, attempt_start_record(start, latency[id(start)]))
        begun = [(start, latency[id(start)]) for start in unended]
        return CallsInFlight(begun, ended, writer)
