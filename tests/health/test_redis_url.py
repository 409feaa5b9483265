"""A ``state.redis_url`` that cannot work is a config error, found before any call.

Before, only the scheme was checked, and only once a router was built: a bad port,
database or option passed ``config validate`` and then ended every ``ask`` in a
redis-py traceback.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from rolecall.cli import main
from rolecall.sim import SimServer

KEY = "test-key"
PASSWORD = "hunter2-redis-pass"


@pytest.fixture
def sim() -> Iterator[SimServer]:
    with SimServer("openai", api_key=KEY) as server:
        yield server


def _write_config(tmp_path: Path, sim: SimServer, url: str) -> Path:
    path = tmp_path / "rolecall.yaml"
    path.write_text(
        f"""
providers:
  x: {{type: openai, model: sim-model, api_key: {KEY}, base_url: "{sim.base_url}"}}
roles:
  coder: {{provider: x}}
state:
  redis_url: "{url}"
"""
    )
    return path


BAD_URLS = [
    f"redis://:{PASSWORD}@127.0.0.1:notaport/0",
    "redis://127.0.0.1:99999/0",
    "redis://[::1/0",
    "redis://127.0.0.1:6379/cache",
    f"http://user:{PASSWORD}@127.0.0.1:6379/0",
]


@pytest.mark.parametrize("url", BAD_URLS)
def test_config_validate_names_a_bad_redis_url(
    url: str, tmp_path: Path, sim: SimServer, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write_config(tmp_path, sim, url)
    code = main(["config", "validate", "-c", str(path)])
    out, err = capsys.readouterr()
    assert code == 2
    assert "state.redis_url" in out + err
    assert "redis://HOST:PORT/DB" in out + err
    assert PASSWORD not in out + err


@pytest.mark.parametrize("url", [*BAD_URLS, "redis://127.0.0.1:6379/0?socket_timeout=abc"])
def test_ask_with_a_bad_redis_url_is_a_one_line_config_error_not_a_traceback(
    url: str, tmp_path: Path, sim: SimServer, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write_config(tmp_path, sim, url)
    code = main(["ask", "coder", "hi", "-c", str(path), "--offline"])
    out, err = capsys.readouterr()
    assert code == 2, err
    assert out == ""
    assert "Traceback" not in err
    assert "state.redis_url" in err
    assert PASSWORD not in err
    assert sim.calls == 0


# A query option with a value redis-py cannot use: it only applies it at the first
# connection, so the mistake showed as a warning and health kept in one process.
BAD_OPTIONS = [
    ("socket_timeout=abc", "socket_timeout"),
    ("socket_connect_timeout=-1", "socket_connect_timeout"),
    ("db=x", "db"),
    ("protocol=9", "protocol"),
    ("health_check_interval=1.5", "health_check_interval"),
    ("retry_on_error=NoSuchError", "retry_on_error"),
]


@pytest.mark.parametrize(("query", "option"), BAD_OPTIONS)
def test_config_validate_names_a_redis_url_option_with_a_bad_value(
    query: str, option: str, tmp_path: Path, sim: SimServer, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write_config(tmp_path, sim, f"redis://:{PASSWORD}@127.0.0.1:6379/0?{query}")
    code = main(["config", "validate", "-c", str(path)])
    out, err = capsys.readouterr()
    assert code == 2
    lines = [line for line in (out + err).splitlines() if "state.redis_url" in line]
    assert len(lines) == 1
    assert option in lines[0]
    assert "fix" in lines[0] or f"{option}=" in lines[0]
    assert PASSWORD not in out + err


def test_config_validate_accepts_redis_url_options_with_good_values(
    tmp_path: Path, sim: SimServer, capsys: pytest.CaptureFixture[str]
) -> None:
    url = "redis://127.0.0.1:6379/0?socket_timeout=0.5&db=1&protocol=3&health_check_interval=10"
    path = _write_config(tmp_path, sim, url)
    code = main(["config", "validate", "-c", str(path), "--offline"])
    out, err = capsys.readouterr()
    assert code == 0, out + err


# A query option name redis-py does not know: it passed the URL through to the connection,
# which refused it only at the first call (a TypeError, shown as Redis being unreachable).
@pytest.mark.parametrize(
    ("url", "unknown"),
    [
        ("redis://127.0.0.1:6379/0?sockettimeout=0.5", "sockettimeout"),
        ("redis://127.0.0.1:6379/0?db=1&foo=1", "foo"),
        ("redis://127.0.0.1:6379/0?ssl_certfile=/tmp/c.pem", "ssl_certfile"),  # rediss only
        ("unix:///tmp/redis.sock?socket_keepalive=true", "socket_keepalive"),  # TCP only
    ],
)
def test_config_validate_names_an_unknown_redis_url_option_and_the_known_ones(
    url: str, unknown: str, tmp_path: Path, sim: SimServer, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write_config(tmp_path, sim, url)
    code = main(["config", "validate", "-c", str(path), "--offline"])
    out, err = capsys.readouterr()
    assert code == 2, out + err
    lines = [line for line in (out + err).splitlines() if "state.redis_url" in line]
    assert len(lines) == 1, out + err
    assert f"no query option {unknown} in a" in lines[0]
    assert "socket_timeout" in lines[0] and "client_name" in lines[0]  # the known ones
    assert "Traceback" not in out + err


def test_config_validate_accepts_the_tls_options_of_a_rediss_url(
    tmp_path: Path, sim: SimServer, capsys: pytest.CaptureFixture[str]
) -> None:
    url = "rediss://127.0.0.1:6379/0?ssl_cert_reqs=required&ssl_ca_certs=/tmp/ca.pem&client_name=x"
    path = _write_config(tmp_path, sim, url)
    code = main(["config", "validate", "-c", str(path), "--offline"])
    out, err = capsys.readouterr()
    assert code == 0, out + err
