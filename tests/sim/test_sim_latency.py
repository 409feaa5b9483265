"""Jittered latency: each prompt waits its own delay, fixed by its text."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from sim_helpers import KEY

from rolecall.sim import SimServer, request_latency

LATENCY, JITTER = 0.2, 0.5


def test_request_latency_is_deterministic_and_within_the_jitter_band() -> None:
    delays = [request_latency(LATENCY, JITTER, f"Say hello. #{i}") for i in range(2000)]
    assert all(LATENCY * (1 - JITTER) <= d < LATENCY * (1 + JITTER) for d in delays)
    assert delays == [request_latency(LATENCY, JITTER, f"Say hello. #{i}") for i in range(2000)]
    # Spread across the whole band, not bunched: a uniform sample's extremes sit near the ends.
    assert min(delays) < LATENCY * (1 - JITTER) + 0.01 and max(delays) > LATENCY * 1.49
    assert 0.19 < sum(delays) / len(delays) < 0.21
    assert request_latency(LATENCY, 0.0, "anything") == LATENCY
    assert request_latency(0.0, JITTER, "anything") == 0.0


@pytest.mark.parametrize("jitter", [-0.1, 1.5])
def test_jitter_outside_zero_to_one_is_refused(jitter: float) -> None:
    with pytest.raises(ValueError, match="jitter"):
        SimServer("openai", jitter=jitter)


def _chat(
    protocol: str, server: SimServer, text: str
) -> tuple[str, dict[str, Any], dict[str, str]]:
    """URL, body and headers of a one-message chat request in ``protocol``'s wire format."""
    if protocol == "openai":
        body: dict[str, Any] = {
            "model": "sim-model",
            "messages": [{"role": "user", "content": text}],
        }
        return f"{server.base_url}/chat/completions", body, {"authorization": f"Bearer {KEY}"}
    if protocol == "anthropic":
        body = {
            "model": "sim-model",
            "max_tokens": 16,
            "messages": [{"role": "user", "content": text}],
        }
        headers = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}
        return f"{server.base_url}/v1/messages", body, headers
    body = {"contents": [{"role": "user", "parts": [{"text": text}]}]}
    url = f"{server.base_url}/v1beta/models/sim-model:generateContent"
    return url, body, {"x-goog-api-key": KEY}


@pytest.mark.parametrize("protocol", ["openai", "anthropic", "google"])
def test_each_prompt_waits_its_own_latency(protocol: str) -> None:
    # The shortest and longest delays among a few prompts: about 0.1 s and 0.3 s apart.
    prompts = sorted(
        (f"Say hello. #{i}" for i in range(20)), key=lambda t: request_latency(LATENCY, JITTER, t)
    )
    quick, slow = prompts[0], prompts[-1]
    with (
        SimServer(protocol, api_key=KEY, latency=LATENCY, jitter=JITTER) as server,
        httpx.Client(timeout=5) as client,
    ):  # type: ignore[arg-type]
        client.get(f"{server.root_url}/_sim/stats")  # open the connection before timing
        for text in (quick, slow):
            url, body, headers = _chat(protocol, server, text)
            started = time.perf_counter()
            response = client.post(url, json=body, headers=headers)
            elapsed = time.perf_counter() - started
            assert response.status_code == 200, response.text
            expected = request_latency(LATENCY, JITTER, text)
            # A lower bound only: a loaded machine may add any delay, never remove one.
            assert elapsed >= expected, (text, expected, elapsed)
    assert request_latency(LATENCY, JITTER, slow) - request_latency(LATENCY, JITTER, quick) > 0.15
