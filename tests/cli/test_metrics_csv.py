"""``rolecall metrics --format csv``: valid CSV, safe to open in a spreadsheet."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from cli_helpers import run_cli, store_events

from factories import attempt_event


def test_names_that_would_start_a_formula_are_text_in_csv(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Roles come from callers and models from vendors' answers: any text can be recorded.
    store_events(
        attempt_event(role='=HYPERLINK("http://evil.example","x")', model="@SUM(A1:A9)"),
        attempt_event(role="+cmd|' /C calc'!A0", model="-2+3", task_id="t2"),
        attempt_event(role="coder", model='a,b "c"\nd', task_id="t3"),
    )
    code, out, err = run_cli(capsys, "metrics", "--by", "role,model", "--format", "csv")
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    cells = {(row["role"], row["model"]) for row in rows}
    assert cells == {
        ('\'=HYPERLINK("http://evil.example","x")', "'@SUM(A1:A9)"),
        ("'+cmd|' /C calc'!A0", "'-2+3"),
        ("coder", 'a,b "c"\nd'),
    }
    assert all(row["requests"] == "1" for row in rows)
