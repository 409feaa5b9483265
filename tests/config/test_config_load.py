"""Finding and reading the config file: YAML/JSON, ${VAR}, .env, lines, file-level problems."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from rolecall.config import (
    find_config_path,
    inspect_config,
    inspect_config_text,
    load_config,
    load_config_text,
)
from rolecall.errors import ConfigError, ConfigIssue

Write = Callable[..., Path]

LOCAL = "providers:\n  local: {type: local}\ndefault_provider: local\n"


def issues_of(text: str, **kwargs: object) -> list[ConfigIssue]:
    report = inspect_config_text(text, **kwargs)  # type: ignore[arg-type]
    assert report.config is None
    return report.errors


# ---- finding the file -------------------------------------------------------------------


def test_explicit_path_wins_over_env_and_cwd(
    write: Write, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    explicit = write(LOCAL, "explicit.yaml")
    from_env = write(LOCAL, "env.yaml")
    write(LOCAL, "rolecall.yaml")
    monkeypatch.chdir(tmp_path)
    env = {"ROLECALL_CONFIG": str(from_env)}
    assert find_config_path(explicit, environ=env) == explicit
    assert find_config_path(None, environ=env) == from_env
    assert find_config_path(None, environ={}) == Path("rolecall.yaml")


@pytest.mark.parametrize("name", ["rolecall.yml", "rolecall.json"])
def test_other_default_names_are_found(
    name: str, write: Write, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write('{"providers": {"local": {"type": "local"}}}', name)
    monkeypatch.chdir(tmp_path)
    assert find_config_path(environ={}) == Path(name)


def test_no_config_anywhere_says_how_to_create_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as caught:
        find_config_path(environ={})
    [issue] = caught.value.issues
    assert "rolecall init" in (issue.fix or "")
    assert "-c FILE" in (issue.fix or "")


def test_missing_explicit_file_and_env_file_are_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match=r"nope\.yaml"):
        find_config_path(missing, environ={})
    with pytest.raises(ConfigError, match="ROLECALL_CONFIG"):
        find_config_path(None, environ={"ROLECALL_CONFIG": str(missing)})
    with pytest.raises(ConfigError, match="is a directory"):
        find_config_path(tmp_path, environ={})


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_device_or_fifo_is_refused_without_being_opened(tmp_path: Path) -> None:
    # Opening a FIFO waits for a writer and /dev/zero never ends: neither may be read.
    fifo = tmp_path / "rolecall.yaml"
    os.mkfifo(fifo)
    specials = [fifo, *([Path(os.devnull)] if Path(os.devnull).exists() else [])]
    for path in specials:
        with pytest.raises(ConfigError) as caught:
            find_config_path(path, environ={})
        [issue] = caught.value.issues
        assert f"{path} is a " in issue.problem and "not a config file" in issue.problem
        assert issue.fix == "pass -c the YAML or JSON config file itself"
        with pytest.raises(ConfigError, match="not a config file"):
            find_config_path(None, environ={"ROLECALL_CONFIG": str(path)})
        [issue] = inspect_config(path, environ={}).errors
        assert "not a config file" in issue.problem


def test_a_config_over_the_size_limit_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "rolecall.yaml"
    path.write_text(LOCAL + "# padding\n" * 200_000)
    [issue] = inspect_config(path, environ={}).errors
    assert issue.problem == f"{path} is larger than 1000000 bytes, too large for a config file"
    assert issue.fix


# ---- ${VAR} and .env -----------------------------------------------------------------------


def test_interpolation_whole_partial_default_and_escape() -> None:
    text = """
providers:
  gpt:
    type: openai-compatible
    model: ${MODEL:-qwen2.5}
    api_key: ${KEY}
    base_url: http://${HOST}:8080/v1
    headers: {X-Note: "cost $${PRICE}", X-Empty: "${EMPTY:-dflt}", X-Dash: "${EMPTY-kept}"}
