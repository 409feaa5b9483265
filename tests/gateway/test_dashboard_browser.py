"""The ``/ui`` page in a real browser: headless Chromium loads it from ``rolecall serve`` after
a scripted run against the sims, and the provider x role table shows the numbers
``rolecall metrics --format json`` prints. A screenshot is kept in the test's temp dir."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

import rolecall
from factories import T0, attempt_event
from rolecall.cli import main
from rolecall.dashboard.server import DashboardServer
from rolecall.recording.store import open_store
from rolecall.sim import Fault, SimServer

CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)"
)
SRC = str(Path(rolecall.__file__).resolve().parent.parent)


@pytest.fixture
def recorded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A config over two sims and a store holding a scripted run with faults and hand-overs."""
    with (
        SimServer("openai", models=("gpt-sim",)) as gpt,
        SimServer("anthropic", models=("claude-sim",)) as claude,
    ):
        (tmp_path / "rolecall.yaml").write_text(
            f"""
providers:
  gpt: {{type: openai, model: gpt-sim, api_key: test-key, base_url: "{gpt.base_url}",
         pricing: {{input_per_mtok: 2.0, output_per_mtok: 8.0}}}}
  claude: {{type: anthropic, model: claude-sim, api_key: test-key, base_url: "{claude.base_url}",
            pricing: {{input_per_mtok: 3.0, output_per_mtok: 15.0}}}}
roles:
  coder: {{provider: gpt, fallback: [claude]}}
  reviewer: {{provider: claude, fallback: [gpt]}}
retry: {{initial_backoff: 10ms, max_backoff: 20ms, jitter: false}}
"""
        )
        monkeypatch.chdir(tmp_path)
        monkeypatch.delenv("ROLECALL_CONFIG", raising=False)
        script = [
            ("coder", gpt, Fault("overloaded")),  # a retry, then gpt answers
            ("coder", None, None),
            ("reviewer", claude, Fault("server")),
            ("reviewer", None, None),
            ("coder", gpt, Fault("auth")),  # last: gpt hands over to claude for good
            ("coder", None, None),
        ]
        for role, sim, fault in script:
            if sim is not None and fault is not None:
                sim.script(fault)
            assert main(["ask", role, "say hi", "--offline"]) == 0
        yield tmp_path


def _metrics_json(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    capsys.readouterr()
    assert main(["metrics", "--format", "json"]) == 0
    return list(json.loads(capsys.readouterr().out))


@pytest.fixture
def gateway_url(recorded: Path) -> Iterator[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    command = [sys.executable, "-m", "rolecall", "serve", "--port", "0", "--offline"]
    server = subprocess.Popen(
        [*command, "--no-access-log"],
        cwd=recorded,
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    try:
        yield _wait_listening(server)
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)


def _wait_listening(server: subprocess.Popen[str]) -> str:
    assert server.stderr is not None
    for line in server.stderr:
        found = re.search(r"rolecall gateway on (http://\S+)/v1", line)
        if found:
            threading.Thread(target=server.stderr.read, daemon=True).start()
            url = found.group(1)
            deadline = time.monotonic() + 30
            while True:  # the address is logged just before uvicorn listens
                try:
                    urllib.request.urlopen(f"{url}/healthz", timeout=5).close()
                    return url
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
    raise AssertionError("the gateway did not start")


class _Cells(HTMLParser):
    """Text of every ``td[data-field]`` per ``tr[data-provider][data-role]`` of #matrix."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[tuple[str, str], dict[str, str]] = {}
        self._row: dict[str, str] | None = None
        self._field: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "tr" and "data-provider" in found and "data-role" in found:
            self._row = {}
            self.rows[(str(found["data-provider"]), str(found["data-role"]))] = self._row
        elif tag == "td" and self._row is not None and "data-field" in found:
            self._field = str(found["data-field"])
            self._row[self._field] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "td":
            self._field = None
        elif tag == "tr":
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._row is not None and self._field is not None:
            self._row[self._field] += data


def _chromium(*args: str, profile: Path) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=5000",
    ]
    return subprocess.run(
        [CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=120, check=False
    )


def _ms(text: str) -> float:
    value, unit = text.split()
    return float(value) * (1000 if unit == "s" else 1)


def _close(shown: str, expected: float | None, parse: Any, step: float) -> bool:
    if expected is None:
        return shown == "-"
    return abs(parse(shown) - expected) <= step / 2 + 1e-9


def test_the_page_shows_the_numbers_metrics_prints(
    gateway_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    expected = _metrics_json(capsys)
    assert expected, "the scripted run recorded nothing"
    done = _chromium("--dump-dom", f"{gateway_url}/ui", profile=tmp_path / "profile")
    assert 'data-loaded="true"' in done.stdout, done.stdout[-2000:] + done.stderr[-2000:]
    cells = _Cells()
    cells.feed(done.stdout)
    assert set(cells.rows) == {(row["provider"], row["role"]) for row in expected}
    for row in expected:
        shown = cells.rows[(row["provider"], row["role"])]
        assert int(shown["requests"]) == row["requests"]
        assert int(shown["failures"]) == row["failures"]
        rate = row["success_rate"]
        assert _close(
            shown["success_rate"],
            None if rate is None else rate * 100,
            lambda t: float(t.rstrip("%")),
            0.1,
        )
        for key in ("p50", "p95"):
            value = row["latency_ms"][key]
            step = 10.0 if value is not None and value >= 1000 else 1.0
            assert _close(shown[key], value, _ms, step), (key, shown[key], value)
        assert shown["tokens"] == f"{row['tokens']['input']} / {row['tokens']['output']}"
        assert _close(shown["cost"], row["cost_usd"], lambda t: float(t.lstrip("$")), 1e-6)
    # the hand-over from gpt to claude and the recent run's tasks are on the page too
    assert cells.rows[("gpt", "coder")]["handovers"] == "1"
    assert "data-task=" in done.stdout

    shot = tmp_path / "ui.png"
    taken = _chromium(
        f"--screenshot={shot}",
        "--window-size=1400,1000",
        f"{gateway_url}/ui",
        profile=tmp_path / "profile2",
    )
    assert shot.exists(), taken.stderr[-2000:]
    assert shot.stat().st_size > 30_000  # a blank 1400x1000 page is a few kB
    keep = os.environ.get("ROLECALL_UI_SCREENSHOT")
    if keep:
        shutil.copy(shot, keep)


def test_the_page_reads_its_window_on_the_servers_clock_not_the_browsers(
    tmp_path: Path,
) -> None:
    # The server's clock reads 2026-01-01 01:00, the browser's the machine's (later): the
    # page asked for the day before the browser's now, a window after the server's, a 400.
    url = f"sqlite:///{tmp_path / 'metrics.db'}"
    with open_store(url) as store:
        store.record([attempt_event(task_id=f"t{n}", ts=T0 + n) for n in range(3)])
    server = DashboardServer(url, clock=lambda: T0 + 3600).start()
    try:
        done = _chromium("--dump-dom", f"{server.url}/ui", profile=tmp_path / "profile")
    finally:
        server.stop()
    assert 'data-loaded="true"' in done.stdout, done.stdout[-2000:] + done.stderr[-2000:]
    cells = _Cells()
    cells.feed(done.stdout)
    assert [row["requests"] for row in cells.rows.values()] == ["3"]
