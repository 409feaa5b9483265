"""``rolecall sim``: start, print URLs and a config snippet, take faults, stop on Ctrl-C."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from sim_helpers import KEY, MESSAGES

from discover_helpers import ModelServer
from rolecall.cli import main
from rolecall.cli.sim import PROTOCOLS
from rolecall.config.schema import RolecallConfig
from rolecall.sim import SimServer


def _read_banner(proc: subprocess.Popen[str]) -> str:
    """stdout up to and including the 'Queue faults' line."""
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith("Queue faults:"):
            return "".join(lines)
    proc.kill()
    raise AssertionError(f"no banner from rolecall sim; got {''.join(lines)!r}")


def test_sim_command_serves_until_ctrl_c() -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "rolecall", "sim", "--protocol", "all", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        banner = _read_banner(proc)
        pattern = r"^\s+(openai|anthropic|google|vertex|bedrock)\s+(http://\S+)$"
        urls = dict(re.findall(pattern, banner, re.M))
        assert set(urls) == {"openai", "anthropic", "google", "vertex", "bedrock"}
        assert urls["openai"].endswith("/v1")

        snippet = banner.split("Paste into rolecall.yaml:")[1].split("Queue faults:")[0]
        config = RolecallConfig.model_validate(yaml.safe_load(snippet))
        assert config.providers["sim-google"].base_url == urls["google"]
        vertex = config.providers["sim-vertex"]
        assert (vertex.base_url, getattr(vertex, "project", None)) == (
            urls["vertex"],
            "sim-project",
        )

        chat = {"model": "sim-model", "messages": MESSAGES}
        headers = {"authorization": f"Bearer {KEY}"}
        with httpx.Client(timeout=5) as client:
            ok = client.post(f"{urls['openai']}/chat/completions", json=chat, headers=headers)
            assert ok.json()["choices"][0]["message"]["content"] == "Hello from the sim."

            assert main(["sim", "script", "--url", urls["openai"], "rate_limit:retry_after=4"]) == 0
            limited = client.post(f"{urls['openai']}/chat/completions", json=chat, headers=headers)
            assert limited.status_code == 429 and limited.headers["retry-after"] == "4"
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            _, stderr = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert proc.returncode == 0
    assert "Traceback" not in stderr
    assert "sim stopped" in stderr
    assert "POST /v1/chat/completions -> 429" in stderr  # each request is logged


def test_script_stats_and_clear_against_a_running_sim(capsys: pytest.CaptureFixture[str]) -> None:
    with SimServer("google") as server:
        assert main(["sim", "script", "--url", server.base_url, "overloaded", "reset"]) == 0
        assert server.pending == 2
        assert main(["sim", "script", "--always", "--url", server.base_url, "auth"]) == 0
        assert main(["sim", "stats", "--url", server.root_url]) == 0
        assert '"sticky": [{"kind": "auth"}]' in capsys.readouterr().out
        assert main(["sim", "clear", "--url", server.root_url]) == 0
        assert server.pending == 0


def test_the_sim_commands_that_print_json_take_json(capsys: pytest.CaptureFixture[str]) -> None:
    # Every command that prints data takes --json; these print JSON either way.
    with SimServer("openai") as server:
        for args in (["script", "ok"], ["stats"], ["clear"]):
            command = ["sim", args[0], "--json", "--url", server.root_url, *args[1:]]
            assert main(command) == 0, args
            assert isinstance(json.loads(capsys.readouterr().out), dict)


def test_script_errors_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    assert main(["sim", "script", "--url", f"http://127.0.0.1:{free_port}", "ok"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: cannot reach a sim") and err.count("\n") == 1

    with SimServer("openai") as server:
        assert main(["sim", "script", "--url", server.root_url, "explode"]) == 2
    err = capsys.readouterr().err
    assert "unknown fault kind 'explode'" in err and "Traceback" not in err


@contextlib.contextmanager
def _taken_after_a_free_port() -> Iterator[int]:
    """A listening port whose lower neighbour was free a moment ago."""
    for _ in range(50):
        with socket.socket() as free:
            free.bind(("127.0.0.1", 0))
            port = free.getsockname()[1]
            with socket.socket() as busy:
                try:
                    busy.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
                busy.listen()
                free.close()
                yield port + 1
                return
    raise AssertionError("no two neighbouring free ports on 127.0.0.1")


def test_control_commands_name_an_address_that_is_not_a_sim(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for url in ("http://[::1", "http://127.0.0.1:port", "http://127.0.0.1:99999", "ftp://host"):
        assert main(["sim", "stats", "--url", url]) == 2, url
        err = capsys.readouterr().err
        assert err == f"error: --url {url!r} is not a URL; use the sim's address, e.g. " + (
            "http://127.0.0.1:8080\n"
        )
    # Another program's web server: JSON that is not the sim's on GET, a 500 on POST.
    with ModelServer("/_sim/stats", "some other service") as other:
        address = f"127.0.0.1:{other.port}"
        for args in (["stats"], ["clear"], ["script", "ok"]):
            assert main(["sim", *args[:1], "--url", f"http://{address}", *args[1:]]) == 1
            err = capsys.readouterr().err
            assert err.startswith(f"error: {address} is not a rolecall sim; pass the address")
            assert err.count("\n") == 1, err


def test_ports_past_65535_and_the_busy_port_are_named(capsys: pytest.CaptureFixture[str]) -> None:
    count = len(PROTOCOLS)
    assert main(["sim", "--port", str(65536 - count + 1)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --port {65536 - count + 1} leaves no room for the {count}")
    assert f"use --port {65536 - count} or lower, or --port 0" in err
    # The second of the servers' ports is taken: the error names that one.
    with _taken_after_a_free_port() as taken:
        assert main(["sim", "--port", str(taken - 1)]) == 1
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{taken} (" in err and "Traceback" not in err


@pytest.mark.parametrize("latency", ["nan", "inf"])
def test_latency_must_be_a_finite_number(capsys: pytest.CaptureFixture[str], latency: str) -> None:
    assert main(["sim", "--protocol", "openai", "--latency", latency]) == 2
    assert f"--latency {latency} is not a number of seconds" in capsys.readouterr().err


def test_port_in_use_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["sim", "--protocol", "openai", "--port", str(port)]) == 1
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port}" in err and "--port 0" in err


def test_bad_fault_option_on_start(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "--fault", "rate_limit:retry_after=soon"]) == 2
    assert "not a valid float" in capsys.readouterr().err


def test_jitter_out_of_range_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "--latency", "0.5", "--jitter", "1.5"]) == 2
    err = capsys.readouterr().err
    assert "--jitter" in err and "Traceback" not in err


async def test_the_bedrock_snippet_answers_through_the_router() -> None:
    from rolecall.cli.sim import config_snippet
    from rolecall.config._bedrock_config import BedrockConfig
    from rolecall.routing.router import Router

    with SimServer("bedrock", api_key=KEY, models=("sim-model",)) as server:
        snippet = config_snippet([server], KEY, "sim-model")
        config = RolecallConfig.model_validate(yaml.safe_load(snippet))
        entry = config.providers["sim-bedrock"]
        assert isinstance(entry, BedrockConfig)
        assert (entry.region, entry.base_url) == ("us-east-1", server.base_url)
        async with Router(config) as router:
            reply = await router.complete("coder", "hi")
        assert reply.text == "Hello from the sim."
        assert server.requests[-1].headers["authorization"] == f"Bearer {KEY}"


def test_the_snippet_leaves_out_a_type_whose_package_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The default install (rolecall[local]) has no botocore: the pasted snippet must still work.
    from rolecall.cli.sim import config_snippet

    monkeypatch.setitem(sys.modules, "botocore", None)
    monkeypatch.chdir(tmp_path)
    with contextlib.ExitStack() as stack:
        servers = [
            stack.enter_context(SimServer(p, api_key=KEY, models=("sim-model",)))  # type: ignore[arg-type]
            for p in PROTOCOLS
        ]
        snippet = config_snippet(servers, KEY, "sim-model")
        left_out = "# sim-bedrock left out: the Bedrock provider needs the 'botocore' package"
        assert left_out in snippet
        Path("rolecall.yaml").write_text(snippet)
        assert main(["ask", "coder", "hi"]) == 0
    out = capsys.readouterr().out
    assert out == "Hello from the sim.\n"
