"""``rolecall serve --workers N`` as a real process tree: start it, find its workers."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from gateway_helpers import GATEWAY_KEY, wait_for

from rolecall.sim import SimServer
from serve_helpers import EXE, STARTED

CHAT = "/v1/chat/completions"
WRITER = re.compile(r"run writer pid (\d+)")


class Served:
    def __init__(self, proc: subprocess.Popen[str], url: str, lines: list[str]) -> None:
        self.proc, self.url, self.lines = proc, url, lines

    def workers(self) -> set[int]:
        """The pids of the parent's live workers (Linux; elsewhere, empty)."""
        path = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        children = {int(pid) for pid in path.read_text().split()} if path.exists() else set()
        writers = {int(m.group(1)) for line in self.lines if (m := WRITER.search(line))}
        return children - writers

    def writer(self) -> int:
        """The pid of the one process that writes every worker's records (the latest)."""
        for line in reversed(self.lines):
            if match := WRITER.search(line):
                return int(match.group(1))
        raise AssertionError("no run writer line:\n" + "".join(self.lines))

    def connect(self, avoid: str | None = None) -> tuple[httpx.Client, str]:
        """A kept-alive client on one worker (not ``avoid``) and that worker's pid."""
        for _ in range(300):
            client = httpx.Client(
                base_url=self.url, headers={"Authorization": f"Bearer {GATEWAY_KEY}"}, timeout=20
            )
            worker = client.get("/healthz").headers["x-rolecall-worker"]
            if worker != avoid:
                return client, worker
            client.close()
        raise AssertionError("every connection went to the same worker")


@contextmanager
def serve_workers(
    config: Path,
    workers: int | str | None = 2,
    *,
    exit_status: int = 0,
    options: tuple[str, ...] = (),
) -> Iterator[Served]:
    """``rolecall serve`` with ``--workers workers`` (None: without the option, the default)
    and ``options``, stopped with SIGTERM at the end: it must exit with ``exit_status``."""
    command = [str(EXE), "serve", "-c", str(config), "--port", "0", "--no-access-log", *options]
    proc = subprocess.Popen(
        command if workers is None else [*command, "--workers", str(workers)],
        stderr=subprocess.PIPE,
        text=True,
        cwd=config.parent,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stderr is not None
    watchdog = threading.Timer(90, proc.kill)  # never hang the suite on a stuck server
    watchdog.start()
    lines: list[str] = []
    try:
        url = None
        for line in proc.stderr:
            lines.append(line)
            if match := STARTED.search(line):
                url = match.group(1)
                break
        assert url is not None, "no startup line:\n" + "".join(lines)
        drain = threading.Thread(target=lambda: lines.extend(proc.stderr or ()), daemon=True)
        drain.start()
        yield Served(proc, url, lines)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == exit_status, "".join(lines)
        drain.join(5)
        assert "Traceback" not in "".join(lines)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        watchdog.cancel()


def chat(client: httpx.Client, model: str) -> httpx.Response:
    return client.post(CHAT, json={"model": model, "messages": [{"role": "user", "content": "hi"}]})


def limit_primary(config_path: Path, max_concurrency: int) -> None:
    text = config_path.read_text()
    config_path.write_text(
        text.replace(
            "api_key: ${PRIMARY_KEY}\n",
            f"api_key: ${{PRIMARY_KEY}}\n    max_concurrency: {max_concurrency}\n",
            1,
        )
    )


def clients_per_worker(served: Served, workers: int, each: int) -> dict[str, list[httpx.Client]]:
    """``each`` kept-alive clients on every one of ``workers`` workers, by worker pid."""
    by_worker: dict[str, list[httpx.Client]] = {}
    spare: list[httpx.Client] = []
    for _ in range(300):
        if len(by_worker) == workers and all(len(c) == each for c in by_worker.values()):
            break
        full = next((pid for pid, c in by_worker.items() if len(c) == each), None)
        client, pid = served.connect(avoid=full)
        if len(by_worker.get(pid, [])) == each:
            spare.append(client)  # a third worker's pid cannot be avoided too
        else:
            by_worker.setdefault(pid, []).append(client)
    for client in spare:
        client.close()
    assert sorted(len(c) for c in by_worker.values()) == [each] * workers
    return by_worker


def hold_both_slots(
    served: Served, primary: SimServer, delay: int
) -> tuple[str, str, dict[str, list[httpx.Client]]]:
    """Two workers with two clients each; the first worker's two calls sent to ``primary``,
    which holds them ``delay`` seconds: (that worker's pid, the other's, the clients)."""
    by_worker = clients_per_worker(served, 2, 2)
    (held_pid, held), (other_pid, _) = by_worker.items()
    for client in held:  # past the first-call gate: calls then go out side by side
        assert chat(client, "a").status_code == 200
    primary.script(f"ok:delay={delay}", f"ok:delay={delay}")

    def held_chat(client: httpx.Client) -> None:
        with contextlib.suppress(httpx.HTTPError):  # its worker is stopped or killed meanwhile
            chat(client, "a")

    for client in held:
        threading.Thread(target=held_chat, args=(client,), daemon=True).start()
    wait_for(lambda: primary.in_flight == 2)
    return held_pid, other_pid, by_worker


def survivor_answers(served_client: httpx.Client, pid: str, primary: SimServer, wait: int) -> None:
    """``served_client`` (on worker ``pid``) gets its answer within ``wait`` seconds, while
    the provider still holds the other worker's two calls."""
    body = {"model": "a", "messages": [{"role": "user", "content": "hi"}]}
    answered = served_client.post(CHAT, json=body, timeout=wait)
    assert answered.status_code == 200, answered.text
    assert answered.headers["x-rolecall-worker"] == pid
    assert primary.in_flight >= 2, "the answer came after the other worker's calls ended"
