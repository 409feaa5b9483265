"""Credentials written inside a base_url never leave: not shown, logged, stored or sent.

``http://user:pass@host/v1`` and ``?api_key=...`` once appeared in ``config show``,
credential-check and call errors, run logs, the store's ``tasks.error`` and the
gateway's error bodies, so a gateway client learnt the upstream password.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from rolecall.sim import Fault, SimServer
from serve_helpers import EXE, serving, stored_bytes

PASSWORD = "Upstream-Pa55word-4242"
QUERY_SECRET = "QuerySecret-9a9a9a"
PROVIDER_KEY = "sk-url-test-provider-key-0001"
GATEWAY_KEY = "gw-url-test-gateway-key-0002"
LEAKS = (PASSWORD, QUERY_SECRET, PROVIDER_KEY, GATEWAY_KEY)


@dataclass
class Setup:
    config: Path
    tmp: Path
    upstreams: tuple[str, ...]  # host:port of every upstream

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(EXE), *args, "-c", str(self.config)],
            capture_output=True,
            text=True,
            cwd=self.tmp,
            timeout=60,
            env={**os.environ, "NO_COLOR": "1"},
        )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def assert_clean(text: str) -> None:
    for secret in LEAKS:
        assert secret not in text


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    failing = SimServer("openai", api_key=PROVIDER_KEY, models=("m",))
    healthy = SimServer("openai", api_key=PROVIDER_KEY, models=("m",))
    with failing, healthy:
        failing.set_faults(Fault("server"))  # 500 on every call, the credential check too
        dead = f"127.0.0.1:{free_port()}"  # connection refused
        creds = f"admin:{PASSWORD}@"
        erroring = failing.base_url.replace("http://", f"http://{creds}")
        offered = healthy.base_url.replace("http://", f"http://{creds}")
        refused = f"http://{creds}{dead}/v1?api_key={QUERY_SECRET}"
        config = tmp_path / "rolecall.yaml"
        config.write_text(
            textwrap.dedent(
                f"""\
                providers:
                  a: {{type: openai-compatible, model: m, base_url: "{erroring}",
                      api_key: {PROVIDER_KEY}}}
                  b: {{type: openai-compatible, model: m, base_url: "{refused}",
                      api_key: {PROVIDER_KEY}}}
                  c: {{type: openai-compatible, model: not-offered, base_url: "{offered}",
                      api_key: {PROVIDER_KEY}}}
                roles:
                  coder: {{provider: a, fallback: [b, c]}}
                retry: {{max_attempts: 1, initial_backoff: 10ms}}
                metrics:
                  url: sqlite:///{tmp_path}/rolecall.db
                  runs_dir: {tmp_path}/runs
                  flush_interval: 50ms
                gateway: {{keys: [{GATEWAY_KEY}]}}
                """
            )
        )
        upstreams = (failing.root_url.removeprefix("http://"), healthy.root_url, dead)
        yield Setup(config, tmp_path, tuple(u.removeprefix("http://") for u in upstreams))


def test_mask_url_hides_userinfo_and_secret_query_values() -> None:
    from rolecall._secrets import mask_url

    assert mask_url("http://user:pw@host:8/v1?api_key=abc&x=1") == (
        "http://user:***@host:8/v1?api_key=***&x=1"
    )
    assert mask_url("https://tok3n-only-user@host/v1") == "https://***@host/v1"
    assert mask_url("https://h/v1?key=a&token=b&sig=c&model=m") == (
        "https://h/v1?key=***&token=***&sig=***&model=m"
    )
    assert mask_url("redis://:pw@cache:6379/0") == "redis://:***@cache:6379/0"
    assert mask_url("http://localhost:11434/v1") == "http://localhost:11434/v1"


def test_url_credentials_are_registered_as_secrets() -> None:
    from rolecall._secrets import redact, register_url_secrets

    register_url_secrets("http://u:Registered%2FPass-77@h/v1?access_token=Tok-registered-88")
    text = redact("echo Registered/Pass-77 and Registered%2FPass-77 and Tok-registered-88")
    assert "Registered" not in text and "Tok-registered" not in text
    # A password in any URL is masked even when it was never registered.
    assert redact("see postgres://app:pw1@db/x") == "see postgres://app:***@db/x"


def test_reprs_of_the_config_and_its_providers_mask_url_credentials(tmp_path: Path) -> None:
    """A repr is what a notebook, a debugger or a traceback's locals show."""
    from rolecall.config import load_config
    from rolecall.providers import build_provider

    path = tmp_path / "rolecall.yaml"
    path.write_text(
        "providers:\n"
        "  p:\n"
        "    type: openai-compatible\n"
        "    model: m\n"
        f"    base_url: http://user:{PASSWORD}@127.0.0.1:9/v1?api_key={QUERY_SECRET}\n"
        f"    headers: {{X-Upstream-Auth: {GATEWAY_KEY}, X-Trace: visible}}\n"
        "default_provider: p\n"
        f"state: {{redis_url: 'redis://:{PASSWORD}@127.0.0.1:6379/0'}}\n"
        f"metrics: {{url: 'postgresql://app:{PASSWORD}@db/rolecall'}}\n"
    )
    config = load_config(path)
    provider = build_provider("p", config.providers["p"])
    shown = [repr(config), str(config), repr(config.providers["p"]), repr(provider)]
    for text in shown:
        for leak in LEAKS:
            assert leak not in text
    assert "http://user:***@127.0.0.1:9/v1?api_key=***" in repr(provider)
    assert "'X-Trace': 'visible'" in repr(config.providers["p"])


