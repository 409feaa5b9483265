"""A config value a provider's MODEL refuses (``config/model_limits.py``) would skip that
provider on every call: ``config validate`` says so, naming the model; an error in the
provider's own params, a warning in a role's. A model the table does not name gets none."""

from __future__ import annotations

from rolecall.config import inspect_config_text

PROVIDERS = """
providers:
  gpt: {type: openai, model: o3, api_key: sk-test-aaaaaaaa}
  claude: {type: anthropic, model: claude-sonnet-4-5-20250929, api_key: sk-test-bbbbbbbb}
  gem: {type: google, model: gemini-2.5-pro, api_key: test-cccccccc}
default_provider: gem
"""


def _with(pid: str, params: str, text: str = PROVIDERS) -> str:
    key = {"gpt": "sk-test-aaaaaaaa", "claude": "sk-test-bbbbbbbb", "gem": "test-cccccccc"}[pid]
    return text.replace(f"api_key: {key}}}", f"api_key: {key}, params: {params}}}")


def test_a_temperature_a_reasoning_model_refuses_in_its_own_params_is_an_error() -> None:
    [issue] = inspect_config_text(_with("gpt", "{temperature: 0.2}"), environ={}).errors
    assert issue.location == "providers.gpt.params.temperature"
    assert "'gpt' (openai, model o3)" in issue.problem
    assert "temperature 0.2 is refused: it takes only the default (1)" in issue.problem
    assert issue.fix == "leave temperature out"


def test_temperature_and_top_p_together_for_a_claude_model_that_refuses_them_is_an_error() -> None:
    report = inspect_config_text(_with("claude", "{temperature: 0.5, top_p: 0.9}"), environ={})
    [issue] = report.errors
    assert issue.location == "providers.claude.params"
    assert "model claude-sonnet-4-5-20250929" in issue.problem
    assert "temperature and top_p together" in issue.problem
    assert issue.fix == "set only one of temperature and top_p"


def test_a_role_value_a_chain_models_refuses_is_a_warning_naming_it() -> None:
    text = _with("claude", "{top_p: 0.9}") + (
        "roles:\n"
        "  coder: {provider: gpt, fallback: [claude], params: {temperature: 0.3}}\n"
        "  planner: {provider: gem, params: {reasoning_effort: none, max_tokens: 70000}}\n"
    )
    report = inspect_config_text(text, environ={})
    assert report.valid and report.errors == []
    found = [(w.location, w.problem) for w in report.warnings]
    assert [location for location, _ in found] == [
        "roles.coder.params.temperature",  # o3
        "roles.coder.params",  # claude's own top_p with the role's temperature
        "roles.planner.params.reasoning_effort",  # gemini-2.5-pro cannot stop thinking
    ]
    assert "'gpt' (openai, model o3)" in found[0][1] and "'claude'" in found[1][1]
    assert "'gem' (google, model gemini-2.5-pro)" in found[2][1]


def test_models_the_table_does_not_name_take_every_value() -> None:
    text = (
        PROVIDERS.replace("model: o3", "model: gpt-4.1")
        .replace("claude-sonnet-4-5-20250929", "claude-3-7-sonnet-latest")
        .replace("gemini-2.5-pro", "gemini-2.5-flash")
    )
    text = _with("gpt", "{temperature: 0.2, stop: [x]}", text)
    text = _with("claude", "{temperature: 0.5, top_p: 0.9, max_tokens: 100000}", text)
    text = _with("gem", "{reasoning_effort: none}", text)
    report = inspect_config_text(text, environ={})
    assert report.valid and report.warnings == []


def test_claude_on_bedrock_refuses_what_it_refuses_on_anthropics_api() -> None:
    text = (
        "providers:\n"
        "  aws:\n"
        "    type: bedrock\n"
        "    model: us.anthropic.claude-sonnet-4-5-20250929-v1:0\n"
        "    region: us-east-1\n"
        "    params: {temperature: 0.5, top_p: 0.9, max_tokens: 64001}\n"
        "default_provider: aws\n"
    )
    found = [(i.location, i.problem) for i in inspect_config_text(text, environ={}).errors]
    assert [location for location, _ in found] == [
        "providers.aws.params.max_tokens",
        "providers.aws.params",
    ]
    assert "(bedrock, model us.anthropic.claude-sonnet-4-5-20250929-v1:0)" in found[0][1]
    assert "64001 is above 64000" in found[0][1]
    assert "temperature and top_p together" in found[1][1]
