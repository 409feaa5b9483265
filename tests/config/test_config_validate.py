"""Validation: every problem in one pass, each with location, line, problem and fix."""

from __future__ import annotations

import re
from typing import Any

import pytest

from rolecall.config import inspect_config_text, validate_document
from rolecall.errors import ConfigIssue

BASE = """
providers:
  gpt: {type: openai, model: gpt-4.1, api_key: sk-test-aaaaaaaa}
  claude: {type: anthropic, model: claude-sonnet-4-5, api_key: sk-test-bbbbbbbb}
  local: {type: local}
default_provider: local
"""

# Ten independent mistakes; "# M" marks the line each must be reported on.
TEN_MISTAKES = """\
schema_version: 1
providers:
  gpt:
    type: opneai                          # M providers.gpt.type
    model: gpt-4.1
    api_key: ${OPENAI_API_KEY}
  claude:
    type: anthropic
    model: claude-sonnet-4-5
    api_key: ${ANTHROPIC_API_KEY}
  gemini:
    type: google
    modle: gemini-2.5-pro                 # M providers.gemini.modle
    model: gemini-2.5-pro
    api_key: ${ROLECALL_TEST_UNSET_KEY}   # M providers.gemini.api_key
    params:
      temperature: 3.5                    # M providers.gemini.params.temperature
    timeout: 5 sec                        # M providers.gemini.timeout
  Big_GPT:                                # M providers.Big_GPT
    type: local
  claude:                                 # M providers.claude
    type: anthropic
    model: claude-opus-4-1
    api_key: ${ANTHROPIC_API_KEY}
roles:
  coder:
    provider: gpt
    model: gpt-4.1                        # M roles.coder.model
    fallback:
      - claude
      - gemni                             # M roles.coder.fallback[1]
default_provider: claude
retry:
  initial_backoff: 1m                     # M retry.initial_backoff
  max_backoff: 10s
"""


def expected_marks(text: str) -> list[tuple[str, int]]:
    return [
        (match.group(1), number)
        for number, row in enumerate(text.splitlines(), start=1)
        if (match := re.search(r"# M (\S+)", row))
    ]


def errors_of(text: str, environ: dict[str, str] | None = None) -> list[ConfigIssue]:
    report = inspect_config_text(text, environ=environ or {})
    assert report.config is None
    return report.errors


def locations(issues: list[ConfigIssue]) -> list[str]:
    return [issue.location for issue in issues]


def test_ten_independent_mistakes_in_one_pass() -> None:
    env = {"OPENAI_API_KEY": "sk-test-1111111111", "ANTHROPIC_API_KEY": "sk-ant-test-22222222"}
    errors = errors_of(TEN_MISTAKES, env)
    assert sorted((e.location, e.line) for e in errors) == sorted(expected_marks(TEN_MISTAKES))
    assert all(e.problem and e.fix for e in errors)
    by_location = {e.location: e for e in errors}
    assert by_location["providers.gpt.type"].fix == "did you mean 'openai'?"
    assert by_location["providers.gemini.modle"].fix == "did you mean 'model'?"
    assert by_location["roles.coder.fallback[1]"].fix == "did you mean 'gemini'?"
    assert str(by_location["roles.coder.model"]) == (
        "roles.coder.model (line 28): a role cannot set 'model'; "
        "set it on the provider and point the role at it"
    )


def test_validate_document_works_on_plain_data_and_keeps_warnings_apart() -> None:
    config, errors, warnings = validate_document({"providers": {"a": {"type": "local"}}})
    assert config is not None and errors == []
    assert [w.location for w in warnings] == ["roles"]
    assert "clarifier, planner, coder, reviewer" in warnings[0].problem
    config, errors, _ = validate_document({"providers": {"a": {"type": "nope"}}})
    assert config is None and locations(errors) == ["providers.a.type"]
    config, errors, _ = validate_document(["not", "a", "mapping"])
    assert config is None and len(errors) == 1


