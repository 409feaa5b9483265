"""``rolecall config validate | show | schema`` as a user runs them."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result
from jsonschema import Draft202012Validator

from rolecall.cli import cli, main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
EXAMPLE_ENV = {
    "OPENAI_API_KEY": "sk-test-openai-0000000000",
    "ANTHROPIC_API_KEY": "sk-ant-test-0000000000",
    "GOOGLE_API_KEY": "test-google-key-000000",
    "GEMINI_API_KEY": "test-gemini-key-000000",
}

TEN_MISTAKES = """\
providers:
  gpt:
    type: opneai                          # M providers.gpt.type
    model: gpt-4.1
    api_key: ${OPENAI_API_KEY}
  claude:
    type: anthropic
    model: claude-sonnet-4-5
    api_key: ${OPENAI_API_KEY}
  gemini:
    type: google
    modle: gemini-2.5-pro                 # M providers.gemini.modle
    model: gemini-2.5-pro
    api_key: ${ROLECALL_TEST_UNSET_KEY}   # M providers.gemini.api_key
    params: {top_p: 1.5}                  # M providers.gemini.params.top_p
    timeout: 5 sec                        # M providers.gemini.timeout
  Local_Model:                            # M providers.Local_Model
    type: local
roles:
  coder:
    provider: gpt
    api_key: ${OPENAI_API_KEY}            # M roles.coder.api_key
    fallback: [claude, gpt]               # M roles.coder.fallback[1]
  reviewer:
    strategy: weighted                    # M roles.reviewer.strategy
    providers: [claude]