def test_config_show_masks_url_credentials(setup: Setup) -> None:
    for args in (("config", "show"), ("config", "show", "--json")):
        result = setup.run(*args)
        assert result.returncode == 0, result.stderr
        assert_clean(result.stdout + result.stderr)
        assert f"admin:***@{setup.upstreams[0]}/v1" in result.stdout
        assert "api_key=***" in result.stdout


def test_config_validate_masks_url_credentials(setup: Setup) -> None:
    for args in (("config", "validate"), ("config", "validate", "--json")):
        result = setup.run(*args)
        assert result.returncode == 3  # every credential check fails
        output = result.stdout + result.stderr
        assert "not offered" in output  # c's error names its URL ...
        assert_clean(output)  # ... without the password


def test_call_errors_logs_and_store_mask_url_credentials(setup: Setup) -> None:
    texts = setup.run("ask", "coder", "hi", "--offline")
    as_json = setup.run("ask", "coder", "hi", "--offline", "--json")
    assert texts.returncode == as_json.returncode == 1
    assert "could not reach http://admin:***@" in texts.stderr  # b's hint names its URL
    assert_clean(texts.stdout + texts.stderr + as_json.stdout + as_json.stderr)
    json.loads(as_json.stdout)
    assert_stored_clean(setup.tmp)


def assert_stored_clean(tmp: Path) -> None:
    for name, raw in stored_bytes(tmp).items():
        for secret in LEAKS:
            assert secret.encode() not in raw, f"{secret} in {name}"


def test_gateway_error_bodies_log_and_store_carry_no_upstream_credentials(setup: Setup) -> None:
    headers = {"Authorization": f"Bearer {GATEWAY_KEY}"}
    chat = {"model": "coder", "messages": [{"role": "user", "content": "hi"}]}
    bodies = []
    with serving(setup.config, "--offline", "--log-level=debug") as (url, lines):
        for stream in (False, True):
            response = httpx.post(
                url + "/v1/chat/completions",
                json={**chat, "stream": stream},
                headers=headers,
                timeout=30,
            )
            assert response.status_code == 502
            assert "could not reach" in response.json()["error"]["message"]
            bodies.append(response.text)
    for body in bodies:  # no upstream URL at all, credentials or not
        assert_clean(body)
        assert "://" not in body
        assert not any(upstream in body for upstream in setup.upstreams)
    log = "".join(lines)
    assert "HTTP 500" in log or "server error" in log or "502" in log
    assert_clean(log)
    assert_stored_clean(setup.tmp)
