"""A config value a provider's vendor refuses (``config/params.py``: more stop sequences
than OpenAI or Gemini take, a temperature above Anthropic's or Bedrock's range) would
skip that provider on every call: ``config validate`` says so before the first call.

In a provider's own params it is an error (the value is wrong for that provider, like
a temperature out of 0..2); in a role's params a warning naming each provider of the
role's chain that the value skips (the others take it)."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from rolecall.cli import cli
from rolecall.config import inspect_config_text

PROVIDERS = """
providers:
  gpt: {type: openai, model: gpt-4.1, api_key: sk-test-aaaaaaaa}
  claude: {type: anthropic, model: claude-sonnet-4-5, api_key: sk-test-bbbbbbbb}
  gem: {type: google, model: gemini-2.5-pro, api_key: test-cccccccc}
default_provider: gem
"""


def test_a_temperature_above_anthropics_range_in_its_own_params_is_an_error() -> None:
    text = PROVIDERS.replace(
        "api_key: sk-test-bbbbbbbb}", "api_key: sk-test-b, params: {temperature: 1.5}}"
    )
    report = inspect_config_text(text, environ={})
    [issue] = report.errors
    assert issue.location == "providers.claude.params.temperature"
    assert issue.line == 4
    assert "'claude' (anthropic)" in issue.problem and "temperature 1.5 is above 1" in issue.problem
    assert issue.fix == "set temperature between 0 and 1"


def test_more_stop_sequences_than_openai_takes_in_its_own_params_is_an_error() -> None:
    text = PROVIDERS.replace(
        "api_key: sk-test-aaaaaaaa}", "api_key: sk-test-a, parameters: {stop: [a, b, c, d, e, f]}}"
    )
    [issue] = inspect_config_text(text, environ={}).errors
    assert issue.location == "providers.gpt.parameters.stop"
    assert "stop has 6 sequences" in issue.problem and "at most 4" in issue.problem


def test_values_the_vendor_takes_pass() -> None:
    text = PROVIDERS.replace(
        "api_key: sk-test-aaaaaaaa}",
        "api_key: sk-test-a, params: {stop: [a, b, c, d], temperature: 1.5}}",
    ).replace(
        "api_key: sk-test-bbbbbbbb}",
        "api_key: sk-test-b, params: {temperature: 1, stop: [a, b, c, d, e, f]}}",
    )
    report = inspect_config_text(text, environ={})
    assert report.valid and report.warnings == []


def test_a_role_value_is_a_warning_naming_each_provider_of_its_chain_it_skips() -> None:
    text = PROVIDERS + (
        "roles:\n"
        "  coder: {provider: gpt, fallback: [claude], params: {temperature: 1.2}}\n"
        "  planner: {provider: gpt, params: {stop: [a, b, c, d, e, f]}}\n"
        "  clarifier: {provider: gem, params: {stop: [a, b, c, d, e, f]}}\n"
    )
    report = inspect_config_text(text, environ={})
    assert report.valid and report.errors == []
    found = [(w.location, w.problem, w.fix) for w in report.warnings]
    assert [(location, fix) for location, _, fix in found] == [
        ("roles.coder.params.temperature", "set temperature between 0 and 1"),
        ("roles.planner.params.stop", "send at most 4"),
        ("roles.planner.params.stop", "send at most 5"),
        ("roles.clarifier.params.stop", "send at most 5"),  # gem once, default or not
    ]
    assert "'claude' (anthropic)" in found[0][1] and "'gpt'" not in found[0][1]
    # default_provider ends every chain: gem (google) takes 5 at most.
    assert "'gpt' (openai)" in found[1][1] and "'gem' (google)" in found[2][1]


def test_a_value_out_of_every_range_is_reported_once() -> None:
    text = PROVIDERS.replace(
        "api_key: sk-test-bbbbbbbb}", "api_key: sk-test-b, params: {temperature: 2.5}}"
    )
    [issue] = inspect_config_text(text, environ={}).errors
    assert "from 0 to 2" in issue.problem


def test_validate_json_lists_them_with_location_line_problem_and_fix(tmp_path: Path) -> None:
    path = tmp_path / "rolecall.yaml"
    path.write_text(
        PROVIDERS.replace(
            "api_key: sk-test-bbbbbbbb}", "api_key: sk-test-b, params: {temperature: 1.5}}"
        )
        + "roles:\n  coder: {provider: claude, params: {temperature: 1.2}}\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(cli, ["config", "validate", "--offline", "--json", "-c", str(path)])
    assert result.exit_code == 2, result.output
    report = json.loads(result.stdout)
    assert report["valid"] is False
    [error] = report["errors"]
    [warning] = report["warnings"]
    assert set(error) == set(warning) >= {"location", "line", "problem", "fix"}
    assert (error["location"], error["line"]) == ("providers.claude.params.temperature", 4)
    assert (warning["location"], warning["line"]) == ("roles.coder.params.temperature", 8)
