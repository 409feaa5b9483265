"""Store fixtures: every store test runs against SQLite and against PostgreSQL.

PostgreSQL comes from $ROLECALL_TEST_POSTGRES_URL (``eval "$(.ci/start-postgres)"``
starts one). Without it the PostgreSQL cases are skipped, saying why; under CI=true
they fail instead, so CI can never pass without having exercised PostgreSQL.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from rolecall.recording.store import MetricsStore, open_store

POSTGRES_ENV = "ROLECALL_TEST_POSTGRES_URL"


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"PostgreSQL store tests cannot run under CI: {reason}")
    pytest.skip(f"PostgreSQL store tests skipped: {reason}")


def _with_search_path(url: str, schema: str) -> str:
    joiner = "&" if "?" in url else "?"
    return f"{url}{joiner}options=-csearch_path%3D{schema}"


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The admin URL of a reachable test server (skips or fails otherwise)."""
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        _unavailable(f'${POSTGRES_ENV} is not set (eval "$(.ci/start-postgres)" sets it)')
    assert url is not None
    try:
        import psycopg
    except ImportError:
        _unavailable("psycopg is not installed (pip install 'rolecall[postgres]')")
    try:
        with psycopg.connect(url, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        _unavailable(f"cannot connect to ${POSTGRES_ENV}: {str(exc).strip().splitlines()[0]}")
    return url


@pytest.fixture
def postgres_schema_url(postgres_url: str) -> Iterator[str]:
    """A URL whose tables live in a fresh schema, dropped after the test."""
    import psycopg

    schema = f"rolecall_test_{secrets.token_hex(6)}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield _with_search_path(postgres_url, schema)
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'metrics.db'}"
    url: str = request.getfixturevalue("postgres_schema_url")
    return url


@pytest.fixture
def store(store_url: str) -> Iterator[MetricsStore]:
    opened = open_store(store_url)
    try:
        yield opened
    finally:
        opened.close()
