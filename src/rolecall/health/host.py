"""Provider health shared by the worker processes of one host, without Redis.

``rolecall serve --workers N`` runs N processes; a 429, an open circuit or a dead
key seen by one of them must be respected by all of them at once. The parent
creates a small file of fixed-size slots (:class:`HealthTable`), every worker
maps it into memory (``mmap``, shared pages: a write is visible to every other
worker at the next lookup, no polling, no server) and :class:`HostHealth` keeps
each worker's in-memory :class:`~rolecall.health.memory.ProviderHealth` and the
table in step:

- what a worker learns (unavailable, cooldown end, circuit opened or closed) is
  written to the provider's slot;
- every lookup the router makes (``is_available``, ``state``, ``reason``,
  ``admit``) first adopts the slot, which only ever adds restrictions;
- a half-open circuit lets exactly one probe through across all workers (a
  claim in the slot, held for at most ``open_for`` seconds).

Times are ``time.monotonic()`` values: on Linux and macOS that clock is the
same for every process of a host. Each access holds a POSIX record lock
(``lockf``) on the file; the kernel drops it when a process dies, so a worker
killed mid-write never blocks the others (the next writer rewrites the slot).
Slots are keyed by a hash of the provider id and its fingerprint (type, model,
key, endpoint), so a config with a new key starts clean and no secret is stored.

The same file holds, after the health slots, each provider's calls in flight per
worker, so ``max_concurrency`` holds for the host (:mod:`rolecall.health.host_limit`).
"""

from __future__ import annotations

import fcntl
import hashlib
import math
import mmap
import os
import struct
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from rolecall.errors import MAX_RETRY_AFTER, ProviderError
from rolecall.health._shared_errors import error_from_json, error_to_json
from rolecall.health.host_limit import MAX_WORKERS, REGION_BYTES, LimitSlots
from rolecall.health.memory import Admission, HealthState, ProviderHealth, SharedProbe

__all__ = [
    "HealthTable",
    "HostHealth",
    "SlotState",
    "host_table",
    "host_worker",
    "share_on_host",
    "slot_key",
]

SLOTS = 256
SLOT_BYTES = 512
# key, cool_until, opened_at (NaN: closed), probe_until, consecutive failures,
# then the lengths of the unavailable error and of the circuit's last failure (JSON).
_HEAD = struct.Struct("<16sdddiHH")
_BLOB = (SLOT_BYTES - _HEAD.size) // 2
_EMPTY_KEY = bytes(16)
_HEALTH_BYTES = SLOTS * SLOT_BYTES

_table: HealthTable | None = None
_worker: int | None = None


def share_on_host(table: HealthTable | None, *, worker: int | None = None) -> None:
    """Make every tracker built from now on in this process share health through ``table``;
    with ``worker`` (this process's index among the workers), concurrency limits too."""
    global _table, _worker
    if worker is not None and not 0 <= worker < MAX_WORKERS:
        raise ValueError(f"worker index {worker} is not below {MAX_WORKERS}")
    _table, _worker = table, worker


def host_table() -> HealthTable | None:
    """The table set by :func:`share_on_host` (in a worker of ``rolecall serve --workers``)."""
    return _table


def host_worker() -> int | None:
    """This worker's index set by :func:`share_on_host` (None outside a worker)."""
    return _worker


def slot_key(provider_id: str, fingerprint: str) -> bytes:
    """The key of a provider's slots: its id and fingerprint hashed (no secret is stored)."""
    return hashlib.sha256(f"{provider_id}\0{fingerprint}".encode()).digest()[:16]


@dataclass(slots=True)
class SlotState:
    """One provider's shared health, as read from or written to its slot."""

    cool_until: float = 0.0
    opened_at: float | None = None
    probe_until: float = 0.0
    failures: int = 0
    unavailable: str = ""  # JSON of the error that disabled the provider; "" when usable
    circuit: str = ""  # JSON of the failure that opened the circuit


