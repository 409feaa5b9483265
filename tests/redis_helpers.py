"""Redis for the shared provider-health tests: the server to use, and one to kill.

Redis comes from $ROLECALL_TEST_REDIS_URL (``eval "$(.ci/start-redis)"`` starts one).
Without it (or when it does not answer) the Redis cases are skipped, saying why;
under CI=true they fail instead, so CI cannot pass without exercising Redis.
:class:`DedicatedRedis` starts a ``redis-server`` of a test's own on a free port and
kills it by pid.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from typing import Any

import pytest

REDIS_ENV = "ROLECALL_TEST_REDIS_URL"


def unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"shared-health Redis tests cannot run under CI: {reason}")
    pytest.skip(f"shared-health Redis tests skipped: {reason}")


def redis_package() -> Any:
    try:
        import redis
    except ImportError:
        unavailable("the redis package is not installed (pip install 'rolecall[redis]')")
    return redis


def delete_keys(url: str, prefix: str) -> None:
    redis = redis_package()
    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        keys = list(client.scan_iter(f"{prefix}:*"))
        if keys:
            client.delete(*keys)
    except redis.RedisError:
        pass  # a dedicated server that the test killed
    finally:
        client.close()


def redis_keys(url: str, prefix: str) -> dict[str, int]:
    """Every key under ``prefix`` with its time to live in ms."""
    redis = redis_package()
    client = redis.Redis.from_url(url, socket_connect_timeout=2, decode_responses=True)
    try:
        return {key: client.pttl(key) for key in client.scan_iter(f"{prefix}:*")}
    finally:
        client.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class DedicatedRedis:
    """A redis-server of this test's own on 127.0.0.1; ``kill()`` ends it by pid."""

    def __init__(self, port: int | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            unavailable("redis-server is not installed (.ci/start-redis installs it)")
        assert binary is not None
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        options = ["--save", "", "--appendonly", "no", "--daemonize", "no"]
        self.process = subprocess.Popen(
            [binary, "--bind", "127.0.0.1", "--port", str(self.port), *options],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._wait_ready()

    def _wait_ready(self) -> None:
        redis = redis_package()
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 5
        try:
            while True:
                try:
                    client.ping()
                    return
                except redis.RedisError as exc:
                    if time.monotonic() > deadline or self.process.poll() is not None:
                        message = f"redis-server did not start on port {self.port}"
                        raise RuntimeError(message) from exc
                    time.sleep(0.02)
        finally:
            client.close()

    def kill(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, 9)
        self.process.wait(10)
