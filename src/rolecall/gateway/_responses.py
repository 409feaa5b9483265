"""Small response helpers shared by the gateway's routes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.responses import Response

from rolecall._json import dumps
from rolecall.gateway._exchange import Reply, json_reply

__all__ = ["HTTPError", "json_response", "reply_headers", "sse_event"]


class HTTPError(Exception):
    """An early answer (400, 401, 404, 413) raised from deep in request handling."""

    def __init__(
        self, status: int, body: dict[str, Any], headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(body["error"]["message"])
        self.status = status
        self.body = body
        self.headers = dict(headers or {})

    def response(self) -> Response:
        """As a Starlette response (the routes other than the doors)."""
        return json_response(self.status, self.body, self.headers)

    def reply(self) -> Reply:
        """As a door's reply."""
        return json_reply(self.status, self.body, self.headers)


def json_response(status: int, body: Any, headers: Mapping[str, str] | None = None) -> Response:
    return Response(dumps(body), status, headers=headers, media_type="application/json")


def sse_event(data: Any) -> bytes:
    return b"data: " + dumps(data) + b"\n\n"


def reply_headers(provider: str, attempts: int, role: str) -> dict[str, str]:
    """Who answered: the provider, how many calls it took, and the role routed."""
    return {
        "x-rolecall-provider": provider,
        "x-rolecall-attempts": str(attempts),
        "x-rolecall-role": role,
    }