default_provider: gemni                   # M default_provider
"""


# CliRunner removes variables set to None.
MISTAKES_ENV: dict[str, str | None] = {
    "OPENAI_API_KEY": "sk-test-1234567890",
    "ROLECALL_TEST_UNSET_KEY": None,
}


def marks(text: str) -> list[tuple[str, int]]:
    return [
        (match.group(1), number)
        for number, row in enumerate(text.splitlines(), start=1)
        if (match := re.search(r"# M (\S+)", row))
    ]


def invoke(args: list[str], env: Mapping[str, str | None] | None = None) -> Result:
    result = CliRunner().invoke(cli, args, env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output
    return result


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "rolecall.yaml"
    path.write_text((EXAMPLES / "three-vendors.yaml").read_text())
    return path


# ---- validate --------------------------------------------------------------------------


def test_ten_mistakes_all_reported_with_lines_and_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(TEN_MISTAKES)
    result = invoke(["config", "validate", "--offline", "-c", str(path)], MISTAKES_ENV)
    assert result.exit_code == 2
    lines = result.output.splitlines()
    expected = marks(TEN_MISTAKES)
    assert len(expected) == 10
    for location, line in expected:
        prefix = f"{location} (line {line}): "
        assert any(row.startswith(prefix) for row in lines), (prefix, result.output)
    assert lines[-1] == f"config invalid: 10 problems in {path}"
    assert "did you mean 'gemini'?" in result.output


def test_invalid_config_as_json(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(TEN_MISTAKES)
    result = invoke(["config", "validate", "--offline", "--json", "-c", str(path)], MISTAKES_ENV)
    assert result.exit_code == 2
    report = json.loads(result.stdout)
    assert report["valid"] is False
    assert len(report["errors"]) == 10
    assert set(report["errors"][0]) == {"location", "line", "problem", "fix"}
    assert {(e["location"], e["line"]) for e in report["errors"]} == set(marks(TEN_MISTAKES))


def test_a_file_broken_on_every_line_shows_a_hundred_problems_and_the_count(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "broken.yaml"
    entries = "".join(f"  p{i}: {{type: local, timeout: soon}}\n" for i in range(250))
    path.write_text(f"providers:\n{entries}default_provider: p0\n")
    result = invoke(["config", "validate", "--offline", "-c", str(path)], {})
    assert result.exit_code == 2
    lines = result.output.splitlines()
    assert len(lines) == 102
    assert lines[-2:] == [
        "... 150 more problems (--json lists them all)",
        f"config invalid: 250 problems in {path}",
    ]
    result = invoke(["config", "validate", "--offline", "--json", "-c", str(path)], {})
    assert len(json.loads(result.stdout)["errors"]) == 250
    # Every other command stops on the config with a shorter list.
    assert main(["ask", "-c", str(path), "coder", "hi"]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 22
    assert err.splitlines()[-1] == "  ... 230 more: `rolecall config validate --json` lists them"


def test_valid_config(config_file: Path) -> None:
    result = invoke(["config", "validate", "--offline", "-c", str(config_file)], EXAMPLE_ENV)
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1].startswith("config OK: 4 providers, 4 roles")
    result = invoke(
        ["config", "validate", "--offline", "--json", "-c", str(config_file)], EXAMPLE_ENV
    )
    report = json.loads(result.stdout)
    assert report["valid"] is True and report["errors"] == [] and report["warnings"] == []
    assert report["credential_check"] == "skipped"


def test_warnings_are_printed_but_do_not_fail(tmp_path: Path) -> None:
    path = tmp_path / "rolecall.yaml"
    path.write_text("providers:\n  local: {type: local}\nroles:\n  coder: {provider: local}\n")
    result = invoke(["config", "validate", "--offline", "-c", str(path)])
    assert result.exit_code == 0
    assert result.output.startswith("warning: roles (line 3): no provider for built-in roles")


def test_no_config_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = invoke(["config", "validate", "--offline"], env={"ROLECALL_CONFIG": None})
    assert result.exit_code == 2
    assert "run `rolecall init` or pass -c FILE" in result.output


def test_config_found_through_the_environment(config_file: Path) -> None:
    env = {**EXAMPLE_ENV, "ROLECALL_CONFIG": str(config_file)}
    assert invoke(["config", "validate", "--offline"], env).exit_code == 0


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs or /dev/zero here")
@pytest.mark.parametrize("special", ["/dev/zero", "a FIFO", "a FIFO as .env"])
def test_validate_refuses_a_device_or_fifo_at_once(tmp_path: Path, special: str) -> None:
    import resource

    path = tmp_path / "rolecall.yaml"
    if special == "/dev/zero":
        path = Path("/dev/zero")
    elif special == "a FIFO":
        os.mkfifo(path)
    else:
        path.write_text("providers:\n  local: {type: local}\ndefault_provider: local\n")
        os.mkfifo(tmp_path / ".env")

    def bounded_memory() -> None:  # reading /dev/zero whole must fail fast, not swap
        resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))

    try:
        done = subprocess.run(
            [sys.executable, "-m", "rolecall", "config", "validate", "--offline", str(path)],
            capture_output=True,
            text=True,
            env={"PATH": "/usr/bin:/bin"},
            timeout=30,
            preexec_fn=bounded_memory,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"config validate hung on {special}")
    output = done.stdout + done.stderr
    assert "Traceback" not in output
    if special == "a FIFO as .env":
        assert done.returncode == 0
        assert f"warning: .env: {tmp_path / '.env'} is a FIFO (named pipe), not a regular" in output
    else:
        assert done.returncode == 2
        assert f"<file>: {path} is a " in output and "not a config file" in output


def test_usage_errors_exit_2() -> None:
    assert invoke(["config", "validate", "--bogus"]).exit_code == 2
    assert invoke(["config", "nope"]).exit_code == 2


# ---- credentials --------------------------------------------------------------------------


def test_credential_check_unavailable_behaves_as_offline(
    config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the import raises ImportError
    monkeypatch.setitem(sys.modules, "rolecall.routing.credentials", None)
    result = invoke(["config", "validate", "-c", str(config_file)], EXAMPLE_ENV)
    assert result.exit_code == 0
    assert "credential check unavailable" in result.output
    result = invoke(["config", "validate", "--json", "-c", str(config_file)], EXAMPLE_ENV)
    assert json.loads(result.stdout)["credential_check"] == "unavailable"


class _ModelsHandler(BaseHTTPRequestHandler):
    good_key = "good-key-0123456789"

    def do_GET(self) -> None:
        if self.headers.get("Authorization") == f"Bearer {self.good_key}":
            status, body = 200, {"object": "list", "data": [{"id": "m1", "object": "model"}]}
        else:
            # Real vendors echo the key they rejected; it must not reach the user.
            echoed = self.headers.get("Authorization", "")
            body = {"error": {"message": f"Incorrect API key provided: {echoed}", "code": "x"}}
            status = 401
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def models_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ModelsHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_a_missing_provider_package_is_a_setup_error_not_a_rejected_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As `rolecall ask` does: exit 2 with the pip command, never 3 ("credentials rejected").
    config = tmp_path / "rolecall.yaml"
    config.write_text(
        "providers:\n  aws: {type: bedrock, model: amazon.nova-pro-v1:0, region: us-east-1,"
        " api_key: test-key}\nroles:\n  coder: {provider: aws}\n"
    )
    monkeypatch.setitem(sys.modules, "botocore", None)  # as if rolecall[bedrock] were absent
    result = invoke(["config", "validate", "-c", str(config)])
    assert result.exit_code == 2
    assert "needs the 'botocore' package: pip install 'rolecall[bedrock]'" in result.output


def test_credential_check_against_a_local_server(tmp_path: Path, models_server: str) -> None:
    pytest.importorskip("rolecall.routing.credentials")
    path = tmp_path / "rolecall.yaml"
    path.write_text(
        "providers:\n"
        f"  box: {{type: openai-compatible, model: m1, base_url: '{models_server}', "
        "api_key: '${BOX_KEY}'}\n"
        "default_provider: box\n"
    )
    env = {"NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
    good = invoke(
        ["config", "validate", "-c", str(path)], {**env, "BOX_KEY": _ModelsHandler.good_key}
    )
    assert good.exit_code == 0, good.output
    assert good.output.strip().startswith("config OK: 1 provider, 0 roles")
    bad_key = f"sk-test-REJECTED-{uuid.uuid4().hex}"
    bad = invoke(["config", "validate", "-c", str(path)], {**env, "BOX_KEY": bad_key})
    assert bad.exit_code == 3, bad.output
    assert bad.output.startswith("box: ")
    assert "$BOX_KEY" in bad.output
    assert bad_key not in bad.output
    as_json = invoke(["config", "validate", "--json", "-c", str(path)], {**env, "BOX_KEY": bad_key})
    assert as_json.exit_code == 3
    report = json.loads(as_json.stdout)
    assert report["credential_check"] == "failed"
    assert [c["provider"] for c in report["credentials"]] == ["box"]
    assert report["credentials"][0]["kind"] == "auth"
    assert bad_key not in as_json.output


# ---- show ---------------------------------------------------------------------------------


def test_show_prints_the_resolved_config_with_keys_masked(config_file: Path) -> None:
    result = invoke(["config", "show", "-c", str(config_file)], EXAMPLE_ENV)
    assert result.exit_code == 0
    shown = yaml.safe_load(result.stdout)
    assert shown["providers"]["gpt"]["api_key"] == "***"
    assert shown["providers"]["gpt"]["timeout"] == 60.0
    assert shown["providers"]["gemini"]["max_concurrency"] == 8  # a default, filled in
    assert shown["retry"]["max_backoff"] == 30.0
    as_json = json.loads(
        invoke(["config", "show", "--json", "-c", str(config_file)], EXAMPLE_ENV).stdout
    )
    assert as_json == shown


def test_show_masks_credential_headers_and_url_passwords(tmp_path: Path) -> None:
    path = tmp_path / "rolecall.yaml"
    path.write_text(
        "providers:\n"
        "  box: {type: openai-compatible, base_url: 'http://127.0.0.1:9/v1', "
        "headers: {X-Api-Key: abc-hidden, X-Title: rolecall}}\n"
        "default_provider: box\n"
        "metrics: {url: 'postgresql://app:pa55word@db.internal/rolecall'}\n"
    )
    shown = yaml.safe_load(invoke(["config", "show", "-c", str(path)]).stdout)
    assert shown["providers"]["box"]["headers"] == {"X-Api-Key": "***", "X-Title": "rolecall"}
    assert shown["metrics"]["url"] == "postgresql://app:***@db.internal/rolecall"


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///{tmp}/abs.db",
        "sqlite:///relative.db",
        "postgresql://app@db.internal//rolecall?sslmode=require",
    ],
)
def test_show_prints_a_metrics_url_that_pastes_back_unchanged(tmp_path: Path, url: str) -> None:
    url = url.format(tmp=tmp_path)
    path = tmp_path / "rolecall.yaml"
    path.write_text(
        "providers:\n"
        "  box: {type: openai-compatible, base_url: 'http://127.0.0.1:9/v1'}\n"
        "default_provider: box\n"
        f"metrics: {{url: '{url}'}}\n"
    )
    expected = url.replace("app@", "***@")  # a lone user name is a token: masked
    shown = yaml.safe_load(invoke(["config", "show", "-c", str(path)]).stdout)
    assert shown["metrics"]["url"] == expected
    as_json = json.loads(invoke(["config", "show", "--json", "-c", str(path)]).stdout)
    assert as_json["metrics"]["url"] == expected


def test_a_postgres_role_name_in_metrics_url_is_not_masked_in_other_text(
    tmp_path: Path,
) -> None:
    """postgresql://postgres@host/db names a role, not a token: the word "postgres"
    stays readable in the URL's scheme, in messages and in answers."""
    from rolecall._secrets import forget_secret, redact, redact_answer

    path = tmp_path / "rolecall.yaml"
    path.write_text(
        "providers:\n"
        "  box: {type: openai-compatible, base_url: 'http://127.0.0.1:9/v1'}\n"
        "default_provider: box\n"
        "metrics: {url: 'postgresql://postgres@db.internal/metrics'}\n"
    )
    try:
        shown = yaml.safe_load(invoke(["config", "show", "-c", str(path)]).stdout)
        assert shown["metrics"]["url"] == "postgresql://***@db.internal/metrics"
        assert redact_answer("run psql -U postgres") == "run psql -U postgres"
        assert redact("postgresql://db/x") == "postgresql://db/x"
    finally:
        forget_secret("postgres")


