"""rolecall._json: orjson's speed, json's results (whatever orjson would make of them)."""

from __future__ import annotations

import json
import math

import pytest

from rolecall._json import dumps, dumps_finite, loads

SAME_AS_JSON = [
    b'{"model":"coder","messages":[{"role":"user","content":"Say hello."}]}',
    b'{"seed": 123456789012345678901234567890}',  # beyond 64 bits: orjson would give a float
    b'{"seed": -9223372036854775809, "n": 9223372036854775807}',
    b'{"a": 1, "a": 2}',
    b'{"x": "\\ud800"}',  # a lone surrogate: orjson refuses it
    b'[1.5, -0, -0.0, 1e-7, 2.5e300, "\xc3\xa9"]',
]


@pytest.mark.parametrize("document", SAME_AS_JSON)
def test_loads_reads_what_json_reads(document: bytes) -> None:
    got, expected = loads(document), json.loads(document)
    assert got == expected
    assert repr(got) == repr(expected)  # int stays int, float stays float


def test_loads_reads_nan_as_json_does() -> None:
    assert math.isnan(loads(b'{"t": NaN}')["t"])


@pytest.mark.parametrize("document", [b'{"a": 1,}', b"", b"{", b'{"a" 1}'])
def test_loads_raises_json_s_own_error(document: bytes) -> None:
    with pytest.raises(json.JSONDecodeError) as expected:
        json.loads(document)
    with pytest.raises(ValueError) as got:
        loads(document)
    assert str(got.value) == str(expected.value)


@pytest.mark.parametrize(
    "value",
    [
        {"id": "chatcmpl-1", "choices": [{"message": {"content": "héllo", "refusal": None}}]},
        {1: "non-string key"},
        {"seed": 2**70},
        ["plain", True, False, None, 3, 1.5],
    ],
)
def test_dumps_writes_what_json_writes(value: object) -> None:
    expected = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
    assert dumps(value) == expected


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_dumps_finite_refuses_what_json_refuses(bad: float) -> None:
    with pytest.raises(ValueError, match="not JSON compliant"):
        dumps_finite({"model": "m", "temperature": bad})


@pytest.mark.parametrize(
    "value",
    [
        {"model": "m", "messages": [{"role": "user", "content": "é null"}], "n": None},
        {"model": "m", "temperature": 0.7, "seed": 2**70, "stop": ["\\n"]},
    ],
)
def test_dumps_finite_writes_what_json_writes(value: object) -> None:
    expected = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    assert dumps_finite(value) == expected.encode()
