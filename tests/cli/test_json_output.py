"""`--json` output: the same document whichever encoder writes it.

Large outputs (a month of hourly trend rows) go through orjson, which writes indented JSON
some 30 times faster than json; what orjson cannot write goes through json. A reader must
never tell which one wrote it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
from typing import Any

import pytest

from rolecall.cli._common import _finite, _indented


@dataclasses.dataclass
class _Shown:
    name: str


def _reference(data: Any) -> str:
    return json.dumps(_finite(data), indent=2, default=str, ensure_ascii=False)


ROWS: list[Any] = [
    {
        "provider": "gpt",
        "role": "coder",
        "requests": 12,
        "success_rate": 0.9166666666666666,
        "latency_ms": {"avg": 812.5, "p50": math.nan, "p95": math.inf},
        "errors": {},
        "models": [],
        "note": "naïve \u2013 東京 \u2028 \x1b[31m",
        "cost_usd": None,
        "ok": True,
    },
    [1, -2, 3.25, [], {}, [[]]],
    {"when": dt.datetime(2026, 12, 8, 1, 2, 3, tzinfo=dt.UTC), "what": _Shown("x")},
]


@pytest.mark.parametrize("data", ROWS, ids=["row", "nested", "unjsonable"])
def test_the_output_is_json_s_own_text(data: Any) -> None:
    assert _indented(data) == _reference(data)


@pytest.mark.parametrize(
    "data",
    [{1: "a non-string key"}, {"big": 2**70}, {"half": "\ud800"}],
    ids=["int-key", "big-int", "lone-surrogate"],
)
def test_what_orjson_refuses_is_written_by_json(data: Any) -> None:
    assert _indented(data) == _reference(data)


def test_a_small_float_is_the_same_number() -> None:
    # orjson writes 1e-5 where json writes 1e-05: the same number to every reader.
    assert json.loads(_indented({"rate": 1e-5})) == {"rate": 1e-5}
