"""base_url shape, API keys with whitespace, and parameter names per wire protocol."""

from __future__ import annotations

import pytest

from rolecall.config import inspect_config_text
from rolecall.config.load import ConfigReport
from rolecall.config.params import KNOWN_PARAMS, sendable_params, suggest_param

KEY = "sk-whitespace-SECRET-0123456789"


def report(
    provider: str, *, roles: str = "", environ: dict[str, str] | None = None
) -> ConfigReport:
    text = f"providers:\n  p: {provider}\ndefault_provider: p\n{roles}"
    return inspect_config_text(text, environ=environ or {})


@pytest.mark.parametrize(
    ("url", "problem", "fix"),
    [
        ("api.openai.com/v1", "must start with http:// or https://", "https://api.openai.com/v1"),
        ("localhost:11434/v1", "must start with http://", "e.g. http://localhost:11434/v1"),
        ("ftp://example.com/v1", "must start with http://", "e.g. https://api.openai.com/v1"),
        ("http:///v1", "has no host", "with a host"),
        ("https://h:port/v1", "is not a valid URL", "with a host"),
    ],
)
def test_base_url_must_be_an_http_url_with_a_host(url: str, problem: str, fix: str) -> None:
    result = report(f"{{type: openai, model: m, api_key: k, base_url: '{url}'}}")
    [issue] = result.errors
    assert issue.location == "providers.p.base_url" and issue.line == 2
    assert problem in issue.problem and url in issue.problem
    assert issue.fix is not None and fix in issue.fix


def test_endpoint_alias_is_checked_under_its_own_name() -> None:
    [issue] = report("{type: anthropic, model: m, api_key: k, endpoint: api.anthropic.com}").errors
    assert issue.location == "providers.p.endpoint"


@pytest.mark.parametrize(
    "url", ["https://api.openai.com/v1", "http://localhost:11434/v1", "http://127.0.0.1:8080"]
)
def test_good_base_urls_pass(url: str) -> None:
    result = report(f"{{type: openai-compatible, model: m, base_url: '{url}'}}")
    assert result.valid, result.errors


@pytest.mark.parametrize(
    ("value", "what"), [(KEY + "\n", "a line break"), ("  " + KEY, "spaces or tabs")]
)
def test_api_key_with_whitespace_is_an_error_that_never_shows_the_key(
    value: str, what: str
) -> None:
    result = report(
        "{type: openai, model: m, api_key: '${OPENAI_API_KEY}'}", environ={"OPENAI_API_KEY": value}
    )
    [issue] = result.errors
    assert issue.location == "providers.p.api_key"
    assert "provider 'p'" in issue.problem and what in issue.problem
    assert issue.fix is not None and "strip" in issue.fix
    assert KEY not in str(issue) and KEY[:12] not in str(issue)


def test_unknown_param_is_a_warning_with_did_you_mean() -> None:
    result = report("{type: openai, model: m, api_key: k, params: {temp: 0.2, seed: 1}}")
    assert result.valid  # a warning, not an error
    [warning] = result.warnings
    assert warning.location == "providers.p.params.temp"
    assert "'temp' is unknown to openai" in warning.problem and "not sent" in warning.problem
    assert warning.fix == "did you mean 'temperature'?"


def test_param_names_follow_the_provider_protocol() -> None:
    # frequency_penalty is an OpenAI parameter, not an Anthropic one.
    result = report("{type: anthropic, model: m, api_key: k, params: {frequency_penalty: 0.5}}")
    [warning] = result.warnings
    assert "unknown to anthropic" in warning.problem
    assert report("{type: openai, model: m, api_key: k, params: {frequency_penalty: 0.5}}").valid
    assert not report(
        "{type: openai, model: m, api_key: k, params: {presence_penalty: 1}}"
    ).warnings


def test_role_params_are_checked_against_every_provider_of_the_role() -> None:
    roles = "roles:\n  coder: {provider: p, params: {frequency_penalty: 0.1, temprature: 0.3}}\n"
    result = report("{type: openai, model: m, api_key: k}", roles=roles)
    [warning] = [w for w in result.warnings if "params" in w.location]
    assert warning.location == "roles.coder.params.temprature"
    assert warning.fix == "did you mean 'temperature'?"


def test_one_table_drives_what_is_sent() -> None:
    assert suggest_param("temp", KNOWN_PARAMS["google"]) == "temperature"
    assert suggest_param("max_token", KNOWN_PARAMS["anthropic"]) == "max_tokens"
    sent = sendable_params("openai", {"temp": 0.2, "temperature": 0.3})
    assert dict(sent) == {"temperature": 0.3}


@pytest.mark.parametrize(
    ("auth", "warned"), [("api-key", True), ("entra", False)], ids=["api-key", "entra"]
)
def test_a_missing_azure_key_is_worth_a_warning_only_when_a_key_signs_in(
    auth: str, warned: bool
) -> None:
    result = report(
        f"{{type: azure-openai, endpoint: 'https://contoso.openai.azure.com', "
        f"deployment: gpt-4o, auth: {auth}}}"
    )
    assert result.valid, result.errors
    missing_key = [w for w in result.warnings if w.location == "providers.p.api_key"]
    assert bool(missing_key) is warned, result.warnings


@pytest.mark.parametrize(("written", "warned"), [("", False), (1, False), (4, True)])
def test_max_concurrency_above_one_on_the_embedded_model_is_a_warning(
    written: object, warned: bool
) -> None:
    extra = f", max_concurrency: {written}" if written != "" else ""
    result = report(f"{{type: local{extra}}}")
    assert result.valid, result.errors
    found = [w for w in result.warnings if w.location == "providers.p.max_concurrency"]
    assert bool(found) is warned, result.warnings
    if found:
        assert "one request at a time" in found[0].problem
        assert found[0].fix is not None and "max_concurrency" in found[0].fix
