"""Helpers for the gateway tests: a real gateway (uvicorn in a thread, 127.0.0.1 port 0)."""

from __future__ import annotations

import asyncio
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from rolecall.config.load import load_config
from rolecall.gateway.app import Gateway
from rolecall.gateway.server import GatewayServer, bind_socket
from rolecall.sim import SimServer

PRIMARY_KEY = "sk-primary-provider-secret-0001"
FALLBACK_KEY = "sk-fallback-provider-secret-0002"
GATEWAY_KEY = "gw-test-gateway-key-0003"
SECRETS = (PRIMARY_KEY, FALLBACK_KEY, GATEWAY_KEY)


class RunningGateway:
    """``rolecall serve`` in-process: the gateway's own event loop in a daemon thread."""

    def __init__(
        self,
        config_path: Path,
        *,
        offline: bool = False,
        poll_interval: float = 0.05,
        max_connections: int | None = None,
        **options: Any,
    ) -> None:
        self.gateway = Gateway(
            load_config(config_path),
            config_path=config_path,
            offline=offline,
            poll_interval=poll_interval,
            **options,
        )
        self.server = GatewayServer(
            self.gateway,
            bind_socket("127.0.0.1", 0),
            access_log=False,
            log_level="warning",
            max_connections=max_connections,
        )
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            asyncio.run(self.server.serve())
        except BaseException as exc:
            self.error = exc

    def start(self) -> RunningGateway:
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if self.error is not None:
                raise self.error
            if time.monotonic() > deadline:
                raise TimeoutError("the gateway did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.stop()
        self._thread.join(15)
        assert not self._thread.is_alive(), "the gateway did not stop"

    @property
    def url(self) -> str:
        return self.server.url + "/v1"

    def client(self, key: str | None = GATEWAY_KEY) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.server.url, headers=headers, timeout=20)


def config_text(
    primary: SimServer,
    fallback: SimServer,
    *,
    coder: str = "{provider: a, fallback: [b]}",
    keys: str = '["${GATEWAY_KEY}"]',
    tmp: Path,
    extra: str = "",
) -> str:
    return textwrap.dedent(
        f"""\
        providers:
          a:
            type: openai-compatible
            model: model-a
            base_url: {primary.base_url}
            api_key: ${{PRIMARY_KEY}}
          b:
            type: anthropic
            model: model-b
            base_url: {fallback.base_url}
            api_key: ${{FALLBACK_KEY}}
        roles:
          coder: {coder}
          reviewer: {{provider: b}}
        retry: {{max_attempts: 1, initial_backoff: 10ms}}
        metrics:
          url: sqlite:///{tmp}/rolecall.db
          runs_dir: {tmp}/runs
          flush_interval: 50ms
        gateway:
          keys: {keys}
          max_body_bytes: 4096
        """
    ) + textwrap.dedent(extra)


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(0.02)
