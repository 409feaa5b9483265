"""The dashboard's routes in the gateway: ``/ui`` (the page) and ``/api/...`` (its data).

The page itself holds no data and is served to anyone who can reach the gateway; every
``/api/`` endpoint sits behind the same API keys as ``/v1`` (the page sends the key it is
given in its ``#key=`` fragment or asks for it), and without keys the gateway listens on
loopback only and ``/api/`` answers only requests sent to a loopback name (a web page
cannot read it by pointing a name of its own at 127.0.0.1). Store queries run in a
worker thread, off the event loop.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from rolecall.dashboard import PAGE_HEADERS, asset
from rolecall.dashboard.api import DataSource, answer

if TYPE_CHECKING:
    from rolecall.gateway.app import Gateway

__all__ = ["dashboard_routes"]

_API_HEADERS = {"cache-control": "no-store", "x-content-type-options": "nosniff"}


def dashboard_routes(gateway: Gateway) -> list[BaseRoute]:
    """``/ui``, ``/ui/<asset>`` and ``/api/<endpoint>`` for ``gateway``."""
    source = DataSource(
        lambda: gateway.generation.config.metrics.url,
        lambda: gateway.generation.router.health.snapshot(),
        lambda: gateway.generation.config.providers.keys(),
    )

    async def page(request: Request) -> Response:
        found = asset(request.path_params.get("name", ""))
        if found is None:
            return Response(b"not found\n", 404, media_type="text/plain")
        return Response(found[0], headers=PAGE_HEADERS, media_type=found[1])

    async def api(request: Request) -> Response:
        # The decoded path, not request.url.path: that one re-encodes '?', '#' and '\\', so a
        # run id holding one (the page encodes it) would be no run.
        path = "/api/" + request.path_params["rest"]
        status, body = await run_in_threadpool(answer, source, path, dict(request.query_params))
        return Response(body, status, headers=_API_HEADERS, media_type="application/json")

    return [
        Route("/ui", page, methods=["GET"]),
        Route("/ui/{name}", page, methods=["GET"]),
        Route("/api/{rest:path}", gateway._guarded(api), methods=["GET"]),
    ]
