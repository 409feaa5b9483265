"""Tiny model servers on 127.0.0.1 for discovery tests: they list models and record requests."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from rolecall.setup.clouds import CLOUD_ENV_VARS
from rolecall.setup.discover import PORTS_ENV_VAR, SERVERS, key_vendors

# Every variable discovery reads for keys and cloud credentials.
KEY_VARS = sorted(
    {var for vendor in key_vendors() for var in vendor.env_vars} | set(CLOUD_ENV_VARS)
)


class ModelServer:
    """Answers GET ``path`` with ``body``; everything else 404. Records each request line."""

    def __init__(self, path: str, body: object, status: int = 200) -> None:
        self.requests: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests.append(f"GET {self.path}")
                payload = json.dumps(body).encode()
                code = status if self.path == path else 404
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_POST(self) -> None:
                outer.requests.append(f"POST {self.path}")
                self.send_response(500)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> ModelServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def ollama(*models: str) -> ModelServer:
    return ModelServer("/api/tags", {"models": [{"name": m} for m in models]})


def openai_models(*models: str) -> ModelServer:
    return ModelServer("/v1/models", {"object": "list", "data": [{"id": m} for m in models]})


@contextmanager
def silent_socket() -> Iterator[int]:
    """A port that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()


@contextmanager
def trickling_socket(seconds: float = 10.0) -> Iterator[int]:
    """A port that answers 200 with a long body, one byte every 0.1 s, for up to ``seconds``."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        try:
            connection, _ = listener.accept()
        except OSError:  # closed before anyone connected
            return
        with connection:
            connection.recv(65536)
            connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
            for _ in range(int(seconds * 10)):
                if stop.wait(0.1):
                    return
                try:
                    connection.sendall(b" ")
                except OSError:  # the client gave up
                    return

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        listener.close()
        thread.join(timeout=5)


def ports_env(**ports: int) -> str:
    """ROLECALL_DISCOVER_PORTS value: the given servers, every other one off."""
    return ",".join(f"{name}={ports.get(name, 0) or 'off'}" for name in SERVERS)


__all__ = [
    "KEY_VARS",
    "PORTS_ENV_VAR",
    "ModelServer",
    "ollama",
    "openai_models",
    "ports_env",
    "silent_socket",
    "trickling_socket",
]
