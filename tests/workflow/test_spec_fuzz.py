"""Whatever a spec file holds, reading it gives a spec or a one-line SpecError."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rolecall.workflow.errors import SpecError
from rolecall.workflow.spec import load_spec

FUZZ = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.text(max_size=10),
    st.dates(),
)
_KEYS = st.one_of(
    st.sampled_from(["description", "requirements", "verify", "checks", "name", "title"]),
    st.text(max_size=5),
    st.integers(),
    st.booleans(),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_KEYS, inner, max_size=4),
    max_leaves=20,
)
# Characters that matter to YAML and JSON, a BOM, a NUL and a lone surrogate.
_TEXT = st.text(
    alphabet=st.sampled_from([*":-[]{},#&*!|>'\"%@`?$ \n\t\\", *"adeiprtvy01.", "\ufeff", "\x00"]),
    max_size=150,
)


def _check(path: Path) -> None:
    try:
        spec = load_spec(path)
    except SpecError as exc:
        message = str(exc)
        assert message.strip() and "\n" not in message.strip(), message
    else:
        assert spec.text.strip()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("spec-fuzz")


@FUZZ
@given(
    document=st.dictionaries(_KEYS, _VALUES, max_size=5) | _VALUES,
    suffix=st.sampled_from([".yaml", ".json"]),
)
def test_random_documents(workdir: Path, document: Any, suffix: str) -> None:
    path = workdir / f"spec{suffix}"
    if suffix == ".json":
        text = json.dumps(document, default=str)
    else:
        text = yaml.dump(document, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper))
    path.write_text(text, encoding="utf-8")
    _check(path)


@FUZZ
@given(
    text=_TEXT,
    suffix=st.sampled_from([".yaml", ".json", ".md"]),
    encoding=st.sampled_from(["utf-8", "utf-16", "utf-8-sig"]),
)
def test_random_text(workdir: Path, text: str, suffix: str, encoding: str) -> None:
    path = workdir / f"text{suffix}"
    path.write_bytes(text.encode(encoding))
    _check(path)


@FUZZ
@given(data=st.binary(max_size=80), suffix=st.sampled_from([".yaml", ".json", ".md"]))
def test_random_bytes(workdir: Path, data: bytes, suffix: str) -> None:
    path = workdir / f"bytes{suffix}"
    path.write_bytes(data)
    _check(path)


def test_empty_items_in_a_list_are_left_out(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(
        "description: Track stock.\nscenarios:\n  - {}\n  - []\n  - name: add item\n",
        encoding="utf-8",
    )
    spec = load_spec(path)
    assert "## Scenarios\n\n- Name: add item\n" in spec.text
