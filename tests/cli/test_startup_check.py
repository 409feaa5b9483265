"""The startup credential check stops only on wrong credentials, through ``rolecall ask``.

A rejected key, a missing permission or an unknown model of any configured provider
exits 3 with the fix; a timeout, 5xx, 429 or network error during the check is one
warning naming the provider, which starts in cooldown while the others answer.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from rolecall.cli import main
from rolecall.sim import Fault, SimServer

KEY = "sk-startup-test-SECRET-0123456789"
WRONG = "sk-wrong-key-SECRET-9876543210"


@pytest.fixture
def sims() -> Iterator[tuple[SimServer, SimServer, SimServer]]:
    with (
        SimServer("openai", models=("gpt-sim",), api_key=KEY, reply="from gpt") as gpt,
        SimServer("anthropic", models=("claude-sim",), api_key=KEY, reply="from claude") as cl,
        SimServer("google", models=("gemini-sim",), api_key=KEY, reply="from gemini") as gem,
    ):
        yield gpt, cl, gem


def _write(
    tmp_path: Path,
    sims: tuple[SimServer, SimServer, SimServer],
    *,
    claude_key: str = KEY,
    gemini_key: str = KEY,
    extra: str = "",
) -> Path:
    gpt, claude, gemini = sims
    path = tmp_path / "rolecall.yaml"
    path.write_text(
        f"""
providers:
  gpt: {{type: openai, model: gpt-sim, api_key: {KEY}, base_url: "{gpt.base_url}"}}
  claude: {{type: anthropic, model: claude-sim, api_key: {claude_key},
           base_url: "{claude.base_url}"}}
  gemini: {{type: google, model: gemini-sim, api_key: {gemini_key},
           base_url: "{gemini.base_url}"}}
roles:
  coder: {{provider: gpt, fallback: [claude]}}
retry: {{max_attempts: 1, initial_backoff: 10ms}}
metrics: {{url: "sqlite:///{tmp_path}/rc.db", runs_dir: "{tmp_path}/runs"}}
{extra}
"""
    )
    return path


def _ask(path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str, str]:
    code = main(["ask", "coder", "say hi", "-c", str(path), *extra])
    out, err = capsys.readouterr()
    return code, out, err


def _warnings(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("warning:")]


def test_fallback_503_at_startup_is_one_warning_and_the_primary_answers(
    tmp_path: Path,
    sims: tuple[SimServer, SimServer, SimServer],
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, claude, _ = sims
    claude.script_models(Fault("overloaded"))  # the model-list call answers 503
    code, out, err = _ask(_write(tmp_path, sims), capsys, "--json")
    assert code == 0, err
    reply = json.loads(out)
    assert (reply["provider"], reply["text"]) == ("gpt", "from gpt")
    [warning] = _warnings(err)
    assert "'claude'" in warning and "overloaded" in warning and "cools down" in warning
    assert "error:" not in err and KEY not in err
    assert claude.model_calls == 1 and claude.calls == 0


def test_primary_unreachable_at_startup_hands_the_call_to_the_fallback(
    tmp_path: Path,
    sims: tuple[SimServer, SimServer, SimServer],
    capsys: pytest.CaptureFixture[str],
) -> None:
    gpt, _, _ = sims
    gpt.script_models(Fault("server"))
    code, out, err = _ask(_write(tmp_path, sims), capsys, "--json")
    assert code == 0, err
    assert json.loads(out)["provider"] == "claude"  # gpt is cooling down: not called
    assert gpt.calls == 0
    [warning] = _warnings(err)
    assert "'gpt'" in warning and "server" in warning


def test_check_timeout_is_a_warning_naming_credential_check_timeout(
    tmp_path: Path,
    sims: tuple[SimServer, SimServer, SimServer],
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, claude, _ = sims
    claude.script_models(Fault("timeout", delay=30))
    path = _write(tmp_path, sims, extra="credential_check_timeout: 300ms")
    code, out, err = _ask(path, capsys)
    assert code == 0, err
    assert out.strip() == "from gpt"
    [warning] = _warnings(err)
    assert "'claude'" in warning and "credential_check_timeout" in warning


def test_rate_limited_check_is_a_warning(
    tmp_path: Path,
    sims: tuple[SimServer, SimServer, SimServer],
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, claude, _ = sims
    claude.script_models(Fault("rate_limit", retry_after=30))
    code, _, err = _ask(_write(tmp_path, sims), capsys)
    assert code == 0, err
    [warning] = _warnings(err)
    assert "'claude'" in warning and "rate_limit" in warning and "30 s" in warning


def test_wrong_key_of_a_fallback_exits_3_with_the_fix(
    tmp_path: Path,
    sims: tuple[SimServer, SimServer, SimServer],
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = _ask(_write(tmp_path, sims, claude_key=WRONG), capsys)
    assert code == 3
    assert out == ""
    assert "claude" in err and "rejected" in err and "set a valid key" in err
    assert WRONG not in err and "Traceback" not in err


def test_wrong_key_of_a_provider_no_role_uses_exits_3(
    tmp_path: Path,
    sims: tuple[SimServer, SimServer, SimServer],
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = _ask(_write(tmp_path, sims, gemini_key=WRONG), capsys)
    assert code == 3
    assert "gemini" in err and WRONG not in err


def test_wrong_key_and_a_503_elsewhere_still_exits_3(
    tmp_path: Path,
    sims: tuple[SimServer, SimServer, SimServer],
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, claude, _ = sims
    claude.script_models(Fault("overloaded"))
    code, _, err = _ask(_write(tmp_path, sims, gemini_key=WRONG), capsys)
    assert code == 3
    assert "gemini" in err


def test_unknown_model_exits_3(
    tmp_path: Path,
    sims: tuple[SimServer, SimServer, SimServer],
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = _write(tmp_path, sims)
    path.write_text(path.read_text().replace("model: claude-sim", "model: claude-nosuch"))
    code, _, err = _ask(path, capsys)
    assert code == 3
    assert "claude-nosuch" in err and "check the model name" in err


def test_missing_local_model_file_exits_3_naming_the_file_and_its_fix(
    tmp_path: Path,
    sims: tuple[SimServer, SimServer, SimServer],
    capsys: pytest.CaptureFixture[str],
) -> None:
    missing = tmp_path / "gone.gguf"
    extra = f'  local: {{type: local, model_path: "{missing}"}}'
    path = _write(tmp_path, sims)
    path.write_text(path.read_text().replace("roles:", extra + "\nroles:", 1))
    code, out, err = _ask(path, capsys)
    assert code == 3 and out == ""
    line = err.splitlines()[-1]
    assert line.strip().startswith(f"local: model_path '{missing}' does not exist: point")
    assert "check the model name" not in err and "Traceback" not in err


def test_config_validate_reports_an_unchecked_provider_as_a_warning(
    tmp_path: Path,
    sims: tuple[SimServer, SimServer, SimServer],
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, claude, _ = sims
    path = _write(tmp_path, sims)
    claude.script_models(Fault("overloaded"))
    code = main(["config", "validate", str(path)])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    assert "config OK" in out
    [warning] = _warnings(err)
    assert "claude" in warning and "could not be checked" in warning
    claude.script_models(Fault("overloaded"))
    code = main(["config", "validate", str(path), "--json"])
    data = json.loads(capsys.readouterr().out)
    assert code == 0
    assert data["credential_check"] == "ok" and data["credentials"] == []
    assert [e["provider"] for e in data["credentials_unchecked"]] == ["claude"]
