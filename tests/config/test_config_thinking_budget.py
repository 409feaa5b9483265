"""A thinking budget Anthropic refuses (below 1024 tokens, or not below ``max_tokens``: the
provider's and the role's merged, or the 4096 the adapter sends when none is set) would skip
the provider on every call that carries it: ``config validate`` says so; an error in the
provider's own params, a warning in a role's."""

from __future__ import annotations

from rolecall.config import inspect_config_text

PROVIDERS = """
providers:
  claude: {type: anthropic, model: claude-3-7-sonnet-latest, api_key: sk-test-bbbbbbbb}
  gem: {type: google, model: gemini-2.5-flash, api_key: test-cccccccc}
default_provider: gem
"""


def _claude_params(params: str) -> str:
    return PROVIDERS.replace("sk-test-bbbbbbbb}", f"sk-test-bbbbbbbb, params: {params}}}")


def test_a_budget_below_1024_in_its_own_params_is_an_error() -> None:
    text = _claude_params("{thinking: {type: enabled, budget_tokens: 500}, max_tokens: 8000}")
    [issue] = inspect_config_text(text, environ={}).errors
    assert issue.location == "providers.claude.params.thinking"
    assert "'claude' (anthropic)" in issue.problem
    assert "budget_tokens 500 is below 1024" in issue.problem
    assert issue.fix == "set thinking.budget_tokens to 1024 or more"


def test_a_budget_not_below_the_default_max_tokens_is_an_error() -> None:
    text = _claude_params("{thinking: {type: enabled, budget_tokens: 8000}}")
    [issue] = inspect_config_text(text, environ={}).errors
    assert issue.location == "providers.claude.params"
    assert "budget_tokens 8000 is not below max_tokens 4096" in issue.problem
    assert issue.fix == "set max_tokens above 8000, or lower thinking.budget_tokens"


def test_a_roles_budget_is_held_against_the_providers_max_tokens() -> None:
    text = _claude_params("{max_tokens: 2000}") + (
        "roles:\n"
        "  planner: {provider: claude, params: {thinking: {type: enabled, budget_tokens: 2000}}}\n"
        "  coder: {provider: claude, params: {thinking: {type: enabled, budget_tokens: 1999}}}\n"
    )
    report = inspect_config_text(text, environ={})
    assert report.valid and report.errors == []
    [warning] = report.warnings
    assert warning.location == "roles.planner.params"
    assert "budget_tokens 2000 is not below max_tokens 2000" in warning.problem


def test_a_budget_that_fits_is_no_finding() -> None:
    text = _claude_params("{thinking: {type: enabled, budget_tokens: 8000}, max_tokens: 16000}")
    report = inspect_config_text(text, environ={})
    assert report.valid and report.warnings == []