@pytest.mark.parametrize("scheme", ["redis", "rediss"])
def test_a_redis_user_name_in_redis_url_is_not_masked_in_other_text(
    tmp_path: Path, scheme: str
) -> None:
    """redis://default@host names Redis's ACL user (redis-py sends no AUTH without a
    password): "default" stays readable in ``default_provider``, messages and answers,
    while a password alone (redis://:pw@host) is still a secret."""
    from rolecall._secrets import forget_secret, redact, redact_answer

    path = tmp_path / "rolecall.yaml"
    path.write_text(
        "providers:\n"
        "  box: {type: openai-compatible, base_url: 'http://127.0.0.1:9/v1'}\n"
        "default_provider: box\n"
        f"state: {{redis_url: '{scheme}://default@cache.internal:6379/0'}}\n"
    )
    try:
        shown = yaml.safe_load(invoke(["config", "show", "-c", str(path)]).stdout)
        assert shown["default_provider"] == "box"
        assert shown["state"]["redis_url"] == f"{scheme}://***@cache.internal:6379/0"
        assert redact_answer("the default provider") == "the default provider"
        assert redact("AUTH default failed") == "AUTH default failed"
    finally:
        forget_secret("default")
    path.write_text(path.read_text().replace("//default@", "//:Redis-Only-Pa55@"))
    try:
        invoke(["config", "show", "-c", str(path)])
        assert redact_answer("pw Redis-Only-Pa55") == "pw ***"
    finally:
        forget_secret("Redis-Only-Pa55")


