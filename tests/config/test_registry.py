"""One registry of provider types: a type added as a plugin would (tests/fictional_provider.py:
a config model, an adapter, one row) is validated, built, routed, described in the JSON
schema and named in validation errors, with no other change to rolecall."""

from __future__ import annotations

import dataclasses
import importlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from fictional_provider import PARROT, ParrotConfig, ParrotProvider
from rolecall.cli import main
from rolecall.config import load_config_text
from rolecall.config.json_schema import config_json_schema
from rolecall.config.params import KNOWN_PARAMS, capabilities_of, known_params
from rolecall.config.provider_models import LocalProviderConfig, ProviderConfig
from rolecall.config.registry import (
    ProviderType,
    provider_type,
    provider_types,
    register,
    unregister,
)
from rolecall.errors import MissingExtra
from rolecall.providers import build_provider
from rolecall.routing.router import Router
from rolecall.sim import SimServer

KEY = "parrot-key-0123456789"
TESTS = Path(__file__).resolve().parents[1]
README = TESTS.parent / "README.md"


@pytest.fixture
def parrot() -> Iterator[None]:
    register(PARROT)
    yield
    unregister(PARROT.name)


def parrot_yaml(base_url: str, extra: str = "") -> str:
    return (
        "providers:\n"
        f"  polly: {{type: parrot, model: polly-1, parrot_key: {KEY}, base_url: '{base_url}',"
        f" voice: whistle{extra}}}\n"
        "roles:\n"
        "  coder: {provider: polly}\n"
        "default_provider: polly\n"
    )


@pytest.mark.usefixtures("parrot")
async def test_a_registered_type_validates_builds_and_answers_through_the_router() -> None:
    with SimServer("openai", api_key=KEY, models=("polly-1",), reply="squawk back") as server:
        config = load_config_text(parrot_yaml(server.base_url), environ={})
        entry = config.providers["polly"]
        assert isinstance(entry, ParrotConfig) and entry.voice == "whistle"
        assert isinstance(build_provider("polly", entry), ParrotProvider)
        async with Router(config) as router:
            reply = await router.complete("coder", "hi")
        headers = server.requests[-1].headers
    assert (reply.provider, reply.text) == ("polly", "squawk back")
    assert headers["x-parrot-voice"] == "whistle"
    assert capabilities_of("parrot") == {"tools", "json_schema"}
    assert known_params("parrot") == KNOWN_PARAMS["openai"]


@pytest.mark.usefixtures("parrot")
def test_a_registered_type_is_in_the_json_schema() -> None:
    schema = config_json_schema()
    entries = schema["properties"]["providers"]["additionalProperties"]
    assert entries["discriminator"]["mapping"]["parrot"] == "#/$defs/ParrotConfig"
    assert "voice" in schema["$defs"]["ParrotConfig"]["properties"]
    validator = Draft202012Validator(schema)
    good = {"type": "parrot", "model": "polly-1", "parrot_key": "k", "endpoint": "http://h/v1"}
    assert not list(validator.iter_errors({"providers": {"p": good}}))
    for bad in ({**good, "parrot_key": None}, {**good, "model_path": "x"}):
        assert list(validator.iter_errors({"providers": {"p": bad}})), bad


