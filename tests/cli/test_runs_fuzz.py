"""Whatever a run log's lines hold, ``runs list`` and ``runs show`` show the run, exit 0.

A run log is a file anyone can edit, copy half of, or write with another tool: a
line the reader cannot use is skipped (and counted in a note), never a traceback.
The lines of a real run are mutated (fields dropped, duplicated, given values of
another type, lines inserted or the file cut short) and read by the commands.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import run_cli, strict_json
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzz_helpers import places

FUZZ = settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
RUN_ID = "20260101-120000-abc123"
T0 = 1_767_225_600.0
_TASK = {"run_id": RUN_ID, "role": "coder", "status": "ok", "provider": "claude", "model": "c"}
_ATTEMPT = {"run_id": RUN_ID, "task_id": "gen", "role": "coder", "model": "g", "cost_usd": None}
_COUNTS = {"input_tokens": 10, "output_tokens": 5, "cached_input_tokens": 0}
LINES: list[dict[str, Any]] = [
    {"type": "run_start", "run_id": RUN_ID, "kind": "workflow", "meta": {"spec": "s.md"}}
    | {"ts": T0, "writer": {"host": "elsewhere", "pid": 1, "lock": "/nonexistent.lock"}},
    _TASK
    | _COUNTS
    | {"task_id": "plan", "attempts": 1, "handovers": 0, "latency_ms": 800.0, "cost_usd": 0.002}
    | {"error": None, "stage": "plan", "finish_reason": "stop", "ts": T0 + 1, "type": "task"}
    | {"dialect": None, "attempt_latency_ms": 800.0, "attempt_ts": T0 + 0.9},
    _ATTEMPT
    | _COUNTS
    | {"provider": "gpt", "attempt": 1, "outcome": "handover", "error_kind": "quota"}
    | {"latency_ms": 40.0, "error": "429", "ts": T0 + 2, "type": "attempt"},
    _ATTEMPT
    | _COUNTS
    | {"provider": "claude", "attempt": 1, "outcome": "ok", "error_kind": None}
    | {"latency_ms": 900.0, "error": None, "ts": T0 + 3, "type": "attempt"},
    _TASK
    | _COUNTS
    | {"task_id": "gen", "attempts": 2, "handovers": 1, "latency_ms": 940.0, "cost_usd": None}
    | {"error": None, "stage": "generate", "finish_reason": None, "ts": T0 + 3.1, "type": "task"},
    {"type": "run_end", "run_id": RUN_ID, "status": "ok", "ts": T0 + 4},
]
COMMANDS = [
    ["runs", "list"],
    ["runs", "list", "--json"],
    ["runs", "show", "20260101"],
    ["runs", "show", "20260101", "--json"],
]

_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.text(max_size=8),
    st.sampled_from(["ok", "failed", "attempt", "task", "run_start", "run_end", RUN_ID, "\x1b[2J"]),
)
_KEYS = st.sampled_from(sorted({key for line in LINES for key in line}))
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_KEYS, inner, max_size=3),
    max_leaves=8,
)


def _log(project: Path) -> Path:
    path = project / ".rolecall" / "runs" / f"{RUN_ID}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _show_every_way(capsys: pytest.CaptureFixture[str]) -> None:
    for command in COMMANDS:
        code, out, err = run_cli(capsys, *command)
        assert code == 0, (command, err)
        assert "Traceback" not in err and "internal error" not in err, err
        if "--json" in command:
            strict_json(out)


@FUZZ
@given(data=st.data())
def test_mutated_run_logs(
    project: Path, capsys: pytest.CaptureFixture[str], data: st.DataObject
) -> None:
    lines = copy.deepcopy(LINES)
    for _ in range(data.draw(st.integers(min_value=1, max_value=4))):
        container, key = data.draw(st.sampled_from(places(lines)))
        action = data.draw(st.sampled_from(["delete", "replace", "insert", "copy"]))
        if action == "delete" and container is not lines:
            del container[key]
        elif action == "replace":
            container[key] = data.draw(_VALUES)
        elif action == "copy" and container is lines:
            container.insert(key, copy.deepcopy(container[key]))
        elif isinstance(container, dict):
            container[data.draw(_KEYS)] = data.draw(_VALUES)
        else:
            container.insert(key, data.draw(_VALUES))
    text = "".join(json.dumps(line) + "\n" for line in lines)
    cut = data.draw(st.none() | st.integers(min_value=0, max_value=len(text)))
    _log(project).write_text(text[:cut], encoding="utf-8", errors="surrogatepass")
    _show_every_way(capsys)


@pytest.mark.parametrize("value", [["generate"], {"name": "generate"}, 5])
def test_a_task_line_whose_stage_is_not_text_is_skipped(
    project: Path, capsys: pytest.CaptureFixture[str], value: object
) -> None:
    lines = copy.deepcopy(LINES)
    lines[1]["stage"] = value
    _log(project).write_text("".join(json.dumps(line) + "\n" for line in lines))
    _show_every_way(capsys)
    code, out, err = run_cli(capsys, "runs", "show", "20260101")
    assert code == 0 and "gen" in out
    assert "skipped 1 unreadable line" in err