def test_show_on_an_invalid_config_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(TEN_MISTAKES)
    result = invoke(["config", "show", "-c", str(path)])
    assert result.exit_code == 2
    assert "providers.gpt.type (line 3): unknown provider type 'opneai'" in result.output


# ---- secrets ------------------------------------------------------------------------------


def test_a_key_from_the_environment_never_appears_in_any_output(tmp_path: Path) -> None:
    key = f"sk-test-SECRET-{uuid.uuid4().hex}"
    env = {**EXAMPLE_ENV, "OPENAI_API_KEY": key}
    valid = tmp_path / "valid.yaml"
    valid.write_text((EXAMPLES / "three-vendors.yaml").read_text())
    invalid = tmp_path / "invalid.yaml"
    invalid.write_text(
        TEN_MISTAKES + "failover_within: ${OPENAI_API_KEY}\nmetrics: {url: '${OPENAI_API_KEY}'}\n"
    )
    runs = [
        ["config", "validate", "--offline", "-c", str(valid)],
        ["config", "validate", "--offline", "--json", "-c", str(valid)],
        ["config", "show", "-c", str(valid)],
        ["config", "show", "--json", "-c", str(valid)],
        ["config", "schema"],
        ["config", "validate", "--offline", "-c", str(invalid)],
        ["config", "validate", "--offline", "--json", "-c", str(invalid)],
        ["config", "show", "-c", str(invalid)],
    ]
    for args in runs:
        result = invoke(args, env)
        assert result.exit_code in (0, 2)
        assert key not in result.output, args
        assert key[:24] not in result.output, args
    report = json.loads(invoke(runs[6], env).stdout)
    assert any(e["location"] == "failover_within" for e in report["errors"])