@pytest.mark.usefixtures("parrot")
def test_config_validate_speaks_of_the_registered_type(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "rolecall.yaml"
    path.write_text(
        "providers:\n"
        "  a: {type: parot, model: m}\n"
        "  b: {type: parrot, parrot_key: k, model_path: /m.gguf}\n"
        "default_provider: b\n"
    )
    assert main(["config", "validate", str(path), "--offline"]) == 2
    out = capsys.readouterr().out
    assert "providers.a.type (line 2): unknown provider type 'parot'; did you mean 'parrot'?" in out
    assert "providers.b.model (line 3): a parrot provider needs a model; add model: polly-1" in out
    assert "unknown key 'model_path' for type parrot; 'model_path' is for type local" in out
    path.write_text("providers:\n  a: {model: m}\ndefault_provider: a\n")
    assert main(["config", "validate", str(path), "--offline"]) == 2
    names = ", ".join(provider_types())  # every built-in type, then parrot
    assert names.endswith(", parrot")
    assert f"add type: one of {names}" in capsys.readouterr().out


def test_an_unregistered_type_is_unknown_again() -> None:
    register(PARROT)
    unregister("parrot")
    with pytest.raises(KeyError, match="known types: openai, anthropic, google, openai-c"):
        provider_type("parrot")
    assert "parrot" not in provider_types()


def test_a_type_whose_extra_is_missing_names_the_pip_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "parrot_over_sdk.py").write_text("import parrot_sdk.client\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    needs_sdk = dataclasses.replace(
        PARROT, adapter="parrot_over_sdk:Provider", extra="parrot", extra_module="parrot_sdk"
    )
    register(needs_sdk)
    try:
        entry = ProviderConfig(type="parrot", model="m", parrot_key="k", base_url="http://h/v1")
        with pytest.raises(MissingExtra) as raised:
            build_provider("polly", entry)
    finally:
        unregister("parrot")
    assert raised.value.extra == "parrot"
    assert "pip install 'rolecall[parrot]'" in str(raised.value)


def test_provider_config_builds_the_model_of_its_type() -> None:
    local = ProviderConfig(type="local", threads=2)
    assert isinstance(local, LocalProviderConfig) and local.threads == 2
    assert isinstance(ProviderConfig.model_validate({"type": "local"}), LocalProviderConfig)
    with pytest.raises(ValueError, match="model_path"):
        ProviderConfig(type="openai", model="m", model_path="/m.gguf")


def test_every_builtin_row_points_at_real_code() -> None:
    from rolecall.sim.server import _DIALECTS

    for name, row in provider_types().items():
        module, _, cls = row.adapter.partition(":")
        assert hasattr(importlib.import_module(module), cls), name
        assert row.param_family in KNOWN_PARAMS, name
        assert row.sim_dialect is None or row.sim_dialect in _DIALECTS, name
        assert row.config_model.model_fields["type"].is_required(), name


def readme_row(row: ProviderType) -> str:
    if row.default_base_url:
        reached = f"`{row.default_base_url}`"
    elif row.config_model.model_fields["base_url"].is_required():
        reached = "its `base_url`"
    else:
        reached = "-"
    keys = ", ".join(f"`${{{name}}}`" for name in row.key_env_vars) or "-"
    extra = f"`rolecall[{row.extra}]`" if row.extra else "-"
    cells = (f"`{row.name}`", row.description, reached, keys, f"`{row.example_model}`", extra)
    return "| " + " | ".join(cells) + " |"


def test_readme_table_lists_every_type_as_the_registry_has_it() -> None:
    table = "\n".join(readme_row(row) for row in provider_types().values())
    assert table in README.read_text(encoding="utf-8")


PLUGIN_PROBE = """
import logging, sys
logging.basicConfig(level=logging.WARNING, format="%(message)s")
from rolecall.config.registry import provider_types
print(",".join(provider_types()))
"""


def test_a_plugin_package_adds_a_type_through_its_entry_point(tmp_path: Path) -> None:
    dist = tmp_path / "parrot_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: parrot-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[rolecall.provider_types]\n"
        "parrot = fictional_provider:PARROT\n"
        "broken = no_such_module:TYPE\n"
        "not_a_type = fictional_provider:ParrotConfig\n"
    )
    src = Path(importlib.import_module("rolecall").__file__ or "").parents[1]
    done = subprocess.run(
        [sys.executable, "-c", PLUGIN_PROBE],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": f"{tmp_path}:{TESTS}:{src}", "PATH": ""},
        check=True,
    )
    assert done.stdout.strip() == ",".join([*provider_types(), "parrot"])
    assert "no_such_module:TYPE" in done.stderr and "skipped" in done.stderr
    assert "not a rolecall ProviderType" in done.stderr
