"""Providers the sims do not imitate: a server that sends exactly the chunks a test wrote."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

from rolecall.sim._http import Exchange, HttpRequest, HttpServer

__all__ = ["ChatStreamProvider"]


class ChatStreamProvider:
    """An OpenAI-compatible provider that streams these chunk bodies (each given a model),
    as a server the sims do not imitate may: what it sends is exactly what the test wrote."""

    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.events = events
        self._loop = asyncio.new_event_loop()
        self._server = HttpServer(self._serve)
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        opened = asyncio.run_coroutine_threadsafe(self._server.open("127.0.0.1", 0), self._loop)
        self.base_url = f"http://127.0.0.1:{opened.result(5)}/v1"

    async def _serve(self, request: HttpRequest, exchange: Exchange) -> None:
        exchange.start(200, [("content-type", "text/event-stream")])
        for event in self.events:
            exchange.send(b"data: " + json.dumps({"model": "m", **event}).encode() + b"\n\n")
        exchange.send(b"data: [DONE]\n\n")
        await exchange.end()

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self._server.close(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
