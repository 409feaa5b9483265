"""The PostgreSQL store against a server that is shared, read-only, restarted or silent.

A relay on 127.0.0.1 stands between the store and the test server: it can drop every
connection (a server restart), refuse new ones (a server down) or stop passing bytes
while keeping them open (a server that accepts but never answers).
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from factories import attempt_event, task_event
from rolecall.config.schema import MetricsConfig
from rolecall.events import AttemptEvent
from rolecall.recording.recorder import Recorder
from rolecall.recording.store import StoreError, StoreNotFound, open_store
from rolecall.recording.store import postgres as postgres_module


class Relay:
    """Passes TCP bytes to the server at ``target``; can drop or freeze its connections."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.frozen = threading.Event()
        self.down = threading.Event()
        self._sockets: list[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with suppress(OSError):
            while True:
                client, _ = self._listener.accept()
                if self.down.is_set():
                    client.close()
                    continue
                server = socket.create_connection(self.target)
                self._sockets += [client, server]
                for source, sink in ((client, server), (server, client)):
                    threading.Thread(target=self._pass, args=(source, sink), daemon=True).start()

    def _pass(self, source: socket.socket, sink: socket.socket) -> None:
        with suppress(OSError):
            while data := source.recv(65536):
                while self.frozen.is_set():
                    time.sleep(0.01)
                sink.sendall(data)

    def drop(self) -> None:
        """Close every connection, as a restarting server does."""
        for sock in self._sockets:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self._sockets.clear()

    def close(self) -> None:
        self.frozen.clear()
        self._listener.close()
        self.drop()


@pytest.fixture
def relayed_url(postgres_schema_url: str) -> Iterator[tuple[str, Relay]]:
    """The test schema's URL through a :class:`Relay`, and the relay."""
    parts = urlsplit(postgres_schema_url)
    relay = Relay((parts.hostname or "127.0.0.1", parts.port or 5432))
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@127.0.0.1:{relay.port}" if userinfo else f"127.0.0.1:{relay.port}"
    try:
        yield urlunsplit(parts._replace(netloc=netloc)), relay
    finally:
        relay.close()


def _attempt(task_id: str) -> AttemptEvent:
    return attempt_event(
        run_id="run-1",
        task_id=task_id,
        role="coder",
        provider="gpt",
        model="g",
        attempt=2,
        latency_ms=10.0,
        ts=time.time(),
    )


def _tables(url: str) -> set[str]:
    import psycopg

    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        ).fetchall()
    return {str(row[0]) for row in rows}


@pytest.mark.parametrize(
    "tables",
    [
        ["CREATE TABLE runs (id INTEGER PRIMARY KEY, name TEXT)"],
        # Another framework's migrations table of the same name, beside its own tables.
        [
            "CREATE TABLE schema_migrations (version VARCHAR PRIMARY KEY)",
            "INSERT INTO schema_migrations VALUES ('20240101120000')",
            "CREATE TABLE users (id INTEGER PRIMARY KEY)",
        ],
    ],
)
def test_a_schema_of_another_application_is_refused_and_left_as_it_is(
    postgres_schema_url: str, tables: list[str]
) -> None:
    import psycopg

    with psycopg.connect(postgres_schema_url, autocommit=True) as conn:
        for statement in tables:
            conn.execute(statement)
    before = _tables(postgres_schema_url)
    for create in (True, False):
        with pytest.raises(StoreError, match="not a rolecall metrics store") as refused:
            open_store(postgres_schema_url, create=create)
        assert "schema of its own" in refused.value.message
        assert "\n" not in refused.value.message
    assert _tables(postgres_schema_url) == before


def test_a_reader_creates_nothing_and_needs_no_write(postgres_schema_url: str) -> None:
    read_only = f"{postgres_schema_url}%20-cdefault_transaction_read_only%3Don"
    with pytest.raises(StoreNotFound, match="no metrics recorded yet"):
        open_store(postgres_schema_url, create=False)
    assert _tables(postgres_schema_url) == set()
    with open_store(postgres_schema_url) as store:
        store.record([_attempt("t1")])
    with open_store(read_only, create=False) as store:  # a server that takes no writes
        assert store.metrics()[0].requests == 1


def test_a_connection_the_server_dropped_while_idle_is_opened_again(
    relayed_url: tuple[str, Relay],
) -> None:
    url, relay = relayed_url
    with open_store(url) as store:
        store.record([_attempt("t1")])
        relay.drop()  # the server restarted between two batches
        store.record([_attempt("t2")])
        relay.drop()
        assert store.metrics()[0].requests == 2


def test_a_server_that_stops_answering_is_given_up_on_within_the_bound(
    relayed_url: tuple[str, Relay], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, relay = relayed_url
    monkeypatch.setattr(postgres_module, "_ANSWER_WAIT_S", 0.5)
    with open_store(url) as store:
        store.record([_attempt("t1")])
        for call in (lambda: store.metrics(), lambda: store.record([_attempt("t2")])):
            relay.frozen.clear()
            store.schema_version()  # a live connection, which then stops being answered
            relay.frozen.set()
            started = time.monotonic()
            with pytest.raises(StoreError, match=r"did not answer within 0\.5s") as info:
                call()
            assert time.monotonic() - started < 10  # without the bound: never
            assert "\n" not in info.value.message
            relay.drop()  # the cut connection's relay threads are let go
        relay.frozen.clear()
        assert store.metrics()[0].requests == 1


def test_a_password_in_the_url_query_is_never_shown(postgres_url: str) -> None:
    parts = urlsplit(postgres_url)
    host = f"{parts.hostname}:{parts.port or 5432}"
    url = f"postgresql://{parts.username}@{host}/no_such_db?password={parts.password}"
    with pytest.raises(StoreError) as info:
        open_store(url, create=False)
    message = info.value.message
    assert f"password={parts.password}" not in message and "password=***" in message
    assert 'database "no_such_db" does not exist: create that database' in message


def test_the_recorder_writes_what_a_server_down_missed_once_it_is_back(
    relayed_url: tuple[str, Relay], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url, relay = relayed_url
    now = [100.0]  # the recorder's clock: moves only when the test moves it
    config = MetricsConfig(url=url, runs_dir=str(tmp_path / "runs"), flush_interval=3600)
    recorder = Recorder(config, install_signal_handlers=False, clock=lambda: now[0])

    def call(n: int) -> None:
        recorder.emit(attempt_event(run_id=f"call-{n}", ts=time.time()))
        recorder.emit(task_event(run_id=f"call-{n}", ts=time.time()))
        recorder.flush()

    with caplog.at_level(logging.WARNING, logger="rolecall.recorder"):
        call(0)
        relay.down.set()
        relay.drop()  # the server stops
        for n in (1, 2, 3):
            call(n)
        relay.down.clear()  # and starts again
        now[0] += 5.0
        recorder.flush()
        with open_store(url, create=False) as store:
            assert store.metrics()[0].requests == 4
            assert len(store.runs()) == 4
        relay.down.set()
        relay.drop()
        call(4)
        recorder.close()  # the server is still down
    failed, back, failed_again, lacks = [
        r.getMessage() for r in caplog.records if r.name == "rolecall.recorder"
    ]
    assert "cannot connect to the metrics store" in failed and "ci-only" not in failed
    assert back.endswith("takes writes again: stored the 3 calls and 3 tasks kept meanwhile")
    assert "cannot connect to the metrics store" in failed_again
    assert lacks.startswith("the metrics store lacks 1 call and 1 task recorded since it failed")
    assert lacks.endswith(f"the run logs in {tmp_path / 'runs'} hold them")