default_provider: gpt
"""
    env = {"KEY": "k-123456789", "HOST": "127.0.0.1", "EMPTY": ""}
    config = load_config_text(text, environ=env)
    gpt = config.providers["gpt"]
    assert gpt.model == "qwen2.5"
    assert gpt.api_key is not None and gpt.api_key.get() == "k-123456789"
    assert gpt.base_url == "http://127.0.0.1:8080/v1"
    assert gpt.headers == {"X-Note": "cost ${PRICE}", "X-Empty": "dflt", "X-Dash": ""}
    assert config.key_env_var("gpt") == "KEY"


def test_a_lone_reference_in_params_takes_the_values_type() -> None:
    text = """
providers:
  local:
    type: local
    model: ${MODEL:-7}
    params:
      temperature: ${TEMP:-0.2}
      max_tokens: "${MAX}"
      stop: "end ${STOP:-7}"
default_provider: local
"""
    config = load_config_text(text, environ={"MAX": "512"})
    local = config.providers["local"]
    assert local.params == {"temperature": 0.2, "max_tokens": 512, "stop": "end 7"}
    assert local.model == "7"  # outside params, text stays text


def test_unquoted_reference_in_flow_mapping_gets_a_quoting_fix() -> None:
    [issue] = issues_of("providers: {a: {type: local, model: ${M}}}\n")
    assert issue.line == 1
    assert 'write "${VAR}"' in (issue.fix or "")


def test_each_unset_variable_is_one_issue_naming_it() -> None:
    text = """
providers:
  a: {type: openai, model: m, api_key: "${NOPE_KEY}"}
  b: {type: openai, model: m, api_key: "${NOPE_KEY}"}
  c: {type: openai, model: m, api_key: "${OTHER_KEY}"}
