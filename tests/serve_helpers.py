"""``rolecall serve`` as a real process on 127.0.0.1, and reading what a run left on disk."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

EXE = Path(sys.executable).with_name("rolecall")
STARTED = re.compile(r"rolecall gateway on (http://\S+)/v1")


@contextmanager
def serving(config: Path, *options: str) -> Iterator[tuple[str, list[str]]]:
    """``rolecall serve`` on 127.0.0.1 port 0: (its URL, its log lines, complete on exit)."""
    with serving_process(config, *options) as (_, url, lines):
        yield url, lines


@contextmanager
def serving_process(
    config: Path,
    *options: str,
    starting: Callable[[subprocess.Popen[str]], None] | None = None,
    open_files: tuple[int, int] | None = None,
) -> Iterator[tuple[subprocess.Popen[str], str, list[str]]]:
    """As :func:`serving`, with the process first (to signal it); ``starting`` is called
    with the process as soon as it is launched, before it serves. ``open_files``: the
    (soft, hard) ``RLIMIT_NOFILE`` it starts under."""

    def limit_open_files() -> None:
        import resource

        assert open_files is not None
        resource.setrlimit(resource.RLIMIT_NOFILE, open_files)

    proc = subprocess.Popen(
        [str(EXE), "serve", "-c", str(config), "--port", "0", *options],
        stderr=subprocess.PIPE,
        text=True,
        cwd=config.parent,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        preexec_fn=None if open_files is None else limit_open_files,
    )
    assert proc.stderr is not None
    watchdog = threading.Timer(60, proc.kill)  # never hang the suite on a stuck server
    watchdog.start()
    lines: list[str] = []
    try:
        if starting is not None:
            starting(proc)
        for line in proc.stderr:
            lines.append(line)
            if match := STARTED.search(line):
                yield proc, match.group(1), lines
                break
        else:
            raise AssertionError("no startup line:\n" + "".join(lines))
    finally:
        proc.send_signal(signal.SIGINT)
        _, rest = proc.communicate(timeout=20)
        lines.append(rest)
        watchdog.cancel()


def stored_bytes(directory: Path) -> dict[str, bytes]:
    """Every run log and SQLite file (WAL included) under ``directory``, as raw bytes."""
    files = {
        path.name: path.read_bytes()
        for path in directory.rglob("*")
        if path.is_file() and (path.suffix == ".jsonl" or path.name.startswith("rolecall.db"))
    }
    assert any(name.endswith(".jsonl") for name in files), "no run log was written"
    assert any(name.startswith("rolecall.db") for name in files), "no store was written"
    return files
