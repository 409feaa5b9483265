"""An empty gateway key is no key: it never switches auth off, nor lets the gateway go public.

``gateway: {keys: ["${ROLECALL_GATEWAY_KEY}"]}`` with the variable empty (or
``${VAR:-}`` with it unset, or a blank value) once counted as one key: ``serve
--host 0.0.0.0`` started, logged "auth: 1 key(s)" and answered without any key.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from gateway_helpers import GATEWAY_KEY, RunningGateway, config_text, wait_for

from rolecall._secrets import Secret
from rolecall.cli import cli
from rolecall.config.schema import GatewayConfig
from rolecall.gateway.auth import KeyChecker
from rolecall.sim import SimServer

CHAT = {"model": "coder", "messages": [{"role": "user", "content": "hi"}]}
STARTED = re.compile(r"rolecall gateway on (http://\S+)/v1")

# (what gateway.keys holds, the environment's ROLECALL_GATEWAY_KEY or None for unset)
EMPTY_KEYS = [
    pytest.param('["${ROLECALL_GATEWAY_KEY}"]', "", id="variable-empty"),
    pytest.param('["${ROLECALL_GATEWAY_KEY:-}"]', None, id="default-empty"),
    pytest.param('["${ROLECALL_GATEWAY_KEY}"]', "   ", id="variable-blank"),
    pytest.param('["", "  "]', None, id="literal-blank"),
]


def write_config(tmp_path: Path, primary: SimServer, fallback: SimServer, keys: str) -> Path:
    (tmp_path / ".env").write_text(
        "PRIMARY_KEY=sk-primary-provider-secret-0001\n"
        "FALLBACK_KEY=sk-fallback-provider-secret-0002\n"
    )
    path = tmp_path / "rolecall.yaml"
    path.write_text(config_text(primary, fallback, keys=keys, tmp=tmp_path))
    return path


def environment(value: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "ROLECALL_GATEWAY_KEY"}
    if value is not None:
        env["ROLECALL_GATEWAY_KEY"] = value
    return {**env, "PYTHONUNBUFFERED": "1"}


@contextmanager
def serve(
    config: Path, host: str, env: dict[str, str]
) -> Iterator[tuple[subprocess.Popen[str], list[str], str | None]]:
    """``rolecall serve`` on ``host`` port 0: (process, stderr lines so far, URL once started)."""
    exe = Path(sys.executable).with_name("rolecall")
    proc = subprocess.Popen(
        [str(exe), "serve", "-c", str(config), "--host", host, "--port", "0", "--offline"],
        stderr=subprocess.PIPE,
        text=True,
        cwd=config.parent,
        env=env,
    )
    assert proc.stderr is not None
    watchdog = threading.Timer(30, proc.kill)  # never hang the suite on a stuck server
    watchdog.start()
    lines: list[str] = []
    url = None
    try:
        for line in proc.stderr:
            lines.append(line)
            if match := STARTED.search(line):
                url = match.group(1)
                break
        yield proc, lines, url
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        _, rest = proc.communicate(timeout=20)
        lines.append(rest)
        watchdog.cancel()


def loopback(url: str) -> str:
    """The started gateway's URL with its host replaced by 127.0.0.1 (requests stay local)."""
    return re.sub(r"//[^/]+:", "//127.0.0.1:", url, count=1)


@pytest.mark.parametrize(("keys", "value"), EMPTY_KEYS)
def test_public_bind_with_only_empty_keys_is_refused(
    tmp_path: Path, primary: SimServer, fallback: SimServer, keys: str, value: str | None
) -> None:
    config = write_config(tmp_path, primary, fallback, keys)
    with serve(config, "0.0.0.0", environment(value)) as (proc, lines, url):
        if url is not None:  # it started: show that it answers without a key, then fail
            answer = httpx.post(loopback(url) + "/v1/chat/completions", json=CHAT, timeout=20)
            pytest.fail(
                f"serve started on 0.0.0.0 with no real key; keyless call: {answer.status_code}"
            )
        proc.wait(timeout=20)
    assert proc.returncode == 2
    output = "".join(lines)
    assert "refusing to listen on 0.0.0.0" in output
    assert "set the variable" in output and "gateway.keys" in output
    assert "Traceback" not in output


