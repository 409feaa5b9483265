"""The shipped examples (and the README's sample) load as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rolecall.config import BUILTIN_ROLES, inspect_config, inspect_config_text, load_config

GOCREATOR_ENV = {
    "OPENAI_API_KEY": "sk-test-gocreator-openai-000",
    "ANTHROPIC_API_KEY": "sk-ant-test-gocreator-000",
    "GOOGLE_API_KEY": "test-gocreator-google-000",
}


def test_every_example_is_valid_without_warnings(
    examples_dir: Path, example_env: dict[str, str]
) -> None:
    paths = sorted(examples_dir.glob("*.yaml"))
    assert {p.name for p in paths} >= {
        "three-vendors.yaml",
        "local-only.yaml",
        "gocreator-multi-provider.yaml",
    }
    for path in paths:
        report = inspect_config(path, environ=example_env)
        assert report.valid, (path.name, [str(e) for e in report.errors])
        assert report.warnings == [], (path.name, [str(w) for w in report.warnings])


def test_gocreator_file_loads_unchanged(examples_dir: Path) -> None:
    config = load_config(examples_dir / "gocreator-multi-provider.yaml", environ=GOCREATOR_ENV)
    assert config.schema_version == "1.0"
    assert list(config.providers) == [
        "openai-gpt4-turbo",
        "openai-gpt35",
        "anthropic-claude-sonnet",
        "anthropic-claude-opus",
        "google-gemini-pro",
    ]
    gemini = config.providers["google-gemini-pro"]
    assert gemini.params == {"temperature": 0.6, "max_tokens": 8192}
    assert gemini.api_key is not None and gemini.api_key.get() == GOCREATOR_ENV["GOOGLE_API_KEY"]
    assert config.key_env_var("google-gemini-pro") == "GOOGLE_API_KEY"
    assert config.chain("coder") == [
        "openai-gpt4-turbo",
        "anthropic-claude-sonnet",
        "google-gemini-pro",
    ]
    assert config.role_params("reviewer") == {"temperature": 0.2}
    assert config.chain("custom") == ["openai-gpt4-turbo"]
    assert (config.retry.max_attempts, config.retry.initial_backoff) == (3, 1.0)
    assert (config.retry.max_backoff, config.retry.multiplier) == (30.0, 2.0)


def test_gocreator_file_without_keys_names_each_missing_variable(examples_dir: Path) -> None:
    report = inspect_config(examples_dir / "gocreator-multi-provider.yaml", environ={})
    problems = " ".join(e.problem for e in report.errors)
    assert len(report.errors) == 3
    for name in GOCREATOR_ENV:
        assert f"{name} is not set" in problems


def test_three_vendors_reviews_on_another_vendor_than_it_codes(
    examples_dir: Path, example_env: dict[str, str]
) -> None:
    config = load_config(examples_dir / "three-vendors.yaml", environ=example_env)
    vendor = {pid: p.type for pid, p in config.providers.items()}
    assert vendor[config.chain("reviewer")[0]] != vendor[config.chain("coder")[0]]
    assert set(config.roles) == set(BUILTIN_ROLES)
    assert all(p.pricing is not None for p in config.providers.values())


def test_local_only_needs_no_key(examples_dir: Path) -> None:
    config = load_config(examples_dir / "local-only.yaml", environ={})
    assert all(config.chain(role) == ["local"] for role in BUILTIN_ROLES)
    assert config.providers["local"].api_key is None


def test_readme_sample_config_is_valid(example_env: dict[str, str]) -> None:
    readme = Path(__file__).resolve().parents[2] / "README.md"
    blocks = re.findall(r"```yaml\n(.*?)```", readme.read_text(encoding="utf-8"), re.DOTALL)
    samples = [block for block in blocks if "providers:" in block]
    if not samples:
        pytest.skip("README has no sample config")
    for sample in samples:
        report = inspect_config_text(sample, environ=example_env)
        assert report.valid, [str(e) for e in report.errors]