def test_a_long_key_in_the_wrong_place_is_not_shown_in_part(tmp_path: Path) -> None:
    # Values are cut short in problems; a key cut short would escape the masking.
    key = f"sk-test-SECRET-{uuid.uuid4().hex}{uuid.uuid4().hex}"
    path = tmp_path / "rolecall.yaml"
    path.write_text(
        "providers:\n"
        "  a: {type: openai, model: m, params: {temperature: '${OPENAI_API_KEY}'}}\n"
        "  b: {type: bedrock, model: m, region: '${AWS_SECRET_ACCESS_KEY}'}\n"
        "  c: {type: openai, model: m, params: {seed: '${API_TOKEN}'}}\n"
        "retry: {max_attempts: '${OPENAI_API_KEY}'}\n"
        "default_provider: a\n"
    )
    digits = "1234567890" * 4
    env = {"OPENAI_API_KEY": key, "AWS_SECRET_ACCESS_KEY": key, "API_TOKEN": digits}
    for args in (["config", "validate", "--offline"], ["config", "show"]):
        result = invoke([*args, "-c", str(path)], env)
        assert result.exit_code == 2
        for location in ("temperature", "region", "seed", "max_attempts"):
            assert location in result.output
        assert key[:20] not in result.output and digits[:16] not in result.output


def test_a_fresh_process_never_prints_the_key_either(tmp_path: Path) -> None:
    key = f"sk-test-SECRET-{uuid.uuid4().hex}"
    path = tmp_path / "rolecall.yaml"
    path.write_text(
        "providers:\n  gpt: {type: openai, model: m, api_key: '${OPENAI_API_KEY}', "
        "timeout: '${OPENAI_API_KEY}'}\ndefault_provider: gpt\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "rolecall", "config", "validate", "--offline", "-c", str(path)],
        capture_output=True,
        text=True,
        env={"OPENAI_API_KEY": key, "PATH": "/usr/bin:/bin"},
        timeout=60,
    )
    assert done.returncode == 2
    output = done.stdout + done.stderr
    assert "providers.gpt.timeout (line 2): invalid duration '***'" in output
    assert key not in output and "Traceback" not in output


# ---- schema -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    result = CliRunner().invoke(cli, ["config", "schema"])
    assert result.exit_code == 0
    document: dict[str, Any] = json.loads(result.stdout)
    Draft202012Validator.check_schema(document)
    return document


def test_schema_takes_json_as_every_data_command_does(schema: dict[str, Any]) -> None:
    result = CliRunner().invoke(cli, ["config", "schema", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == schema


def test_schema_header(schema: dict[str, Any]) -> None:
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] == "rolecall configuration"
    assert schema["additionalProperties"] is False
    for model in ("VendorAPIConfig", "OpenAICompatibleConfig", "LocalProviderConfig"):
        assert schema["$defs"][model]["additionalProperties"] is False


@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.glob("*.yaml")))
def test_schema_accepts_every_example(schema: dict[str, Any], example: str) -> None:
    Draft202012Validator(schema).validate(yaml.safe_load((EXAMPLES / example).read_text()))