class HealthTable:
    """A file of provider slots mapped into memory; create it once, open it in every worker."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd = os.open(path, os.O_RDWR)
        self._map = mmap.mmap(self._fd, _HEALTH_BYTES + REGION_BYTES)
        self.limits = LimitSlots(self._fd, self._map, _HEALTH_BYTES)

    @classmethod
    def create(cls, path: str) -> HealthTable:
        """A new, empty table at ``path`` (readable by this user only)."""
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.ftruncate(fd, _HEALTH_BYTES + REGION_BYTES)
        finally:
            os.close(fd)
        return cls(path)

    def close(self) -> None:
        self.limits.close()
        self._map.close()
        os.close(self._fd)

    @contextmanager
    def locked(self) -> Iterator[None]:
        """The health slots locked (the limit region has a lock of its own)."""
        fcntl.lockf(self._fd, fcntl.LOCK_EX, _HEALTH_BYTES)
        try:
            yield
        finally:
            fcntl.lockf(self._fd, fcntl.LOCK_UN, _HEALTH_BYTES)

    # ---- slots (call these while holding locked()) -----------------------------------------

    def find(self, key: bytes, *, create: bool = False) -> int | None:
        """The slot index holding ``key``; with ``create``, a free one claimed for it."""
        free: int | None = None
        view = self._map
        for index in range(SLOTS):
            offset = index * SLOT_BYTES
            stored = view[offset : offset + 16]
            if stored == key:
                return index
            if stored == _EMPTY_KEY and free is None:
                free = index
        if not create or free is None:
            return None  # a full table: this provider's health stays local to the process
        self.write(free, key, SlotState())
        return free

    def read(self, index: int) -> SlotState:
        offset = index * SLOT_BYTES
        _, cool, opened, probe, failures, n_unavailable, n_circuit = _HEAD.unpack_from(
            self._map, offset
        )
        blobs = offset + _HEAD.size
        unavailable = bytes(self._map[blobs : blobs + n_unavailable]).decode(errors="replace")
        circuit = bytes(self._map[blobs + _BLOB : blobs + _BLOB + n_circuit])
        return SlotState(
            cool, None if math.isnan(opened) else opened, probe, failures, unavailable,
            circuit.decode(errors="replace"),
        )  # fmt: skip

    def write(self, index: int, key: bytes, state: SlotState) -> None:
        unavailable = state.unavailable.encode()[:_BLOB]
        circuit = state.circuit.encode()[:_BLOB]
        offset = index * SLOT_BYTES
        opened = math.nan if state.opened_at is None else state.opened_at
        _HEAD.pack_into(
            self._map, offset, key, state.cool_until, opened, state.probe_until,
            state.failures, len(unavailable), len(circuit),
        )  # fmt: skip
        blobs = offset + _HEAD.size
        self._map[blobs : blobs + len(unavailable)] = unavailable
        self._map[blobs + _BLOB : blobs + _BLOB + len(circuit)] = circuit

    def clear(self, index: int) -> None:
        offset = index * SLOT_BYTES
        self._map[offset : offset + SLOT_BYTES] = bytes(SLOT_BYTES)


# Messages are cut to fit the table's fixed-size slots.
_MAX_MESSAGE = 160


def _error_json(error: ProviderError) -> str:
    """``error`` as JSON that fits a slot's field whole, its message cut as far as needed:
    JSON escapes each non-ASCII character in up to 12 bytes, and JSON cut at the field's
    end reads as no error at all (its kind lost)."""
    limit = _MAX_MESSAGE
    text = error_to_json(error, max_message=limit)
    while len(text) > _BLOB and limit > 0:
        limit = min(limit - 1, limit * _BLOB // len(text))
        text = error_to_json(error, max_message=limit)
    return text


class HostHealth(ProviderHealth):
    """A :class:`ProviderHealth` whose restrictions every worker of the host shares."""

    def __init__(
        self,
        table: HealthTable,
        *,
        fingerprints: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
        failure_threshold: int = 5,
        open_for: float = 30.0,
        latency_alpha: float = 0.3,
    ) -> None:
        super().__init__(
            clock=clock,
            failure_threshold=failure_threshold,
            open_for=open_for,
            latency_alpha=latency_alpha,
        )
        self._table = table
        self._fingerprints = dict(fingerprints or {})
        self._slot_keys: dict[str, bytes] = {}
        self._slots: dict[str, int] = {}

    def _key(self, provider_id: str) -> bytes:
        key = self._slot_keys.get(provider_id)
        if key is None:
            fingerprint = self._fingerprints.get(provider_id, "-")
            key = self._slot_keys[provider_id] = slot_key(provider_id, fingerprint)
        return key

    def _slot(self, provider_id: str, *, create: bool) -> int | None:
        """The provider's slot (cached: a slot stays with its key until reset)."""
        index = self._slots.get(provider_id)
        if index is None:
            index = self._table.find(self._key(provider_id), create=create)
            if index is not None:
                self._slots[provider_id] = index
        return index

    # ---- adopt what other workers learnt ---------------------------------------------------

    def _sync(self, provider_id: str) -> None:
        with self._table.locked():
            index = self._slot(provider_id, create=False)
            if index is None:
                return
            shared = self._table.read(index)
            if _repair(shared, self._clock(), self.open_for):
                self._table.write(index, self._key(provider_id), shared)
        self._adopt(provider_id, shared)

    def _adopt(self, provider_id: str, shared: SlotState) -> None:
        """Take on the slot: restrictions add up; a circuit closed by any worker is closed."""
        entry = self._entry(provider_id)
        if shared.opened_at is None and entry.opened_at is not None:
            # Every local opening is written at once, so the slot is newer: another
            # worker's probe (or answer) closed the circuit.
            entry.opened_at = None
            entry.consecutive_failures = 0
        if shared.unavailable and entry.unavailable is None:
            entry.unavailable = error_from_json(shared.unavailable, provider_id, origin="worker")
            entry.proven = True
        if shared.cool_until > entry.cool_until:
            entry.cool_until = shared.cool_until
            entry.proven = True
        opened = shared.opened_at
        if opened is not None and (entry.opened_at is None or opened > entry.opened_at):
            entry.opened_at = opened
            entry.proven = True
            entry.consecutive_failures = max(entry.consecutive_failures, shared.failures)
            if shared.circuit:
                entry.last_failure = error_from_json(shared.circuit, provider_id, origin="worker")

    def is_available(self, provider_id: str) -> bool:
        self._sync(provider_id)
        return super().is_available(provider_id)

    def state(self, provider_id: str) -> HealthState:
        self._sync(provider_id)
        return super().state(provider_id)

    def reason(self, provider_id: str) -> ProviderError | None:
        self._sync(provider_id)
        return super().reason(provider_id)

    def cooldown_remaining(self, provider_id: str) -> float:
        self._sync(provider_id)
        return super().cooldown_remaining(provider_id)

    async def admit(self, provider_id: str) -> Admission | None:
        self._sync(provider_id)
        entry = self._entry(provider_id)
        if self._state(entry, self._clock()) == "half_open" and not entry.probing:
            if not self._claim_probe(provider_id):
                return None  # another worker is probing
            admission = await super().admit(provider_id)
            if admission is None:
                self._release_probe(provider_id)
                return None
            return SharedProbe(admission, lambda: self._release_probe(provider_id))
        return await super().admit(provider_id)

    def _claim_probe(self, provider_id: str) -> bool:
        now = self._clock()
        with self._table.locked():
            index = self._slot(provider_id, create=True)
            if index is None:
                return True
            shared = self._table.read(index)
            if shared.probe_until > now:
                return False
            shared.probe_until = now + self.open_for
            self._table.write(index, self._key(provider_id), shared)
        return True

    def _release_probe(self, provider_id: str) -> None:
        self._update(provider_id, lambda shared: setattr(shared, "probe_until", 0.0))

    # ---- mirror what this worker learnt ----------------------------------------------------

    def _update(self, provider_id: str, change: Callable[[SlotState], None]) -> None:
        with self._table.locked():
            index = self._slot(provider_id, create=True)
            if index is None:
                return
            shared = self._table.read(index)
            change(shared)
            self._table.write(index, self._key(provider_id), shared)

    def mark_unavailable(self, provider_id: str, error: ProviderError) -> None:
        super().mark_unavailable(provider_id, error)

        def change(shared: SlotState) -> None:
            if not shared.unavailable:
                shared.unavailable = _error_json(error)

        self._update(provider_id, change)

    def cool_down(self, provider_id: str, until: float) -> None:
        super().cool_down(provider_id, until)

        def change(shared: SlotState) -> None:
            shared.cool_until = max(shared.cool_until, until)

        self._update(provider_id, change)

    def record_failure(self, provider_id: str, error: ProviderError) -> None:
        entry = self._entry(provider_id)
        before = entry.opened_at
        super().record_failure(provider_id, error)
        opened, failures = entry.opened_at, entry.consecutive_failures
        if opened is not None and opened != before:

            def open_circuit(shared: SlotState) -> None:
                shared.opened_at = opened
                shared.failures = failures
                shared.circuit = _error_json(error)
                shared.probe_until = 0.0

            self._update(provider_id, open_circuit)
        elif before is not None and opened is None:
            self._update(provider_id, _close_circuit)

    def record_success(self, provider_id: str, latency_ms: float) -> None:
        entry = self._entries.get(provider_id)
        was_open = entry is not None and entry.opened_at is not None
        super().record_success(provider_id, latency_ms)
        if was_open:
            self._update(provider_id, _close_circuit)

    def reset(self) -> None:
        """Forget everything, here and in the table (after a config reload)."""
        provider_ids = [*self._fingerprints, *self._entries]
        super().reset()
        with self._table.locked():
            for provider_id in dict.fromkeys(provider_ids):
                index = self._slot(provider_id, create=False)
                if index is not None:
                    self._table.clear(index)
        self._slots.clear()

    def snapshot(self) -> dict[str, dict[str, Any]]:
        for provider_id in [*self._fingerprints]:
            self._sync(provider_id)
        return super().snapshot()


def _repair(shared: SlotState, now: float, open_for: float) -> bool:
    """Cut times no worker writes (past a vendor's longest reset, a circuit opened in the
    future, a probe held past one open period) to what one could have; True if any was.
    A corrupt slot then cannot keep a provider away for ever."""
    changed = False
    if shared.cool_until > now + MAX_RETRY_AFTER:
        shared.cool_until, changed = now + MAX_RETRY_AFTER, True
    if shared.opened_at is not None and shared.opened_at > now:
        shared.opened_at, changed = now, True
    if shared.probe_until > now + open_for:
        shared.probe_until, changed = 0.0, True
    return changed


def _close_circuit(shared: SlotState) -> None:
    shared.opened_at = None
    shared.failures = 0
    shared.circuit = ""
    shared.probe_until = 0.0
