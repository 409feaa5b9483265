"""Provider health shared by the workers of one host through a memory-mapped table.

Two trackers on one table stand for two worker processes (the table is a file:
each maps it, as each worker does); a fake clock drives cooldowns and circuits.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator
from pathlib import Path

import pytest

from rolecall.errors import MAX_RETRY_AFTER, ErrorKind, ProviderError
from rolecall.health.host import HealthTable, HostHealth, SlotState, slot_key


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def pair(tmp_path: Path, clock: Clock) -> Iterator[tuple[HostHealth, HostHealth]]:
    path = str(tmp_path / "health")
    first, second = HealthTable.create(path), HealthTable(path)
    prints = {"p": "abc", "q": "def"}
    kwargs = {"fingerprints": prints, "clock": clock, "failure_threshold": 2, "open_for": 10.0}
    yield HostHealth(first, **kwargs), HostHealth(second, **kwargs)  # type: ignore[arg-type]
    first.close()
    second.close()


def _error(kind: ErrorKind) -> ProviderError:
    return ProviderError(f"{kind.value} happened", kind=kind, provider="p", status=500)


def test_a_cooldown_seen_by_one_worker_is_respected_by_the_other_until_it_ends(
    pair: tuple[HostHealth, HostHealth], clock: Clock
) -> None:
    one, other = pair
    one.cool_down("p", clock.now + 5)
    assert other.state("p") == "cooling_down"
    assert not other.is_available("p")
    reason = other.reason("p")
    assert reason is not None and reason.kind is ErrorKind.RATE_LIMIT
    assert asyncio.run(other.admit("p")) is None
    assert other.is_available("q")
    clock.now += 5.1
    assert other.state("p") == "ok"


def test_a_dead_key_seen_by_one_worker_disables_the_provider_for_the_other(
    pair: tuple[HostHealth, HostHealth],
) -> None:
    one, other = pair
    one.mark_unavailable("p", ProviderError("bad key", kind=ErrorKind.AUTH, provider="p"))
    reason = other.reason("p")
    assert other.state("p") == "unavailable"
    assert reason is not None and reason.kind is ErrorKind.AUTH and reason.message == "bad key"


def test_an_open_circuit_is_shared_and_only_one_worker_probes(
    pair: tuple[HostHealth, HostHealth], clock: Clock
) -> None:
    one, other = pair
    one.record_failure("p", _error(ErrorKind.SERVER))
    assert other.state("p") == "ok"  # one failure is below the threshold
    one.record_failure("p", _error(ErrorKind.SERVER))
    assert other.state("p") == "open"
    reason = other.reason("p")
    assert reason is not None and "server happened" in reason.message
    clock.now += 10.5
    probe = asyncio.run(other.admit("p"))
    assert probe is not None
    assert asyncio.run(one.admit("p")) is None  # the other worker holds the probe
    other.record_success("p", 12.0)
    probe.release()
    assert one.state("p") == "ok"
    assert asyncio.run(one.admit("p")) is not None


def test_reset_clears_the_shared_slot(pair: tuple[HostHealth, HostHealth], clock: Clock) -> None:
    one, other = pair
    one.cool_down("p", clock.now + 5)
    one.reset()
    fresh = HostHealth(other._table, fingerprints={"p": "abc"}, clock=clock)
    assert fresh.state("p") == "ok"


def test_a_new_key_starts_with_a_clean_slot(
    pair: tuple[HostHealth, HostHealth], clock: Clock
) -> None:
    one, other = pair
    one.mark_unavailable("p", ProviderError("bad key", kind=ErrorKind.AUTH, provider="p"))
    rekeyed = HostHealth(other._table, fingerprints={"p": "new"}, clock=clock)
    assert rekeyed.state("p") == "ok"


def _corrupt(health: HostHealth, **values: float) -> None:
    """Write ``values`` into provider p's slot, as a broken (or hostile) worker would."""
    table = health._table
    key = slot_key("p", "abc")
    with table.locked():
        index = table.find(key, create=True)
        assert index is not None
        table.write(index, key, SlotState(**values))  # type: ignore[arg-type]


def test_an_endless_cooldown_in_the_table_lasts_no_longer_than_any_vendor_reset(
    pair: tuple[HostHealth, HostHealth], clock: Clock
) -> None:
    one, other = pair
    _corrupt(one, cool_until=math.inf)
    assert other.state("p") == "cooling_down"
    assert other.cooldown_remaining("p") <= MAX_RETRY_AFTER
    clock.now += MAX_RETRY_AFTER + 1
    assert other.state("p") == "ok"


def test_a_circuit_opened_in_the_future_is_probed_after_one_open_period(
    pair: tuple[HostHealth, HostHealth], clock: Clock
) -> None:
    one, other = pair
    _corrupt(one, opened_at=1e12, failures=3)
    assert other.state("p") == "open"
    clock.now += 10.5
    probe = asyncio.run(other.admit("p"))
    assert probe is not None
    probe.release()


def test_a_probe_claimed_for_ever_does_not_block_the_provider(
    pair: tuple[HostHealth, HostHealth], clock: Clock
) -> None:
    one, other = pair
    _corrupt(one, opened_at=clock.now - 20, failures=3, probe_until=1e12)
    assert other.state("p") == "half_open"
    probe = asyncio.run(other.admit("p"))
    assert probe is not None
    probe.release()


@pytest.mark.parametrize("text", ["Schlüssel ungültig ", "鍵が無効です", "🔑 rejected "])
def test_a_long_non_ascii_message_keeps_its_kind_for_the_other_worker(
    pair: tuple[HostHealth, HostHealth], clock: Clock, text: str
) -> None:
    one, other = pair
    message = text * 40  # far past the slot: JSON writes each such character as \\uXXXX
    one.mark_unavailable("p", ProviderError(message, kind=ErrorKind.AUTH, provider="p"))
    one.record_failure("q", ProviderError(message, kind=ErrorKind.TIMEOUT, provider="q"))
    one.record_failure("q", ProviderError(message, kind=ErrorKind.TIMEOUT, provider="q"))

    reason = other.reason("p")
    assert reason is not None and reason.kind is ErrorKind.AUTH
    assert reason.message and message.startswith(reason.message)
    assert other.state("q") == "open"
    failure = other.reason("q")
    assert failure is not None and failure.kind is ErrorKind.TIMEOUT
