"""The control API a sim serves under ``/_sim/`` for clients in another process."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from rolecall.sim._common import dumps
from rolecall.sim._http import HttpRequest, Rendered
from rolecall.sim.faults import parse_fault

if TYPE_CHECKING:
    from rolecall.sim.server import SimServer

__all__ = ["INVALID", "control", "ok", "parse_json"]

INVALID = object()  # a body that is not JSON


def ok(obj: Any) -> Rendered:
    return 200, [("content-type", "application/json")], dumps(obj)


def _error(status: int, message: str) -> Rendered:
    return status, [("content-type", "application/json")], dumps({"error": message})


def parse_json(body: bytes) -> Any:
    """The parsed body, None when empty, ``INVALID`` when not JSON."""
    if not body:
        return None
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return INVALID


def control(server: SimServer, request: HttpRequest) -> Rendered:
    """``POST /_sim/script`` and ``/_sim/faults`` (a JSON list of kind names or objects with
    Fault's fields), ``POST /_sim/clear``, ``POST /_sim/reset``, ``GET /_sim/stats``."""
    action = (request.method, request.path)
    if action == ("GET", "/_sim/stats"):
        return ok(server.stats())
    if action in (("POST", "/_sim/script"), ("POST", "/_sim/faults")):
        parsed = parse_json(request.body)
        items = parsed if isinstance(parsed, list) else [parsed]
        try:
            faults = [parse_fault(item) for item in items]
        except ValueError as exc:
            return _error(400, str(exc))
        if request.path == "/_sim/script":
            server.script(*faults)
        else:
            server.set_faults(*faults)
        return ok(server.stats())
    if action == ("POST", "/_sim/clear"):
        server.clear()
        return ok(server.stats())
    if action == ("POST", "/_sim/reset"):
        server.reset_stats()
        return ok(server.stats())
    return _error(404, f"unknown sim control {request.method} {request.path}")
