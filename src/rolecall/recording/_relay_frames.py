"""The frames a ``serve --workers`` worker sends the run writer, and the writer's counts back.

A frame is a 4-byte big-endian length (its top bit set on a frame sent again) and a
pickle of ``(code, values)`` pairs: an event's field values as a tuple (read with
``attrgetter``; pickling the frozen dataclasses themselves costs several times more),
rebuilt in the writer. A frame of no items asks the writer to write what it holds now;
the writer answers with 8-byte counts of the worker's items it has written, in all.
"""

from __future__ import annotations

import pickle
import struct
from collections.abc import Callable
from dataclasses import fields
from operator import attrgetter
from typing import Any

from rolecall.events import AttemptEvent, AttemptStart, Event, TaskEvent, TaskOutcome
from rolecall.recording.records import RecordItem, RunEnd, RunStart

__all__ = ["ACK", "FLUSH", "HEADER", "RESENT", "decode_frame", "encode_frame"]

HEADER = struct.Struct("!I")
RESENT = 1 << 31  # in a frame's length: items the worker sends again (see RecordRelay)
ACK = struct.Struct("!Q")  # writer to worker: how many of its items are written, in all
FLUSH = HEADER.pack(0)  # worker to writer, a frame of no items: write what you hold now


def _names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))


def _compiled(source: str, cls: type) -> Callable[..., Any]:
    namespace: dict[str, Any] = {"cls": cls, "new": object.__new__}
    exec(source, namespace)  # the source names only the dataclass's own fields
    function: Callable[..., Any] = namespace["function"]
    return function


def _values_reader(cls: type) -> Callable[[Any], tuple[Any, ...]]:
    """An item's field values as a tuple, read in compiled code: slot reads the
    interpreter specializes, where ``attrgetter`` looks each name up generically."""
    reads = ", ".join(f"item.{name}" for name in _names(cls))
    return _compiled(f"def function(item):\n    return ({reads},)\n", cls)


def _event_builder(cls: type[Event]) -> Callable[[tuple[Any, ...]], Event]:
    """Rebuilds a slotted event from its field values without ``__init__``'s cost: the
    tuple unpacked into its slots in compiled code, about a tenth of the cost of a
    descriptor's ``__set__`` called per field."""
    stores = ", ".join(f"event.{name}" for name in _names(cls))
    source = (
        f"def function(values):\n    event = new(cls)\n    {stores}, = values\n    return event\n"
    )
    return _compiled(source, cls)


_CODES: dict[type, tuple[int, Callable[[Any], tuple[Any, ...]]]] = {
    AttemptEvent: (0, _values_reader(AttemptEvent)),
    TaskEvent: (1, _values_reader(TaskEvent)),
    RunStart: (2, attrgetter(*_names(RunStart))),
    RunEnd: (3, attrgetter(*_names(RunEnd))),
    TaskOutcome: (4, attrgetter(*_names(TaskOutcome))),
    AttemptStart: (5, attrgetter(*_names(AttemptStart))),
}
_BUILDERS: dict[int, Callable[[tuple[Any, ...]], RecordItem]] = {
    0: _event_builder(AttemptEvent),
    1: _event_builder(TaskEvent),
    2: lambda values: RunStart(*values),
    3: lambda values: RunEnd(*values),
    4: lambda values: TaskOutcome(**dict(zip(_names(TaskOutcome), values, strict=True))),
    5: lambda values: AttemptStart(**dict(zip(_names(AttemptStart), values, strict=True))),
}


def encode_frame(items: list[RecordItem], *, resent: bool = False) -> bytes:
    """One frame: length, then the pickled (code, values) pairs of ``items``; ``resent``
    marks items sent again, which a killed writer may have written already."""
    codes = _CODES
    pairs = []
    for item in items:
        code, values = codes[type(item)]
        pairs.append((code, values(item)))
    payload = pickle.dumps(pairs, protocol=pickle.HIGHEST_PROTOCOL)
    return HEADER.pack(len(payload) | (RESENT if resent else 0)) + payload


def decode_frame(payload: bytes) -> list[RecordItem]:
    """The items of one frame's payload (without its length)."""
    builders = _BUILDERS
    return [builders[code](values) for code, values in pickle.loads(payload)]