@pytest.mark.parametrize(("keys", "value"), EMPTY_KEYS[:2])
def test_loopback_gateway_with_an_empty_key_says_it_has_none(
    tmp_path: Path, primary: SimServer, fallback: SimServer, keys: str, value: str | None
) -> None:
    config = write_config(tmp_path, primary, fallback, keys)
    with serve(config, "127.0.0.1", environment(value)) as (_, lines, url):
        assert url is not None, "".join(lines)
    output = "".join(lines)
    assert "auth: none (loopback only)" in output
    assert "1 key(s)" not in output
    assert "gateway.keys[0]" in output  # the warning names the entry


def test_a_real_key_still_allows_a_public_bind(
    tmp_path: Path, primary: SimServer, fallback: SimServer
) -> None:
    config = write_config(tmp_path, primary, fallback, '["${ROLECALL_GATEWAY_KEY}", ""]')
    with serve(config, "0.0.0.0", environment(GATEWAY_KEY)) as (_, lines, url):
        assert url is not None, "".join(lines)
        base = loopback(url) + "/v1/chat/completions"
        assert httpx.post(base, json=CHAT, timeout=20).status_code == 401
        keyed = {"Authorization": f"Bearer {GATEWAY_KEY}"}
        assert httpx.post(base, json=CHAT, headers=keyed, timeout=20).status_code == 200
    assert "auth: 1 key(s)" in "".join(lines)


@pytest.mark.parametrize(("keys", "value"), EMPTY_KEYS)
def test_validate_reports_each_empty_key(
    tmp_path: Path, primary: SimServer, fallback: SimServer, keys: str, value: str | None
) -> None:
    config = write_config(tmp_path, primary, fallback, keys)
    env = {"ROLECALL_GATEWAY_KEY": value}  # None unsets it for the command
    args = ["config", "validate", "--offline", "--json", "-c", str(config)]
    result = CliRunner().invoke(cli, args, env=env)
    report = json.loads(result.output)
    found = [w for w in report["warnings"] if w["location"].startswith("gateway.keys[")]
    assert [w["location"] for w in found][:1] == ["gateway.keys[0]"]
    assert all("remove the entry" in w["fix"] and "set the variable" in w["fix"] for w in found)


def test_empty_keys_are_no_keys() -> None:
    assert GatewayConfig.model_validate({"keys": ["", "   ", "\t"]}).keys == []
    assert not KeyChecker([Secret(""), Secret("   ")]).enabled
    checker = KeyChecker([Secret("  gw-padded-key-0042  ")])
    assert checker.allows("Bearer gw-padded-key-0042")


def test_reload_to_only_empty_keys_is_rejected_when_public(
    tmp_path: Path,
    primary: SimServer,
    fallback: SimServer,
    start_gateway: Callable[..., RunningGateway],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="rolecall.gateway")
    (tmp_path / ".env").write_text(
        "PRIMARY_KEY=sk-primary-provider-secret-0001\n"
        f"FALLBACK_KEY=sk-fallback-provider-secret-0002\nGATEWAY_KEY={GATEWAY_KEY}\n"
    )
    path = tmp_path / "rolecall.yaml"
    path.write_text(config_text(primary, fallback, tmp=tmp_path))
    # The gateway believes it listens on every address (the socket itself is on 127.0.0.1).
    running = start_gateway(path, host="0.0.0.0")
    path.write_text(
        config_text(
            primary, fallback, coder="{provider: b}", keys='["${NO_SUCH_KEY:-}"]', tmp=tmp_path
        )
    )
    wait_for(lambda: any("not applied" in r.getMessage() for r in caplog.records))
    reason = " ".join(r.getMessage() for r in caplog.records)
    assert "gateway.keys is empty" in reason and "keeping the previous config" in reason
    with running.client(key=None) as client:
        assert client.post("/v1/chat/completions", json=CHAT).status_code == 401
    with running.client() as client:
        kept = client.post("/v1/chat/completions", json=CHAT)
        assert kept.status_code == 200
        assert kept.headers["x-rolecall-provider"] == "a"  # the old config still serves
