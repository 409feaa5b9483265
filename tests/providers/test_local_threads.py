"""The embedded model's default thread count follows the cores that are free."""

from __future__ import annotations

import os

import pytest

from rolecall.providers import _local_runtime as rt


@pytest.mark.parametrize(
    ("cores", "load", "expected"),
    [(8, 0.1, 8), (8, 2.6, 5), (2, 1.2, 1), (2, 5.0, 1), (4, -0.2, 4)],
)
def test_free_cores_at_least_one(
    monkeypatch: pytest.MonkeyPatch, cores: int, load: float, expected: int
) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(cores)))
    monkeypatch.setattr(os, "getloadavg", lambda: (load, load, load))
    assert rt.default_threads() == expected


def test_no_load_average_means_every_core(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing() -> tuple[float, float, float]:
        raise OSError("no load average here")

    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0, 1, 2})
    monkeypatch.setattr(os, "getloadavg", missing)
    assert rt.default_threads() == 3
