"""``GET /healthz`` (a liveness probe, answered without a key) and ``GET /metrics``
(Prometheus text: this process's counts, or under ``serve --workers`` every worker's)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, get_args

from starlette.requests import Request
from starlette.responses import Response

from rolecall.gateway._responses import json_response
from rolecall.gateway.prom import CONTENT_TYPE

if TYPE_CHECKING:
    from rolecall.gateway.app import Gateway

__all__ = ["healthz", "prometheus"]


async def healthz(gateway: Gateway, request: Request) -> Response:
    body = {
        "status": "ok",
        "config_generation": gateway.generation.number,
        "uptime_s": round(time.time() - gateway.started_at, 3),
    }
    return json_response(200, body)


async def prometheus(gateway: Gateway, request: Request) -> Response:
    from rolecall.health.memory import HealthState

    generation = gateway.generation
    health = generation.router.health
    states = {pid: str(health.state(pid)) for pid in generation.config.providers}
    gateway.metrics.set_health(states, get_args(HealthState))
    shared = gateway.shared_metrics
    text = gateway.metrics.render() if shared is None else shared.render()
    return Response(text, media_type=CONTENT_TYPE)