default_provider: a
"""
    errors = issues_of(text, environ={})
    assert [(e.location, e.line) for e in errors] == [
        ("providers.a.api_key", 3),
        ("providers.c.api_key", 5),
    ]
    assert "NOPE_KEY is not set" in errors[0].problem
    assert "providers.b.api_key" in errors[0].problem
    assert errors[0].fix == "export NOPE_KEY=... or add it to .env beside the config"


def test_malformed_reference_is_reported() -> None:
    text = "providers:\n  a: {type: local, model: '${1BAD}'}\ndefault_provider: a\n"
    [issue] = issues_of(text, environ={})
    assert issue.location == "providers.a.model"
    assert "${1BAD}" in issue.problem
    assert "$${" in (issue.fix or "")


def test_dotenv_beside_the_file_is_read_and_the_environment_wins(write: Write) -> None:
    path = write(
        "providers:\n"
        "  gpt: {type: openai, model: '${MODEL}', api_key: '${OPENAI_API_KEY}'}\n"
        "  other: {type: openai, model: '${QUOTED}', api_key: '${SINGLE}'}\n"
        "default_provider: gpt\n"
    )
    (path.parent / ".env").write_text(
        "# keys for local runs\n"
        "export OPENAI_API_KEY=sk-from-dotenv-123456\n"
        "MODEL=gpt-from-dotenv  # trailing comment\n"
        'QUOTED="gpt #4 \\"quoted\\""\n'
        "SINGLE='raw $value # kept'\n"
        "\n"
        "this line is not an assignment\n",
        encoding="utf-8",
    )
    report = inspect_config(path, environ={"MODEL": "gpt-from-env"})
    assert report.config is not None, report.errors
    assert report.config.providers["gpt"].model == "gpt-from-env"
    assert report.config.providers["gpt"].api_key.get() == "sk-from-dotenv-123456"  # type: ignore[union-attr]
    assert report.config.providers["other"].model == 'gpt #4 "quoted"'
    assert report.config.providers["other"].api_key.get() == "raw $value # kept"  # type: ignore[union-attr]
    [warning] = [w for w in report.warnings if w.location == ".env"]
    assert warning.line == 7


@pytest.mark.parametrize(
    ("line", "problem", "fix"),
    [
        (
            'OPENAI_API_KEY="sk-a-key-that-goes-on',
            "OPENAI_API_KEY not set: its value has no closing quote",
            r"close the quote on the same line (write a line break as \n)",
        ),
        (
            "OPENAI_API_KEY='sk-abc' sk-def",
            "OPENAI_API_KEY not set: its value has text after its closing quote",
            "put the whole value inside the quotes (a comment starts with ' #')",
        ),
    ],
)
def test_a_skipped_dotenv_line_is_named_where_its_variable_is_used(
    write: Write, line: str, problem: str, fix: str
) -> None:
    path = write(
        "providers:\n  gpt: {type: openai, model: m, api_key: '${OPENAI_API_KEY}'}\n"
        "default_provider: gpt\n"
    )
    (path.parent / ".env").write_text(f"# keys\n{line}\n", encoding="utf-8")
    report = inspect_config(path, environ={})
    [error] = report.errors
    assert (error.location, error.line) == ("providers.gpt.api_key", 2)
    assert error.fix == "fix line 2 of .env, which was skipped"
    [warning] = report.warnings
    assert (warning.location, warning.line) == (".env", 2)
    assert (warning.problem, warning.fix) == (f"line skipped: {problem}", fix)
    assert "sk-" not in str(report.errors) + str(report.warnings)


# ---- durations --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "seconds"),
    [("500ms", 0.5), ("1s", 1.0), ("2m", 120.0), ("1h", 3600.0), ("1.5", 1.5), ("'1.5'", 1.5)],
)
def test_durations(written: str, seconds: float) -> None:
    text = f"providers:\n  a: {{type: local, timeout: {written}}}\ndefault_provider: a\n"
    assert load_config_text(text).providers["a"].timeout == seconds


@pytest.mark.parametrize("written", ["1x", "-1s", "5 sec", "true", "[1]", "0"])
def test_bad_durations(written: str) -> None:
    text = f"providers:\n  a:\n    type: local\n    timeout: {written}\ndefault_provider: a\n"
    [issue] = issues_of(text)
    assert (issue.location, issue.line) == ("providers.a.timeout", 4)


@pytest.mark.parametrize(
    ("key", "written"),
    [
        ("failover_within", "86401"),
        ("credential_check_timeout", "25h"),
        ("retry: {max_backoff", "10000000000}"),
        ("metrics: {flush_interval", "1.0e+10}"),
    ],
)
def test_a_duration_over_a_day_is_refused(key: str, written: str) -> None:
    # 1e10 s reached threading and socket waits, which fail with OverflowError.
    text = f"providers: {{a: {{type: local}}}}\ndefault_provider: a\n{key}: {written}\n"
    [issue] = issues_of(text)
    assert issue.line == 3
    assert "is over a day" in issue.problem
    assert issue.fix == "use at most 24h (86400 s)"


@pytest.mark.parametrize(
    ("setting", "location", "expected"),
    [
        ("providers: {a: {type: local, threads: true}}", "providers.a.threads", "a whole number"),
        (
            "providers: {a: {type: local, max_concurrency: true}}",
            "providers.a.max_concurrency",
            "a whole number",
        ),
        ("retry: {max_attempts: false}", "retry.max_attempts", "a whole number"),
        ("retry: {multiplier: true}", "retry.multiplier", "a number"),
        ("gateway: {max_body_bytes: true}", "gateway.max_body_bytes", "a whole number"),
        (
            "roles: {coder: {provider: a, strategy: weighted, weights: {a: true}}}",
            "roles.coder.weights.a",
            "a number",
        ),
    ],
)
def test_true_or_false_is_not_a_number(setting: str, location: str, expected: str) -> None:
    # Read leniently, `threads: true` was 1 thread and `max_attempts: false` 0 attempts.
    providers = "" if setting.startswith("providers:") else "providers: {a: {type: local}}\n"
    errors = issues_of(f"{providers}default_provider: a\n{setting}\n")
    assert not any("duplicate" in error.problem for error in errors)
    [issue] = [error for error in errors if error.location == location]
    assert f"should be {expected} (got true)" in issue.problem or (
        f"should be {expected} (got false)" in issue.problem
    )


def test_a_number_written_as_text_is_still_a_number() -> None:
    text = "providers: {a: {type: local, threads: '4'}}\ndefault_provider: a\n"
    assert load_config_text(text).providers["a"].threads == 4


def test_a_day_is_the_longest_duration() -> None:
    text = "providers: {a: {type: local, timeout: 24h}}\ndefault_provider: a\n"
    assert load_config_text(text).providers["a"].timeout == 86_400.0


def test_bad_duration_message_comes_from_the_schema() -> None:
    text = "providers: {a: {type: local}}\ndefault_provider: a\nfailover_within: 3 days\n"
    [issue] = issues_of(text)
    assert issue.problem == "invalid duration '3 days'"
    assert issue.fix == "use a number with ms, s, m or h (500ms, 1s, 2m)"


# ---- YAML and JSON syntax, file-level problems ---------------------------------------------


def test_malformed_yaml_is_reported_alone_with_line_and_column() -> None:
    text = (
        "providers:\n"
        "  a:\n"
        "    type: opneai\n"  # would be an error too, but the file cannot be read
        "   model: x\n"
        "default_provider: missing\n"
    )
    [issue] = issues_of(text)
    assert issue.line == 4
    assert "invalid YAML" in issue.problem
    assert "column" in issue.problem
    assert issue.fix


def test_tabs_get_a_tab_specific_fix() -> None:
    [issue] = issues_of("providers:\n\ta: {type: local}\n")
    assert issue.line == 2
    assert "tabs" in (issue.fix or "")


def test_json_errors_are_json_specific(write: Write) -> None:
    path = write('{\n  "providers": {\n    "a": {"type": "local"},\n  }\n}\n', "rolecall.json")
    [issue] = inspect_config(path).errors
    assert issue.problem.startswith("invalid JSON")
    assert issue.line == 4
    assert "trailing commas" in (issue.fix or "")


def test_json_with_tabs_and_exponents_loads_with_lines(write: Write) -> None:
    path = write(
        '{\n\t"providers": {\n\t\t"a": {"type": "local", "params": {"temperature": 5e-1}},\n'
        '\t\t"b": {"type": "local", "timeout": "1x"}\n\t},\n\t"default_provider": "a"\n}\n',
        "rolecall.json",
    )
    [issue] = inspect_config(path).errors
    assert (issue.location, issue.line) == ("providers.b.timeout", 4)
    fixed = path.read_text().replace('"1x"', '"1s"')
    path.write_text(fixed)
    config = load_config(path)
    assert config.providers["a"].params == {"temperature": 0.5}


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "empty"),
        (b"   \n\n", "empty"),
        (b"---\n", "empty"),
        (b"---\n# nothing yet\n...\n", "empty"),
        (b"# only a comment\n", "only comments"),
        (b"- a\n- b\n", "top level is a list"),
        (b"just text\n", "top level is a single value"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary"),
        (b"providers:\n  a: {type: local, model: caf\xe9}\n", "not UTF-8"),
        (b"providers:\n  a: \x07\n", "control character"),
    ],
)
def test_file_level_problems_are_one_clear_issue(
    content: bytes, expected: str, tmp_path: Path
) -> None:
    path = tmp_path / "rolecall.yaml"
    path.write_bytes(content)
    [issue] = inspect_config(path).errors
    assert expected in issue.problem
    assert issue.fix


def test_utf8_bom_and_utf16_files_load(tmp_path: Path) -> None:
    path = tmp_path / "rolecall.yaml"
    path.write_bytes("\ufeff".encode() + LOCAL.encode())
    assert load_config(path).default_provider == "local"
    path.write_bytes(LOCAL.encode("utf-16"))
    assert load_config(path).default_provider == "local"


# ---- what PyYAML's loader hides ---------------------------------------------------------------


def test_duplicate_keys_are_reported_with_both_lines() -> None:
    text = (
        "providers:\n"
        "  gpt: {type: local}\n"
        "  claude:\n"
        "    type: local\n"
        "    params:\n"
        "      temperature: 0.1\n"
        "      temperature: 0.2\n"
        "  gpt: {type: local}\n"
        "default_provider: gpt\n"
    )
    errors = issues_of(text)
    assert [(e.location, e.line) for e in errors] == [
        ("providers.claude.params.temperature", 7),
        ("providers.gpt", 8),
    ]
    assert "duplicate provider id 'gpt' (first at line 2)" in errors[1].problem
    assert "duplicate key 'temperature' (first at line 6)" in errors[0].problem


def test_lines_of_list_items_and_nested_keys() -> None:
    text = (
        "providers:\n"
        "  a: {type: local}\n"
        "roles:\n"
        "  coder:\n"
        "    provider: a\n"
        "    fallback:\n"
        "      - a\n"
        "      - b\n"
        "    params:\n"
        "      top_p: 7\n"
    )
    errors = issues_of(text)
    assert [(e.location, e.line) for e in errors] == [
        ("roles.coder.fallback[0]", 7),
        ("roles.coder.fallback[1]", 8),
        ("roles.coder.params.top_p", 10),
    ]


def test_anchors_merge_keys_and_x_extension_keys() -> None:
    text = """
