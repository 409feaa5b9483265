"""Shared constants and SDK clients for the sim tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rolecall.sim import SimServer

KEY = "test-key"
PROMPT = "Say hello to the sim please"  # 6 words: the sim counts 6 input tokens
REPLY = "Hello from the sim."  # 4 words: 4 output tokens
MESSAGES: list[Any] = [{"role": "user", "content": PROMPT}]


_clients: dict[tuple[str, str, str, float], Any] = {}


def _cached(kind: str, server: SimServer, key: str, timeout: float, make: Callable[[], Any]) -> Any:
    """SDK clients are slow to build; reuse one per server, key and timeout."""
    slot = (kind, server.base_url, key, timeout)
    if slot not in _clients:
        _clients[slot] = make()
    return _clients[slot]


def openai_client(server: SimServer, key: str = KEY, timeout: float = 5.0) -> Any:
    import openai

    return _cached(
        "openai",
        server,
        key,
        timeout,
        lambda: openai.OpenAI(
            base_url=server.base_url, api_key=key, max_retries=0, timeout=timeout
        ),
    )


def anthropic_client(server: SimServer, key: str = KEY, timeout: float = 5.0) -> Any:
    import anthropic

    return _cached(
        "anthropic",
        server,
        key,
        timeout,
        lambda: anthropic.Anthropic(
            base_url=server.base_url, api_key=key, max_retries=0, timeout=timeout
        ),
    )


def google_client(server: SimServer, key: str = KEY, timeout: float = 5.0) -> Any:
    from google import genai
    from google.genai import types

    options = types.HttpOptions(base_url=server.base_url, timeout=int(timeout * 1000))
    return _cached(
        "google", server, key, timeout, lambda: genai.Client(api_key=key, http_options=options)
    )


PROJECT = "sim-project"
LOCATION = "us-central1"


def vertex_client(server: SimServer, credentials: Any, timeout: float = 5.0) -> Any:
    """google-genai on Vertex AI (project, location, OAuth credentials) at the sim."""
    from google import genai
    from google.genai import types

    options = types.HttpOptions(base_url=server.base_url, timeout=int(timeout * 1000))
    return genai.Client(
        vertexai=True,
        project=PROJECT,
        location=LOCATION,
        credentials=credentials,
        http_options=options,
    )


def bedrock_client(
    server: SimServer,
    secret: str = KEY,
    timeout: float = 5.0,
    service: str = "bedrock-runtime",
    access_key_id: str | None = None,
) -> Any:
    """boto3's client for Bedrock Runtime (or the ``bedrock`` control plane) at the sim,
    signing with SigV4 as the sim's access key id and ``secret``, never retrying."""
    import boto3
    from botocore.config import Config

    from rolecall.sim._bedrock import SIM_ACCESS_KEY_ID

    config = Config(
        retries={"total_max_attempts": 1}, read_timeout=timeout, connect_timeout=timeout
    )
    return _cached(
        f"{service}:{access_key_id}",
        server,
        secret,
        timeout,
        lambda: boto3.client(
            service,
            region_name="us-east-1",
            endpoint_url=server.base_url,
            aws_access_key_id=access_key_id or SIM_ACCESS_KEY_ID,
            aws_secret_access_key=secret,
            config=config,
        ),
    )


def transport_errors() -> tuple[type[BaseException], ...]:
    """What google-genai lets through on a dropped or silent connection (httpx or httpx2)."""
    import httpx

    errors: list[type[BaseException]] = [httpx.TransportError]
    try:
        import httpx2

        errors.append(httpx2.TransportError)
    except ImportError:  # pragma: no cover - depends on the google-genai version
        pass
    return tuple(errors)


def sse_events(raw: bytes) -> list[tuple[str | None, str]]:
    """(event name, data) pairs of a server-sent event stream."""
    events: list[tuple[str | None, str]] = []
    text = raw.decode().replace("\r\n", "\n")
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        name: str | None = None
        data: list[str] = []
        for line in block.split("\n"):
            if line.startswith("event: "):
                name = line[len("event: ") :]
            elif line.startswith("data: "):
                data.append(line[len("data: ") :])
        events.append((name, "\n".join(data)))
    return events
