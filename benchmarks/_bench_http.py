"""A minimal keep-alive HTTP/1.1 client, and the bare proxy built on it (benchmarks only).

    .venv/bin/python benchmarks/_bench_http.py UPSTREAM_URL MODEL KEY PORT

serves the bare proxy on 127.0.0.1:PORT: a raw ASGI app on uvicorn (uvloop and
httptools when installed, as `rolecall serve` uses them) that reads each
``POST .../chat/completions`` body, parses it, sets its model to MODEL, forwards
it to UPSTREAM_URL (with /v1) with KEY over a small pool of keep-alive
connections, parses the answer and serializes it back. No auth, routing,
validation or recording: the least any Python ASGI hop adds on the machine.
Stop it with SIGINT.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[dict[str, Any], Receive, Send], Awaitable[None]]


class Connection:
    """One keep-alive HTTP/1.1 connection on asyncio streams; one request at a time."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        if self.writer is None or self.writer.is_closing():
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        head = [f"POST {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        head += ["Content-Type: application/json", f"Content-Length: {len(body)}", "", ""]
        self.writer.write("\r\n".join(head).encode() + body)
        status_line = await self.reader.readline()
        status = int(status_line.split()[1])
        length, chunked = 0, False
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding" and "chunked" in value.lower():
                chunked = True
        if not chunked:
            return status, await self.reader.readexactly(length)
        parts = []
        while True:
            size = int((await self.reader.readline()).strip(), 16)
            parts.append(await self.reader.readexactly(size + 2))
            if size == 0:
                return status, b"".join(parts)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class ConnectionPool:
    """Idle keep-alive connections to one host, reused; a new one whenever none is idle."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.idle: list[Connection] = []

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        conn = self.idle.pop() if self.idle else Connection(self.host, self.port)
        try:
            result = await conn.post(path, body, headers)
        except BaseException:
            conn.close()  # its stream may hold half an answer
            raise
        self.idle.append(conn)
        return result


def bare_proxy(upstream: str, model: str, key: str) -> ASGIApp:
    """The bare proxy's ASGI app (see the module docstring)."""
    parts = urlsplit(upstream)
    pool = ConnectionPool(parts.hostname or "127.0.0.1", parts.port or 80)
    path = parts.path.rstrip("/") + "/chat/completions"
    headers = {"Authorization": f"Bearer {key}"}

    async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        request = json.loads(body)
        request["model"] = model
        status, data = await pool.post(path, json.dumps(request).encode(), headers)
        answer = json.dumps(json.loads(data)).encode()
        response_headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(answer)).encode()),
        ]
        await send({"type": "http.response.start", "status": status, "headers": response_headers})
        await send({"type": "http.response.body", "body": answer})

    return app


def server_stack() -> tuple[str, str]:
    """uvicorn's event loop and HTTP parser: the fast ones when installed."""
    try:
        import uvloop  # noqa: F401

        loop = "uvloop"
    except ImportError:
        loop = "asyncio"
    try:
        import httptools  # noqa: F401

        http = "httptools"
    except ImportError:
        http = "h11"
    return loop, http


def main() -> None:
    import uvicorn

    upstream, model, key, port = sys.argv[1:5]
    loop, http = server_stack()
    uvicorn.run(
        bare_proxy(upstream, model, key),
        host="127.0.0.1",
        port=int(port),
        loop=loop,
        http=http,
        lifespan="off",
        access_log=False,
        log_level="warning",
        server_header=False,
    )


if __name__ == "__main__":
    main()
