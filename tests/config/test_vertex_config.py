"""``type: vertex`` entries: what they require, where they are reached, and the one-line
errors ``config validate`` gives for a bad one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from rolecall.cli import main
from rolecall.config._vertex_config import VertexConfig
from rolecall.config.schema import ProviderConfig


def _entry(**values: Any) -> ProviderConfig:
    return ProviderConfig.model_validate(
        {"type": "vertex", "model": "gemini-2.5-flash", "project": "my-project", **values}
    )


@pytest.mark.parametrize(
    ("location", "host"),
    [
        ({}, "https://us-central1-aiplatform.googleapis.com"),
        ({"location": "europe-west4"}, "https://europe-west4-aiplatform.googleapis.com"),
        ({"location": "global"}, "https://aiplatform.googleapis.com"),
        ({"location": "eu"}, "https://aiplatform.eu.rep.googleapis.com"),
    ],
)
def test_the_address_follows_the_location(location: dict[str, str], host: str) -> None:
    entry = _entry(**location)
    assert isinstance(entry, VertexConfig)
    assert entry.base_url == host


def test_an_endpoint_wins_over_the_location() -> None:
    entry = _entry(location="global", endpoint="https://vertex.internal.example")
    assert entry.base_url == "https://vertex.internal.example"


def test_the_credential_keys_are_optional() -> None:
    entry = _entry(credentials_file="/keys/sa.json")
    assert isinstance(entry, VertexConfig)
    assert entry.credentials_file == "/keys/sa.json"
    assert entry.api_key is None and entry.location == "us-central1"


def test_config_validate_names_each_problem_and_its_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "rolecall.yaml"
    path.write_text(
        "providers:\n"
        "  v: {type: vertex, model: gemini-2.5-flash, location: Europe West}\n"
        "  w: {type: vertex, project: p, model_path: /m.gguf}\n"
        "default_provider: v\n"
    )
    assert main(["config", "validate", str(path), "--offline"]) == 2
    out = capsys.readouterr().out
    assert "providers.v.project (line 2): a vertex provider needs a project; add project:" in out
    assert (
        "providers.v.location (line 2): 'Europe West' is not a Google Cloud location; "
        "use one such as us-central1" in out
    )
    assert "providers.w.model (line 3): a vertex provider needs a model" in out
    assert "unknown key 'model_path' for type vertex" in out
    assert "Traceback" not in out