@pytest.mark.parametrize(
    ("snippet", "location", "fix"),
    [
        ("default_providr: local\n", "default_providr", "did you mean 'default_provider'?"),
        ("roles: {coder: {provider: gpt, fallbacks: [claude]}}\n", "roles.coder.fallbacks",
         "did you mean 'fallback'?"),
        ("retry: {max_attempt: 2}\n", "retry.max_attempt", "did you mean 'max_attempts'?"),
        ("roles: {coder: {provider: gpt, strategy: round-robin}}\n", "roles.coder.strategy",
         "did you mean 'round_robin'?"),
        ("roles: {coder: {provider: gtp}}\n", "roles.coder.provider", "did you mean 'gpt'?"),
        ("roles: {coder: {providers: [gpt, claud]}}\n", "roles.coder.providers[1]",
         "did you mean 'claude'?"),
        ("metrics: {URL: x}\n", "metrics.URL", "did you mean 'url'?"),
    ],
)  # fmt: skip
def test_did_you_mean(snippet: str, location: str, fix: str) -> None:
    [issue] = errors_of(BASE + snippet)
    assert (issue.location, issue.fix) == (location, fix)


def test_unknown_default_provider_suggests_the_nearest_id() -> None:
    [issue] = errors_of(BASE.replace("default_provider: local", "default_provider: claud"))
    assert (issue.location, issue.fix) == ("default_provider", "did you mean 'claude'?")


def test_aliases_are_accepted_but_not_both_spellings() -> None:
    text = (
        "schema_version: '1.0'\n"
        "providers:\n"
        "  a: {type: openai, model: m, api_key: k-12345678, endpoint: http://h/v1, "
        "parameters: {temperature: 1}}\n"
        "default_provider: a\n"
    )
    config = inspect_config_text(text, environ={}).config
    assert config is not None
    assert config.providers["a"].base_url == "http://h/v1"
    assert config.providers["a"].params == {"temperature": 1}
    [issue] = errors_of(text.replace("endpoint: http://h/v1", "endpoint: x, base_url: y"))
    assert issue.location == "providers.a.base_url"
    assert "same setting" in issue.problem


def test_ids_and_role_names_must_match_the_pattern() -> None:
    text = BASE + "  My GPT: {type: local}\n" + "roles:\n  Code Writer: {provider: gpt}\n"
    text = text.replace("default_provider: local\n", "") + "default_provider: local\n"
    errors = errors_of(text)
    assert locations(errors) == ['providers["My GPT"]', 'roles["Code Writer"]']
    assert "'my-gpt'" in (errors[0].fix or "")


def test_chain_repeats() -> None:
    text = BASE + (
        "roles:\n"
        "  coder: {provider: gpt, fallback: [claude, gpt]}\n"
        "  reviewer: {providers: [claude, local, claude]}\n"
    )
    errors = errors_of(text)
    assert locations(errors) == ["roles.coder.fallback[1]", "roles.reviewer.providers[2]"]
    assert "repeats the primary provider 'gpt'" in errors[0].problem
    assert "appears twice" in errors[1].problem
    assert "roles.reviewer.providers[0]" in errors[1].problem


@pytest.mark.parametrize("key", ["type", "model", "api_key", "base_url", "endpoint"])
def test_critical_keys_in_a_role(key: str) -> None:
    errors = errors_of(BASE + f"roles:\n  coder: {{provider: gpt, {key}: x}}\n")
    assert [str(e).split(" (line")[0] for e in errors] == [f"roles.coder.{key}"]
    assert errors[0].problem == f"a role cannot set '{key}'"
    errors = errors_of(BASE + f"roles:\n  coder: {{provider: gpt, params: {{{key}: x}}}}\n")
    assert locations(errors) == [f"roles.coder.params.{key}"]


@pytest.mark.parametrize(
    ("params", "bad"),
    [
        ("temperature: -0.1", "temperature"),
        ("temperature: 2.1", "temperature"),
        ("temperature: '0.7'", "temperature"),
        ("temperature: .nan", "temperature"),
        ("top_p: 1.5", "top_p"),
        ("max_tokens: 0", "max_tokens"),
        ("max_tokens: 1.5", "max_tokens"),
        ("max_tokens: true", "max_tokens"),
        ("max_completion_tokens: -5", "max_completion_tokens"),
    ],
)
def test_parameter_ranges_in_provider_and_role_params(params: str, bad: str) -> None:
    provider_side = BASE.replace("{type: local}", f"{{type: local, params: {{{params}}}}}")
    [issue] = errors_of(provider_side)
    assert issue.location == f"providers.local.params.{bad}"
    role_side = BASE + f"roles:\n  coder: {{provider: gpt, parameters: {{{params}}}}}\n"
    [issue] = errors_of(role_side)
    assert issue.location == f"roles.coder.parameters.{bad}"


