"""``rolecall dashboard``: the gateway keys it requires, and what it says when it refuses.

The dashboard reads the metrics store and calls no provider, so a config whose only
problem is a provider's key variable unset in this shell must still give it the
gateway keys to require; and its refusal to listen in public without keys names what
it would expose (the store's data), not provider credits it cannot spend.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from rolecall.cli import main
from serve_helpers import EXE

GATEWAY_KEY = "dashboard-cli-gateway-key-0123456789"
CONFIG = """\
providers:
  gpt: {type: openai, model: gpt-4.1, api_key: "${DASHBOARD_TEST_UNSET_KEY}"}
default_provider: gpt
gateway:
  keys: ["${DASHBOARD_TEST_GATEWAY_KEY}"]
"""
STARTED = re.compile(r"rolecall dashboard on (http://\S+)/ui")


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ROLECALL_CONFIG", raising=False)
    monkeypatch.delenv("DASHBOARD_TEST_UNSET_KEY", raising=False)
    monkeypatch.setenv("DASHBOARD_TEST_GATEWAY_KEY", GATEWAY_KEY)
    (tmp_path / "rolecall.yaml").write_text(CONFIG, encoding="utf-8")
    return tmp_path


def _status(url: str, key: str | None = None) -> int:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers)) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_the_gateway_keys_are_required_though_a_provider_key_is_unset(project: Path) -> None:
    proc = subprocess.Popen(
        [str(EXE), "dashboard", "--port", "0"],
        stderr=subprocess.PIPE,
        text=True,
        cwd=project,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stderr is not None
    watchdog = threading.Timer(60, proc.kill)
    watchdog.start()
    try:
        line = proc.stderr.readline()
        match = STARTED.search(line)
        assert match, line + proc.stderr.read()
        url = match.group(1)
        assert _status(f"{url}/api/metrics") == 401
        assert _status(f"{url}/api/metrics", GATEWAY_KEY) == 200
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=20)
        watchdog.cancel()


def test_a_gateway_key_it_cannot_read_stops_it(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DASHBOARD_TEST_GATEWAY_KEY")
    done = subprocess.run(
        [str(EXE), "dashboard", "--port", "0"],
        capture_output=True,
        text=True,
        cwd=project,
        timeout=30,  # it must refuse, not serve without the keys
    )
    assert done.returncode == 2
    assert "gateway.keys[0]" in done.stderr
    assert "DASHBOARD_TEST_GATEWAY_KEY is not set" in done.stderr


def test_refusing_a_public_address_names_what_the_dashboard_would_expose(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ROLECALL_CONFIG", raising=False)
    assert main(["dashboard", "--host", "0.0.0.0", "--port", "0"]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("error: refusing to listen on 0.0.0.0: no gateway API key")
    assert "credits" not in line  # the dashboard calls no provider
    assert "could read your metrics and runs" in line
    assert "gateway.keys" in line and "bind 127.0.0.1" in line


def test_serve_help_names_the_dashboard_and_its_data(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "GET /ui" in text and "GET /api/" in text


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_signal_ends_the_dashboard_cleanly(project: Path, stop: signal.Signals) -> None:
    # A service manager stops it with SIGTERM: as Ctrl-C, exit 0 and no traceback.
    proc = subprocess.Popen(
        [str(EXE), "dashboard", "--port", "0"],
        stderr=subprocess.PIPE,
        text=True,
        cwd=project,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "DASHBOARD_TEST_GATEWAY_KEY": GATEWAY_KEY},
    )
    assert proc.stderr is not None
    watchdog = threading.Timer(60, proc.kill)
    watchdog.start()
    try:
        line = proc.stderr.readline()
        assert STARTED.search(line), line + proc.stderr.read()
        proc.send_signal(stop)
        _, err = proc.communicate(timeout=20)
    finally:
        watchdog.cancel()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
