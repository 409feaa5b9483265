"""Text from providers and the store is shown on a terminal, never acted on by it.

Names, model ids and error messages come from providers and from a store other
processes write: a control character in one (an ANSI escape, a carriage return, a
right-to-left override) must print as its escape, not recolour, retitle or reorder
the terminal; rich markup in one must not be read as markup.
"""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import run_cli, store_events, strict_json

from factories import attempt_event

NOW = time.time()
SRC = str(Path(__file__).resolve().parents[2] / "src")
# A provider id, role and model name as a hostile or broken writer may have stored them.
HOSTILE = "ev\x1b[31mil\x1b]0;owned\x07\u202eRTL\nnext\r\x9bx"
SHOWN = "ev\\x1b[31mil\\x1b]0;owned\\x07\\u202eRTL\\nnext\\r\\x9bx"
UNSHOWABLE = ("\x1b", "\x07", "\u202e", "\r", "\x9b")


@pytest.fixture
def hostile_names(project: Path) -> Path:
    store_events(
        attempt_event(run_id="run-h", provider=HOSTILE, role=HOSTILE, model=HOSTILE, ts=NOW - 60),
        attempt_event(run_id="run-h", task_id="t2", model="m[/bold]x[red]", ts=NOW - 50),
    )
    return project


def _no_control_characters(text: str) -> None:
    for char in UNSHOWABLE:
        assert char not in text, f"{char!r} reached the terminal"


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(("metrics", "--by", "provider,role,model"), id="metrics"),
        pytest.param(("metrics", "trend", "--by", "provider,role,model"), id="trend"),
        pytest.param(("metrics", "trend", "--plot"), id="trend-plot"),
        pytest.param(("metrics", "advise"), id="advise"),
        pytest.param(("runs", "show", "run-h"), id="runs-show"),
    ],
)
def test_stored_names_print_with_control_characters_escaped(
    hostile_names: Path, capsys: pytest.CaptureFixture[str], args: tuple[str, ...]
) -> None:
    code, out, _ = run_cli(capsys, *args)
    assert code == 0
    _no_control_characters(out)
    assert SHOWN in out


def test_json_escapes_c1_and_bidi_controls_and_keeps_the_value(
    hostile_names: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(capsys, "metrics", "--json", "--by", "provider,role,model")
    assert code == 0
    _no_control_characters(out)
    assert HOSTILE in [row["model"] for row in strict_json(out)]


def _on_a_terminal(cwd: Path, *args: str, **env: str) -> tuple[int, str, bytes]:
    """Run ``rolecall ARGS`` with stdout on a pseudo-terminal: exit code, stdout, stderr."""
    primary, replica = pty.openpty()
    with subprocess.Popen(
        [sys.executable, "-m", "rolecall", *args],
        stdout=replica,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": SRC, **env},
        cwd=cwd,
    ) as proc:
        os.close(replica)
        chunks = []
        while True:
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # the child closed its end
                break
            if not chunk:
                break
            chunks.append(chunk)
        _, err = proc.communicate(timeout=60)
    os.close(primary)
    return proc.returncode, b"".join(chunks).decode("utf-8", "replace"), err


def test_markup_in_a_name_is_shown_as_text_on_a_terminal(hostile_names: Path) -> None:
    """On a TTY the table is drawn by rich, which must not read a model's name as markup."""
    code, out, err = _on_a_terminal(
        hostile_names, "metrics", "--by", "model", COLUMNS="200", NO_COLOR="1"
    )
    assert code == 0, err.decode()
    assert err == b""
    assert "m[/bold]x[red]" in out


def test_a_terminal_too_narrow_for_the_table_gets_every_figure(hostile_names: Path) -> None:
    """Rich would cut each cell to nothing on 20 columns; the plain table wraps instead."""
    code, out, err = _on_a_terminal(hostile_names, "metrics", "--by", "model", COLUMNS="20")
    assert code == 0, err.decode()
    assert "m[/bold]x[red]" in out
    assert "100.0%" in out


def test_a_terminal_that_takes_only_ascii_gets_a_plain_table(project: Path) -> None:
    """A terminal in a non-UTF-8 locale: a model name with an accent still prints."""
    store_events(attempt_event(model="modèle-é", ts=NOW - 60))
    code, out, err = _on_a_terminal(
        project,
        "metrics",
        "--by",
        "model",
        COLUMNS="200",
        LC_ALL="C",
        PYTHONUTF8="0",
        PYTHONCOERCECLOCALE="0",
    )
    assert code == 0, err.decode()
    assert err == b""
    assert "modèle-é" in out


# -- errors from a provider --------------------------------------------------------------

PROVIDER_MESSAGE = "bad\x1b[2J\x1b]0;owned\x07 request \u202eevil"


class _HostileErrors(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        body = json.dumps({"error": {"message": PROVIDER_MESSAGE, "type": "invalid"}}).encode()
        self.send_response(400)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def hostile_provider(project: Path) -> Iterator[Path]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _HostileErrors)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    (project / "rolecall.yaml").write_text(
        "providers:\n"
        "  gpt: {type: openai, model: m, api_key: k, "
        f"base_url: 'http://127.0.0.1:{server.server_address[1]}/v1'}}\n"
        "roles:\n  coder: {provider: gpt}\n"
    )
    try:
        yield project
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_a_provider_error_prints_with_control_characters_escaped(
    hostile_provider: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(capsys, "ask", "coder", "hi", "--offline")
    assert code == 1
    assert out == ""
    _no_control_characters(err)
    assert "bad\\x1b[2J\\x1b]0;owned\\x07 request \\u202eevil" in err
    assert err.startswith("error: every provider for role 'coder' failed:\n  gpt: ")