def test_parameters_in_range_pass() -> None:
    text = BASE + (
        "roles:\n  coder: {provider: gpt, params: "
        "{temperature: 0, top_p: 1, max_tokens: 1, max_completion_tokens: 4096, seed: 7}}\n"
    )
    assert inspect_config_text(text, environ={}).valid


def test_retry_bounds() -> None:
    errors = errors_of(BASE + "retry: {initial_backoff: 5s, max_backoff: 500ms, max_attempts: 0}\n")
    found = {e.location: e for e in errors}
    assert set(found) == {"retry.initial_backoff", "retry.max_attempts"}
    assert "longer than max_backoff" in found["retry.initial_backoff"].problem
    assert found["retry.max_attempts"].fix == "use 1 or more"


@pytest.mark.parametrize(
    ("snippet", "location"),
    [
        ("local: {type: local, timeout: .nan}", "providers.local.timeout"),
        ("retry: {initial_backoff: .nan}", "retry.initial_backoff"),
        ("retry: {max_backoff: .inf}", "retry.max_backoff"),
        ("failover_within: .inf", "failover_within"),
        ("credential_check_timeout: .inf", "credential_check_timeout"),
        ("metrics: {flush_interval: .nan}", "metrics.flush_interval"),
        ("gateway: {body_timeout: .inf}", "gateway.body_timeout"),
        ("workflow: {verify_timeout: .nan}", "workflow.verify_timeout"),
        ("retry: {multiplier: .nan}", "retry.multiplier"),
        (
            "local: {type: local, pricing: {input_per_mtok: .inf, output_per_mtok: 1}}",
            "providers.local.pricing.input_per_mtok",
        ),
        (
            "roles: {coder: {providers: [gpt, claude], strategy: weighted, "
            "weights: {gpt: .inf, claude: 1}}}",
            "roles.coder.weights.gpt",
        ),
        ("roles: {coder: {provider: gpt, params: {seed: .nan}}}", "roles.coder.params.seed"),
    ],
)
def test_nan_and_infinity_are_refused_where_a_finite_number_is_needed(
    snippet: str, location: str
) -> None:
    if snippet.startswith("local:"):  # the provider entry itself
        text = BASE.replace("local: {type: local}", snippet)
    else:
        text = BASE + snippet + "\n"
    [issue] = errors_of(text)
    assert issue.location == location
    assert "nan" in issue.problem or "inf" in issue.problem
    assert issue.fix and "finite" in issue.fix


def test_credential_check_timeout_must_be_above_zero() -> None:
    [issue] = errors_of(BASE + "credential_check_timeout: 0\n")
    assert issue.location == "credential_check_timeout"
    assert "greater than 0" in issue.problem and issue.fix
    assert inspect_config_text(BASE + "credential_check_timeout: 500ms\n", environ={}).valid


def test_local_thread_count_is_bounded() -> None:
    huge = BASE.replace("{type: local}", "{type: local, threads: 1000000000}")
    [issue] = errors_of(huge)
    assert issue.location == "providers.local.threads"
    assert issue.problem == "should be at most 1024 (got 1000000000)"
    assert issue.fix == "use 1024 or less"
    assert inspect_config_text(BASE.replace("{type: local}", "{type: local, threads: 64}")).valid


@pytest.mark.parametrize(
    "url", ["mongodb://u:pw-secret-123@x/y", "ftp://a", "notaurl", "mysql://h/db"]
)
def test_unsupported_metrics_store_url_is_a_config_error(url: str) -> None:
    [issue] = errors_of(BASE + f"metrics: {{url: '{url}'}}\n")
    assert issue.location == "metrics.url"
    assert issue.problem.startswith("unsupported metrics store URL")
    assert issue.fix == "use sqlite:///path/to/file.db or postgresql://user@host/dbname"
    assert "pw-secret-123" not in str(issue)


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///.rolecall/x.db",
        "sqlite:////abs/x.db",
        "sqlite://:memory:",
        "postgres://u@h/d",
        "postgresql://u:pw@h:5432/d",
    ],
)
def test_supported_metrics_store_urls_pass(url: str) -> None:
    assert inspect_config_text(BASE + f"metrics: {{url: '{url}'}}\n", environ={}).valid


