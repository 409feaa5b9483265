"""Whatever the file holds, ``config validate`` answers with exit 0 or 2, never a traceback."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzz_helpers import places
from rolecall import _secrets
from rolecall.cli import cli

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
ENV = {
    "OPENAI_API_KEY": "sk-test-fuzz-0000000000",
    "ANTHROPIC_API_KEY": "sk-ant-fuzz-0000000000",
    "GEMINI_API_KEY": "fuzz-gemini-0000000000",
    "GOOGLE_API_KEY": "fuzz-google-0000000000",
}
FUZZ = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Characters that matter to YAML, plus enough letters to form keys.
_YAMLISH = st.text(
    alphabet=st.sampled_from(list(":-[]{},#&*!|>'\"%@`?$ \n\t\\") + list("abcpry01.")),
    max_size=120,
)
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**6), max_value=10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
)
_JSON = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
_DURATIONS = st.from_regex(r"-?\d{1,4}(\.\d{1,3})? ?(ms|s|m|h|d|x)?", fullmatch=True)
_REFERENCES = st.sampled_from(["${OPENAI_API_KEY}", "${NOPE}", "${NOPE:-1s}", "${", "$${x}"])
_VALUES = st.one_of(_JSON, _DURATIONS, _REFERENCES, st.sampled_from(["gpt", "claude", "local"]))
_KEYS = st.one_of(
    st.text(max_size=10),
    st.sampled_from(["type", "model", "provider", "fallback", "params", "timeout", "retry"]),
)


def _dump(document: Any) -> str:
    return yaml.dump(document, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper))


def _check(path: Path) -> None:
    result = CliRunner().invoke(cli, ["config", "validate", "--offline", "-c", str(path)], env=ENV)
    assert result.exit_code in (0, 2), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output


@pytest.fixture(scope="module", autouse=True)
def forget_fuzzed_secrets() -> Iterator[None]:
    """Random api_key values ("fallback", "000000") are registered as secrets process-wide
    and would be masked in later tests' output; restore the registry afterwards."""
    with _secrets._scoped_registry():
        yield


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@FUZZ
@given(text=_YAMLISH)
def test_random_yaml_text(workdir: Path, text: str) -> None:
    path = workdir / "random.yaml"
    path.write_text(text, encoding="utf-8")
    _check(path)


@FUZZ
@given(document=_JSON, as_json=st.booleans())
def test_random_documents(workdir: Path, document: Any, as_json: bool) -> None:
    if as_json:
        path = workdir / "random.json"
        path.write_text(json.dumps(document), encoding="utf-8")
    else:
        path = workdir / "random.yaml"
        path.write_text(_dump(document), encoding="utf-8")
    _check(path)


_PARSED = {path.name: yaml.safe_load(path.read_text()) for path in EXAMPLES.glob("*.yaml")}


@FUZZ
@given(data=st.data(), example=st.sampled_from(sorted(_PARSED)))
def test_mutated_valid_configs(workdir: Path, data: st.DataObject, example: str) -> None:
    document = copy.deepcopy(_PARSED[example])
    for _ in range(data.draw(st.integers(min_value=1, max_value=4))):
        spots = places(document)
        container, key = data.draw(st.sampled_from(spots))
        action = data.draw(st.sampled_from(["delete", "replace", "insert"]))
        if action == "delete":
            del container[key]
        elif action == "replace":
            container[key] = data.draw(_VALUES)
        elif isinstance(container, dict):
            container[data.draw(_KEYS)] = data.draw(_VALUES)
        else:
            container.insert(key, data.draw(_VALUES))
    path = workdir / ("mutated.json" if data.draw(st.booleans()) else "mutated.yaml")
    text = json.dumps(document) if path.suffix == ".json" else _dump(document)
    path.write_text(text, encoding="utf-8")
    _check(path)
