"""A router with one Anthropic provider pointed at the Anthropic sim, for the adapter tests."""

from __future__ import annotations

from typing import Any

from rolecall.config.schema import RolecallConfig
from rolecall.sim import SimServer

KEY = "test-key"
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
# A 1x1 transparent PNG.
PNG_B64 = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAA"
    "AABJRU5ErkJggg=="
)


def config(sim: SimServer) -> RolecallConfig:
    return RolecallConfig.model_validate(
        {
            "providers": {
                "claude": {
                    "type": "anthropic",
                    "model": "sim-model",
                    "api_key": KEY,
                    "base_url": sim.base_url,
                    "timeout": 5,
                }
            },
            "roles": {"agent": {"provider": "claude"}},
            "retry": {"initial_backoff": 0.01, "max_backoff": 0.05, "max_attempts": 1},
        }
    )


def last_body(sim: SimServer) -> dict[str, Any]:
    bodies = [r.json for r in sim.requests if r.path == "/v1/messages"]
    assert bodies, "the sim received no message request"
    body = bodies[-1]
    assert isinstance(body, dict)
    return body