x-openai: &openai
  type: openai
  api_key: ${KEY}
  params: {temperature: 0.5}
providers:
  big: {<<: *openai, model: gpt-4.1}
  small:
    <<: *openai
    model: gpt-4.1-mini
    params: {temperature: 0.1}
default_provider: big
"""
    config = load_config_text(text, environ={"KEY": "sk-merge-123456"})
    assert config.providers["big"].params == {"temperature": 0.5}
    assert config.providers["small"].params == {"temperature": 0.1}
    assert config.providers["small"].model == "gpt-4.1-mini"
    assert config.key_env_var("small") == "KEY"


def test_alias_loops_and_alias_bombs_are_issues_not_crashes() -> None:
    loop = "providers:\n  a: &x\n    type: local\n    params: {self: *x}\ndefault_provider: a\n"
    [issue] = issues_of(loop)
    assert "alias" in issue.problem
    rows = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    rows += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 7)]
    [issue] = issues_of("\n".join(rows) + "\nproviders: {a: {type: local}}\n")
    assert "expands to more than" in issue.problem


def _ten_thousand_times(value: str) -> str:
    """A file under 1 MB using ``value`` 10,000 times through nested aliases."""
    rows = [f'x-s: &s0 "{value}"']
    rows += [
        f"x-l{i}: &l{i} [{', '.join([f'*{prev}'] * 10)}]"
        for i, prev in [(1, "s0"), (2, "l1"), (3, "l2"), (4, "l3")]
    ]
    return "\n".join(rows) + "\nproviders: {a: {type: local, params: {stop: *l4}}}\n"


@pytest.mark.parametrize(
    ("text", "environ"),
    [
        # One long string read 10,000 times: 4 GB of text to scan.
        (_ten_thousand_times("A" * 400_000), {}),
        # A default expanded 10,000 times: 4 GB of memory.
        (_ten_thousand_times("${UNSET_VAR:-" + "A" * 400_000 + "}"), {}),
        # A short file repeating a long variable: 100 GB.
        (
            'providers: {a: {type: local, model: "' + "${BIG}" * 100_000 + '"}}\n',
            {"BIG": "B" * 1_000_000},
        ),
    ],
    ids=["aliased-string", "aliased-default", "repeated-variable"],
)
def test_text_multiplied_past_ten_megabytes_is_refused_in_one_issue(
    text: str, environ: dict[str, str]
) -> None:
    assert len(text) < 1_000_000
    [issue] = issues_of(text, environ=environ)
    assert "expands to more than 10000000 characters of text" in issue.problem
    assert "aliases" in (issue.fix or "")


@pytest.mark.parametrize(
    ("text", "source", "location"),
    [
        (
            f"providers: {{a: {{type: local, timeout: {'9' * 400}}}}}\n",
            "c.yaml",
            "providers.a.timeout",
        ),
        (f"retry: {{max_attempts: {'9' * 5000}}}\n", "c.yaml", "retry.max_attempts"),
        (
            f"providers: {{a: {{type: local, params: {{max_tokens: 0x{'f' * 5000}}}}}}}\n",
            "c.yaml",
            "providers.a.params.max_tokens",
        ),
        (
            f"providers: {{a: {{type: local, params: {{max_tokens: -{'9' * 400}}}}}}}\n",
            "c.yaml",
            "providers.a.params.max_tokens",
        ),
        (
            'providers: {a: {type: local, params: {temperature: "${T}"}}}\n',
            "c.yaml",
            "providers.a.params.temperature",
        ),
        (
            '{"providers": {"a": {"type": "local", "params": {"temperature": %s}}}}' % ("9" * 400),
            "c.json",
            "providers.a.params.temperature",
        ),
        (f'{{"gateway": {{"max_body_bytes": {"9" * 5000}}}}}', "c.json", "gateway.max_body_bytes"),
    ],
    ids=[
        "yaml-400-digits",
        "yaml-5000-digits",
        "yaml-hex",
        "negative",
        "variable",
        "json-400-digits",
        "json-5000-digits",
    ],
)
def test_a_number_too_large_for_any_setting_is_one_issue(
    text: str, source: str, location: str
) -> None:
    errors = issues_of(text, source=source, environ={"T": "9" * 400})
    [issue] = [error for error in errors if error.location == location]
    assert "is too large" in issue.problem
    assert issue.fix == "use a number no larger than 9223372036854775807"
    assert len(issue.problem) < 100
    assert not any("set_int_max_str_digits" in error.problem for error in errors)


def test_a_whole_number_past_64_bits_is_too_large_however_short() -> None:
    text = 'providers: {a: {type: openai, model: m, params: {seed: "${SEED}"}}}\n'
    [issue] = issues_of(text, environ={"SEED": "9223372036854775808"})
    assert (issue.location, issue.problem) == (
        "providers.a.params.seed",
        "the number 9223372036854775808 is too large",
    )
    assert load_config_text(text, environ={"SEED": "9223372036854775807"})


def test_a_merge_sign_as_a_value_is_text() -> None:
    config = load_config_text("providers: {a: {type: local, params: {stop: <<}}}\n")
    assert config.providers["a"].params == {"stop": "<<"}


def test_unknown_tags_are_issues() -> None:
    errors = issues_of("providers:\n  a: {type: local, model: !env MODEL}\ndefault_provider: a\n")
    assert [(e.location, e.line) for e in errors] == [("providers.a.model", 2)]
    assert "!env" in errors[0].problem


@pytest.mark.parametrize(
    "value",
    ["!!python/object:os.system {type: local}", "!local {type: local}", "!!str {type: local}"],
)
def test_a_tag_on_a_mapping_is_an_issue_too(value: str) -> None:
    [issue] = issues_of(f"providers:\n  a: {value}\ndefault_provider: a\n")
    assert (issue.location, issue.line) == ("providers.a", 2)
    assert "unsupported YAML tag" in issue.problem
    assert issue.fix == "remove the tag"


def test_a_tag_on_a_list_is_an_issue_too() -> None:
    text = "providers:\n  a: {type: local, params: {stop: !lines [x]}}\ndefault_provider: a\n"
    [issue] = issues_of(text)
    assert (issue.location, issue.problem) == (
        "providers.a.params.stop",
        "unsupported YAML tag '!lines'",
    )


@pytest.mark.parametrize("written", ["off", "'off'", "false", "no"])
def test_requantize_off_unquoted_is_off(written: str) -> None:
    # YAML reads an unquoted off (and no, false) as false: `requantize: off`, as the README
    # writes it, was refused as "unknown value false; use one of: auto, off, ...".
    text = f"providers: {{a: {{type: local, requantize: {written}}}}}\ndefault_provider: a\n"
    assert load_config_text(text).providers["a"].requantize == "off"


def test_requantize_true_is_still_refused() -> None:
    [issue] = issues_of("providers: {a: {type: local, requantize: on}}\ndefault_provider: a\n")
    assert issue.location == "providers.a.requantize" and "auto, off" in issue.fix
