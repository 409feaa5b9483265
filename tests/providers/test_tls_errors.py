"""A failed TLS handshake is its own kind: not retried, handed over, with a hint to fix it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from transport_servers import connect_proxy, test_authority, tls_front

from rolecall.config.schema import ProviderConfig, RolecallConfig
from rolecall.errors import ErrorKind, ProviderError
from rolecall.providers import build_provider
from rolecall.providers._http import shared_ssl_context
from rolecall.providers._wire_proxy import ProxiedClient
from rolecall.routing._hints import explain
from rolecall.routing.router import Router
from rolecall.sim import SimServer
from rolecall.types import ChatRequest, Message

REQUEST = ChatRequest((Message("user", "hi"),))


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    for name in ("SSL_CERT_FILE", "SSL_CERT_DIR", "NO_PROXY", "no_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("HTTPS_PROXY", raising=False)
    shared_ssl_context.cache_clear()
    yield monkeypatch
    shared_ssl_context.cache_clear()


@asynccontextmanager
async def tls_sim(directory: Path, host: str) -> AsyncIterator[tuple[SimServer, str, Path]]:
    """An OpenAI sim behind TLS with a certificate for ``host`` from a test CA the client
    does not know; yields the sim, its https base URL and the CA's PEM file."""
    authority = test_authority(directory, host)
    with SimServer("openai", models=("m",)) as sim:
        async with tls_front(sim.port, authority.server_context) as port:
            yield sim, f"https://{host}:{port}/v1", authority.ca_file


def openai(base_url: str) -> dict[str, object]:
    return {"type": "openai", "model": "m", "api_key": "test-key", "base_url": base_url}


async def call(base_url: str) -> str:
    provider = build_provider("p", ProviderConfig.model_validate(openai(base_url)))
    try:
        return (await provider.complete(REQUEST)).text  # type: ignore[attr-defined, no-any-return]
    finally:
        await provider.aclose()


async def test_an_untrusted_certificate_is_a_tls_error(
    env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    async with tls_sim(tmp_path, "localhost") as (_sim, base_url, _):
        with pytest.raises(ProviderError) as info:
            await call(base_url)
    assert info.value.kind is ErrorKind.TLS
    assert "certificate verify failed" in info.value.message
    assert not ErrorKind.TLS.retryable


async def test_ssl_cert_file_names_the_trusted_authority(
    env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    async with tls_sim(tmp_path, "localhost") as (sim, base_url, ca_file):
        env.setenv("SSL_CERT_FILE", str(ca_file))
        assert await call(base_url) == sim.reply


async def test_ssl_cert_dir_names_the_trusted_authority(
    env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    async with tls_sim(tmp_path, "localhost") as (sim, base_url, ca_file):
        certs = tmp_path / "certs"
        certs.mkdir()
        _rehash(ca_file, certs)
        env.setenv("SSL_CERT_DIR", str(certs))
        assert await call(base_url) == sim.reply


def _rehash(ca_file: Path, directory: Path) -> None:
    """As ``c_rehash`` does: OpenSSL finds a CA in a directory as ``<subject hash>.0``."""
    import shutil
    import subprocess

    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is needed to name a CA file by its subject hash")
    out = subprocess.run(
        [openssl, "x509", "-hash", "-noout", "-in", str(ca_file)],
        capture_output=True,
        text=True,
        check=True,
    )
    (directory / f"{out.stdout.strip()}.0").write_bytes(ca_file.read_bytes())


async def test_a_missing_ssl_cert_file_is_a_tls_error_naming_it(
    env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env.setenv("SSL_CERT_FILE", str(tmp_path / "missing.pem"))
    with pytest.raises(ProviderError) as info:
        await call("https://vendor.example/v1")
    assert info.value.kind is ErrorKind.TLS
    assert "SSL_CERT_FILE" in info.value.message


async def test_through_a_proxy_an_untrusted_certificate_is_a_tls_error_too(
    env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    async with tls_sim(tmp_path, "vendor.example") as (_, base_url, _), connect_proxy() as proxy:
        env.setenv("HTTPS_PROXY", proxy.url)
        provider = build_provider("p", ProviderConfig.model_validate(openai(base_url)))
        assert isinstance(provider.client, ProxiedClient)  # type: ignore[attr-defined]
        with pytest.raises(ProviderError) as info:
            await provider.complete(REQUEST)  # type: ignore[attr-defined]
        await provider.aclose()
    assert info.value.kind is ErrorKind.TLS


async def test_the_router_hands_over_at_once_with_a_hint(
    env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        await asyncio.sleep(seconds)

    async with tls_sim(tmp_path, "localhost") as (sim, base_url, _):
        config = RolecallConfig.model_validate(
            {
                "schema_version": 1,
                "providers": {"vendor": openai(base_url), "spare": openai(sim.base_url)},
                "roles": {"coder": {"provider": "vendor", "fallback": ["spare"]}},
                "retry": {"max_attempts": 3},
            }
        )
        async with Router(config, sleep=sleep) as router:
            reply = await router.complete("coder", [{"role": "user", "content": "hi"}])
    assert reply.provider == "spare" and reply.text == sim.reply
    vendor = [a for a in reply.attempts if a.provider == "vendor"]
    assert [(a.outcome, a.error_kind) for a in vendor] == [("handover", ErrorKind.TLS)]
    # No retry backoff; only the stall race's failover_within timer may have slept.
    assert [s for s in sleeps if s != config.failover_within] == []
    error = ProviderError("TLS with localhost failed", kind=ErrorKind.TLS, provider="vendor")
    hint = explain(error, config)
    assert "SSL_CERT_FILE" in hint and "SSL_CERT_DIR" in hint and base_url in hint
