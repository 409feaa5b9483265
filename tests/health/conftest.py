"""Fixtures for the shared-health tests: a reachable Redis, a key prefix, a server to kill."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from redis_helpers import REDIS_ENV, DedicatedRedis, delete_keys, redis_package, unavailable


@pytest.fixture(scope="module")
def redis_url() -> str:
    """A reachable test server (skips, or fails under CI, otherwise)."""
    url = os.environ.get(REDIS_ENV)
    if not url:
        unavailable(f'${REDIS_ENV} is not set (eval "$(.ci/start-redis)" sets it)')
    assert url is not None
    redis = redis_package()
    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        unavailable(f"cannot reach ${REDIS_ENV}: {exc}")
    finally:
        client.close()
    return url


@pytest.fixture
def prefix(redis_url: str) -> Iterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards."""
    name = f"rolecall-test-{uuid.uuid4().hex[:12]}"
    yield name
    delete_keys(redis_url, name)


@pytest.fixture
def dedicated_redis(redis_url: str) -> Iterator[DedicatedRedis]:
    server = DedicatedRedis()
    yield server
    server.kill()