def test_role_without_provider_needs_a_default() -> None:
    text = BASE.replace("default_provider: local\n", "") + "roles:\n  coder: {}\n"
    [issue] = errors_of(text)
    assert issue.location == "roles.coder"
    assert "no default_provider" in issue.problem
    assert inspect_config_text(BASE + "roles:\n  coder: {}\n", environ={}).valid


def test_vendor_types_need_a_model_and_compatible_needs_a_base_url() -> None:
    text = (
        "providers:\n"
        "  a: {type: openai, api_key: k-12345678}\n"
        "  b: {type: anthropic, api_key: k-12345678, model: ''}\n"
        "  c: {type: google, api_key: k-12345678}\n"
        "  d: {type: openai-compatible}\n"
        "  e: {type: openai-compatible, endpoint: 'http://127.0.0.1:1/v1'}\n"
        "  f: {type: local}\n"
        "default_provider: f\n"
    )
    errors = errors_of(text)
    assert locations(errors) == [
        "providers.a.model",
        "providers.b.model",
        "providers.c.model",
        "providers.d.base_url",
    ]


def test_weighted_strategy_needs_weights_for_its_providers() -> None:
    def role(spec: str) -> list[ConfigIssue]:
        return errors_of(BASE + f"roles:\n  coder: {spec}\n")

    [issue] = role("{providers: [gpt, claude], strategy: weighted}")
    assert issue.location == "roles.coder.strategy"
    assert issue.fix == "add weights: {gpt: 1, claude: 1}"
    [issue] = role("{providers: [gpt, claude], strategy: weighted, weights: {gpt: 2}}")
    assert (issue.location, issue.problem) == ("roles.coder.weights", "no weight for 'claude'")
    errors = role("{providers: [gpt], strategy: weighted, weights: {gpt: 1, local: 1, gtp: 1}}")
    assert locations(errors) == ["roles.coder.weights.local", "roles.coder.weights.gtp"]
    assert errors[1].fix == "did you mean 'gpt'?"
    report = inspect_config_text(
        BASE + "roles:\n  coder: {providers: [gpt, claude], weights: {gpt: 1, claude: 2}}\n",
        environ={},
    )
    assert report.valid
    assert [w.location for w in report.warnings] == ["roles.coder.weights"]


def test_warnings_do_not_block_loading() -> None:
    text = (
        "providers:\n  gpt: {type: openai, model: gpt-4.1}\n"
        "roles:\n  reviwer: {provider: gpt}\n  coder: {provider: gpt}\n"
    )
    report = inspect_config_text(text, environ={})
    assert report.valid
    found = {w.location: w for w in report.warnings}
    assert set(found) == {"providers.gpt.api_key", "roles.reviwer", "roles"}
    assert found["roles.reviwer"].fix == "rename it to 'reviewer' if that was meant"
    assert "clarifier, planner, reviewer" in found["roles"].problem


def test_a_gateway_alias_named_like_a_role_or_provider_is_a_warning() -> None:
    # Aliases are looked up first: the role and the provider could no longer be asked for.
    aliases = "gateway: {model_aliases: {coder: reviewer, gpt: coder, local: local}}\n"
    report = inspect_config_text(BASE + aliases, environ={})
    assert report.valid
    found = {(w.location, w.problem) for w in report.warnings}
    assert found == {
        (
            "gateway.model_aliases.coder",
            "the alias 'coder' hides the role 'coder': requests for 'coder' go to 'reviewer'",
        ),
        (
            "gateway.model_aliases.gpt",
            "the alias 'gpt' hides the provider 'gpt': requests for 'gpt' go to 'coder'",
        ),
    }


