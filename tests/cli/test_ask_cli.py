"""``rolecall ask``: one routed call through the real adapters to the fake vendor servers."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from rolecall.cli import main
from rolecall.recording.store import open_store
from rolecall.sim import Fault, SimServer

KEY = "sk-ask-test-SECRET-0123456789"


@pytest.fixture
def sims() -> Iterator[tuple[SimServer, SimServer]]:
    with (
        SimServer("openai", models=("gpt-sim",), api_key=KEY) as gpt,
        SimServer("anthropic", models=("claude-sim",), reply="from claude") as claude,
    ):
        yield gpt, claude


@pytest.fixture
def workdir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sims: tuple[SimServer, SimServer]
) -> Path:
    gpt, claude = sims
    (tmp_path / "rolecall.yaml").write_text(
        f"""
providers:
  gpt: {{type: openai, model: gpt-sim, api_key: "${{OPENAI_API_KEY}}", base_url: "{gpt.base_url}",
         pricing: {{input_per_mtok: 1.0, output_per_mtok: 2.0}}}}
  claude: {{type: anthropic, model: claude-sim, api_key: test-key, base_url: "{claude.base_url}"}}
roles:
  coder: {{provider: gpt, fallback: [claude]}}
"""
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.delenv("ROLECALL_CONFIG", raising=False)
    return tmp_path


def _run(*args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_json_names_provider_model_usage_and_attempts(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run("ask", "coder", "say hi", "--json", capsys=capsys)
    assert code == 0
    data = json.loads(out)
    assert data["text"] == "Hello from the sim."
    assert (data["role"], data["provider"], data["model"]) == ("coder", "gpt", "gpt-sim")
    assert data["usage"]["output_tokens"] > 0
    assert data["cost_usd"] > 0
    assert data["attempts"] == [
        {
            "provider": "gpt",
            "attempt": 1,
            "outcome": "ok",
            "error_kind": None,
            "latency_ms": data["attempts"][0]["latency_ms"],
        }
    ]


def test_fallback_answers_and_the_call_is_recorded_as_a_run(
    workdir: Path, sims: tuple[SimServer, SimServer], capsys: pytest.CaptureFixture[str]
) -> None:
    gpt, _ = sims
    gpt.script(Fault("overloaded"), Fault("overloaded"), Fault("overloaded"))
    code, out, _ = _run("ask", "coder", "say hi", "--json", "--offline", capsys=capsys)
    assert code == 0
    data = json.loads(out)
    assert data["provider"] == "claude"
    assert data["text"] == "from claude"
    assert [a["outcome"] for a in data["attempts"]][-2:] == ["handover", "ok"]

    code, out, _ = _run("runs", "list", "--json", capsys=capsys)
    assert code == 0
    runs = json.loads(out)
    assert len(runs) == 1
    code, out, _ = _run("runs", "show", runs[0]["run_id"], "--json", capsys=capsys)
    task = json.loads(out)["tasks"][0]
    assert task["provider"] == "claude"
    assert [a["provider"] for a in task["attempts"]][-1] == "claude"


def test_every_provider_failing_exits_1_with_attempts(
    workdir: Path, sims: tuple[SimServer, SimServer], capsys: pytest.CaptureFixture[str]
) -> None:
    gpt, claude = sims
    gpt.set_faults(Fault("bad_request"))
    claude.set_faults(Fault("bad_request"))
    code, out, err = _run("ask", "coder", "hi", "--json", "--offline", capsys=capsys)
    assert code == 1
    data = json.loads(out)
    assert data["role"] == "coder"
    assert {a["provider"] for a in data["attempts"]} == {"gpt", "claude"}
    assert all(a["error_kind"] == "bad_request" for a in data["attempts"])
    assert "Traceback" not in err


def test_rejected_key_exits_3_and_never_prints_it(
    workdir: Path,
    sims: tuple[SimServer, SimServer],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    wrong = "sk-wrong-SECRET-abcdefghijklmnop"
    monkeypatch.setenv("OPENAI_API_KEY", wrong)
    gpt, _ = sims
    gpt.set_faults(Fault("auth", echo_key=True))
    code, out, err = _run("ask", "coder", "hi", capsys=capsys)
    assert code == 3
    assert "OPENAI_API_KEY" in err
    assert wrong not in out + err
    code, out, err = _run("ask", "coder", "hi", "--json", "--offline", capsys=capsys)
    assert code == 0
    assert wrong not in out + err


def test_usage_errors_exit_2_in_one_line(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run("ask", "nosuchrole", "hi", "--offline", capsys=capsys)
    assert code == 2
    assert "roles.nosuchrole" in err
    code, _, err = _run("ask", "coder", "   ", capsys=capsys)
    assert code == 2
    assert err.count("\n") == 1
    code, _, err = _run("ask", "coder", "hi", "--param", "oops", capsys=capsys)
    assert code == 2
    assert "KEY=VALUE" in err


@pytest.mark.parametrize("role", ["", "   "])
def test_blank_role_is_a_usage_error_naming_the_roles(
    workdir: Path,
    sims: tuple[SimServer, SimServer],
    capsys: pytest.CaptureFixture[str],
    role: str,
) -> None:
    config = workdir / "rolecall.yaml"
    config.write_text(config.read_text() + "default_provider: claude\n")  # serves any role
    code, out, err = _run("ask", role, "hi", "--offline", capsys=capsys)
    assert code == 2 and out == ""
    assert err.splitlines() == [
        "error: the role is empty: pass one of the configured roles: coder "
        "(e.g. rolecall ask coder PROMPT)"
    ]
    assert all(server.calls == 0 for server in sims)
    code, out, _ = _run("runs", "list", "--json", capsys=capsys)
    assert code == 0 and json.loads(out) == []


@pytest.mark.parametrize(
    ("pair", "expected"),
    [
        ("temperature=abc", "temperature must be a number from 0 to 2 (got 'abc')"),
        ("temperature=-5", "temperature must be a number from 0 to 2 (got -5)"),
        ("top_p=1.5", "top_p must be a number from 0 to 1 (got 1.5)"),
        ("max_tokens=-1", "max_tokens must be a whole number above 0 (got -1)"),
        ("max_tokens=1.5", "max_tokens must be a whole number above 0 (got 1.5)"),
        ("seed=.inf", "seed holds .nan or .inf, which no request can carry"),
    ],
)
def test_out_of_range_param_is_exit_2_before_any_call(
    workdir: Path,
    sims: tuple[SimServer, SimServer],
    capsys: pytest.CaptureFixture[str],
    pair: str,
    expected: str,
) -> None:
    code, out, err = _run("ask", "coder", "hi", "--offline", "--param", pair, capsys=capsys)
    assert code == 2 and out == ""
    [line] = err.splitlines()
    assert line.startswith(f"error: --param {pair}: {expected}; ")
    assert all(server.calls == 0 for server in sims)


def test_rejected_key_with_offline_exits_3(
    workdir: Path,
    sims: tuple[SimServer, SimServer],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    gpt, claude = sims
    gpt.set_faults(Fault("auth"))
    claude.set_faults(Fault("auth"))
    code, out, err = _run("ask", "coder", "hi", "--offline", capsys=capsys)
    assert code == 3 and out == ""
    assert "api_key of provider 'claude' was rejected" in err
    code, out, _ = _run("ask", "coder", "hi", "--offline", "--json", capsys=capsys)
    assert code == 3
    assert {a["error_kind"] for a in json.loads(out)["attempts"]} == {"auth"}
    claude.set_faults(Fault("overloaded"))  # one provider may answer later: the work failed
    code, _, _ = _run("ask", "coder", "hi", "--offline", capsys=capsys)
    assert code == 1


def test_unknown_param_is_exit_2_with_did_you_mean(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "rolecall.yaml"
    config.write_text(
        "providers:\n"
        "  a: {type: openai-compatible, model: m, base_url: 'http://127.0.0.1:9/v1'}\n"
        "roles:\n  coder: {provider: a}\n"
    )
    code = main(["ask", "coder", "hi", "-c", str(config), "--offline", "--param", "temprature=0.1"])
    err = capsys.readouterr().err
    assert code == 2
    assert "unknown parameter 'temprature'" in err and "did you mean 'temperature'" in err


def test_a_bedrock_provider_without_botocore_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import sys

    config = tmp_path / "rolecall.yaml"
    config.write_text(
        "providers:\n  aws: {type: bedrock, model: amazon.nova-pro-v1:0, region: us-east-1}\n"
        "roles:\n  coder: {provider: aws}\n"
    )
    monkeypatch.setitem(sys.modules, "botocore", None)  # as if rolecall[bedrock] were absent
    assert main(["ask", "-c", str(config), "--offline", "coder", "hi"]) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "error: the Bedrock provider needs the 'botocore' package: pip install 'rolecall[bedrock]'"
    ]


def test_an_unsupported_metrics_url_stops_ask_before_the_call(
    workdir: Path, sims: tuple[SimServer, SimServer], capsys: pytest.CaptureFixture[str]
) -> None:
    # Accepted, the call would be answered and its record lost with only a warning.
    config = workdir / "rolecall.yaml"
    config.write_text(config.read_text() + 'metrics: {url: "mongodb://x/y"}\n')
    code, out, err = _run("ask", "coder", "say hi", "--offline", capsys=capsys)
    assert code == 2 and out == ""
    assert "metrics.url (line 8): unsupported metrics store URL scheme 'mongodb:'" in err
    assert "use sqlite:///path/to/file.db or postgresql://user@host/dbname" in err
    assert all(server.calls == 0 for server in sims)


def test_the_answer_does_not_wait_for_a_store_another_process_holds(workdir: Path) -> None:
    store = workdir / ".rolecall" / "rolecall.db"
    open_store(f"sqlite:///{store}").close()
    holder = sqlite3.connect(store, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another process in the middle of a long write
    ask = subprocess.Popen(
        [sys.executable, "-m", "rolecall", "ask", "coder", "say hi"],
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "NO_COLOR": "1", "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        assert ask.stdout is not None
        answer = ask.stdout.readline()  # while the store is still held
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    _, err = ask.communicate(timeout=60)
    assert answer == b"Hello from the sim.\n" and ask.returncode == 0
    assert b"locked" not in err  # the recorder waited for the store and wrote the call
    with open_store(f"sqlite:///{store}", create=False) as metrics:
        assert [run.kind for run in metrics.runs()] == ["ask"]


def _ask_with_stdin(workdir: Path, data: bytes, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "rolecall", "ask", "coder", *args],
        cwd=workdir,
        input=data,
        capture_output=True,
        timeout=60,
        env={**os.environ, "NO_COLOR": "1", "PYTHONPATH": os.pathsep.join(sys.path)},
    )


def test_a_prompt_that_is_not_utf8_is_exit_2_before_any_call(
    workdir: Path, sims: tuple[SimServer, SimServer]
) -> None:
    gpt, _ = sims
    done = _ask_with_stdin(workdir, b"\xff\xfe not text", "-")
    assert done.returncode == 2
    assert (
        done.stderr == b"error: stdin is not UTF-8 text (byte 0xff at offset 0): pipe UTF-8 "
        b"text, e.g. through iconv -t UTF-8\n"
    )
    done = _ask_with_stdin(workdir, b"", os.fsdecode(b"caf\xe9"))  # a Latin-1 argument
    assert done.returncode == 2
    assert done.stderr.startswith(b"error: PROMPT is not UTF-8 text (at character 3)")
    assert gpt.calls == 0


def test_a_byte_order_mark_on_stdin_is_not_sent(
    workdir: Path, sims: tuple[SimServer, SimServer]
) -> None:
    gpt, _ = sims
    done = _ask_with_stdin(workdir, "\ufeffsay hi".encode(), "-")
    assert done.returncode == 0, done.stderr
    [request] = [r for r in gpt.requests if r.path.endswith("/chat/completions")]
    assert request.json["messages"][-1]["content"] == "say hi"