def test_schema_accepts_both_spellings_and_rejects_unknown_keys(schema: dict[str, Any]) -> None:
    validator = Draft202012Validator(schema)
    ok = {
        "schema_version": 1,
        "x-defaults": {"anything": True},
        "providers": {
            "a": {"type": "openai", "model": "m", "endpoint": "http://h/v1", "parameters": {}},
            "b": {"type": "openai", "model": "m", "base_url": "http://h/v1", "params": {}},
        },
        "roles": {"coder": {"provider": "a", "parameters": {"temperature": 0.1}}},
        "retry": {"initial_backoff": "500ms", "max_backoff": 30},
    }
    validator.validate(ok)
    for bad in (
        {**ok, "providrs": {}},
        {**ok, "providers": {"a": {"type": "openai", "modle": "m"}}},
        {**ok, "providers": {"a": {"type": "opneai"}}},
        {**ok, "retry": {"initial_backoff": "soon"}},
    ):
        assert list(validator.iter_errors(bad)), bad


def test_schema_help_mentions_the_language_server_comment() -> None:
    result = invoke(["config", "schema", "--help"])
    assert "# yaml-language-server: $schema=rolecall.schema.json" in result.output


def test_schema_in_a_fresh_process() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "rolecall", "config", "schema"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["title"] == "rolecall configuration"


def test_missing_extra_exits_2_naming_the_pip_command(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # as if rolecall[gateway] were absent
    code = main(["serve", "--offline"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.splitlines() == [
        "error: rolecall serve needs the 'uvicorn' package: pip install 'rolecall[gateway]'"
    ]


# ---- config validate FILE, parameter names, base_url (positional file and provider checks) ----

PARAM_TYPO = """\
providers:
  gpt: {type: openai-compatible, model: m, base_url: "http://127.0.0.1:9/v1",
        params: {temp: 0.2}}
default_provider: gpt
"""


def test_validate_takes_the_file_as_an_argument(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "elsewhere.yaml"
    path.write_text(PARAM_TYPO)
    assert main(["config", "validate", str(path), "--offline"]) == 0
    out = capsys.readouterr().out
    assert "warning: providers.gpt.params.temp (line 3)" in out
    assert "did you mean 'temperature'?" in out and "config OK" in out
    assert main(["config", "validate", "--offline", "-c", str(path), str(path)]) == 0
    capsys.readouterr()
    assert main(["config", "validate", "--offline", "-c", str(path), "other.yaml"]) == 2
    assert "two config files given" in capsys.readouterr().err


def test_validate_reports_a_base_url_without_scheme(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "rolecall.yaml"
    path.write_text(PARAM_TYPO.replace("http://127.0.0.1:9/v1", "127.0.0.1:9/v1"))
    assert main(["config", "validate", str(path), "--offline"]) == 2
    out = capsys.readouterr().out
    assert "providers.gpt.base_url (line 2): base_url '127.0.0.1:9/v1' must start with" in out
    assert "e.g. http://127.0.0.1:9/v1" in out


def test_unknown_param_is_not_sent_and_the_call_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from rolecall.sim import SimServer

    with SimServer("openai", api_key=None, models=("m",)) as sim:
        path = tmp_path / "rolecall.yaml"
        text = PARAM_TYPO.replace("http://127.0.0.1:9/v1", sim.base_url)
        path.write_text(text.replace("temp: 0.2", "temp: 0.2, top_p: 0.5"))
        # A typo in the config: warned about with the near name, and not sent.
        code = main(["ask", "coder", "hi", "-c", str(path)])
        _, err = capsys.readouterr()
        assert code == 0, err
        [request] = [r for r in sim.requests if r.path.endswith("/chat/completions")]
        assert request.json["top_p"] == 0.5
        assert "temp" not in request.json
        lines = [line for line in err.splitlines() if "is not sent" in line]
        assert any("'temp'" in line and "'temperature'" in line for line in lines)
        # A typo in the call itself: bad input, refused before any provider is called.
        code = main(["ask", "coder", "hi", "-c", str(path), "--param", "tempreture=0.1"])
        _, err = capsys.readouterr()
        assert code == 2
        assert "'tempreture'" in err and "'temperature'" in err
        assert len([r for r in sim.requests if r.path.endswith("/chat/completions")]) == 1