def test_an_alias_to_an_alias_says_aliases_do_not_chain() -> None:
    aliases = "gateway: {model_aliases: {claude-opus: big, big: coder}}\n"
    [issue] = errors_of(BASE + aliases)
    assert issue.location == "gateway.model_aliases.claude-opus"
    assert issue.problem == "alias target 'big' is itself an alias; aliases do not chain"
    assert issue.fix == "point it at what 'big' names: coder"


def test_control_characters_from_the_file_are_shown_escaped_not_sent_to_the_terminal() -> None:
    # An escape sequence in a key or value would clear the screen or retitle the window.
    text = (
        'providers:\n  a: {type: "\\e[2Jopenai"}\n  "\\e[31mb": {type: local}\n'
        'default_provider: a\n"\\e]0;owned\\a": 1\n'
    )
    shown = [str(issue) for issue in errors_of(text)]
    assert len(shown) == 3
    assert not any(re.search("[\x00-\x1f\x7f-\x9f]", line) for line in shown)
    assert "unknown key '\\x1b]0;owned\\x07'" in shown[-1]


def test_unset_key_is_not_also_warned_as_missing() -> None:
    text = "providers:\n  gpt: {type: openai, model: m, api_key: '${NO_SUCH_KEY}'}\n"
    report = inspect_config_text(text + "default_provider: gpt\n", environ={})
    assert locations(report.errors) == ["providers.gpt.api_key"]
    assert report.warnings == []


def test_types_are_described_without_tracebacks() -> None:
    text = (
        "providers:\n"
        "  a:\n"
        "    type: local\n"
        "    max_concurrency: many\n"
        "    pricing: {input_per_mtok: -1}\n"
        "roles: [coder]\n"
        "metrics: {enabled: maybe}\n"
        "default_provider: a\n"
        "schema_version: 2\n"
    )
    errors = errors_of(text)
    found = {e.location: e for e in errors}
    assert set(found) == {
        "providers.a.max_concurrency",
        "providers.a.pricing.input_per_mtok",
        "providers.a.pricing.output_per_mtok",
        "roles",
        "metrics.enabled",
        "schema_version",
    }
    assert found["providers.a.max_concurrency"].problem == "should be a whole number (got 'many')"
    assert found["providers.a.pricing.output_per_mtok"].problem == (
        "missing required key 'output_per_mtok'"
    )
    assert found["schema_version"].fix == "use schema_version: 1"
    assert all(e.line for e in errors)


def test_missing_providers_section() -> None:
    errors = errors_of("roles: {coder: {provider: gpt}}\n")
    assert locations(errors) == ["providers"]
    assert "providers:" in (errors[0].fix or "")
    errors = errors_of("providers: {}\ndefault_provider: x\n")
    assert locations(errors) == ["providers", "default_provider"]


def _raw(**overrides: Any) -> dict[str, Any]:
    return {"providers": {"a": {"type": "local"}}, "default_provider": "a", **overrides}


def test_secret_values_are_not_echoed_in_problems() -> None:
    _, errors, _ = validate_document(_raw(gateway={"keys": [12345678901234]}))
    assert "12345678901234" not in " ".join(str(e) for e in errors)


def test_weighted_needs_no_weight_for_a_primary_or_fallback_beside_providers() -> None:
    # With providers: the primary is always first and fallback always after: no draw.
    text = (
        BASE + "roles:\n  coder: {provider: local, providers: [gpt, claude], fallback: [local],"
        " strategy: weighted, weights: {gpt: 3, claude: 1}}\n"
    )
    first = inspect_config_text(text.replace("fallback: [local], ", ""), environ={})
    assert (first.errors, first.warnings) == ([], [])
    text = text.replace("provider: local, ", "").replace("claude: 1}", "claude: 1, local: 5}")
    report = inspect_config_text(text, environ={})
    assert report.valid
    [warning] = report.warnings
    assert warning.location == "roles.coder.weights.local"
    assert "not drawn" in warning.problem
    # Without providers, provider and fallback are the pool: each still needs a weight.
    [issue] = errors_of(
        BASE + "roles:\n  coder: {provider: gpt, fallback: [claude], strategy: weighted,"
        " weights: {gpt: 1}}\n"
    )
    assert (issue.location, issue.problem) == ("roles.coder.weights", "no weight for 'claude'")
