"""Google Cloud access tokens: loaded and refreshed off the event loop, once however many
calls wait, renewed before they expire, and every failure a one-line error with its fix."""

from __future__ import annotations

import asyncio
import json
import sys
import threading
from pathlib import Path

import pytest
from google.auth import exceptions

from google_credentials import TOKEN, FakeCredentials
from rolecall._secrets import redact
from rolecall.errors import ErrorKind, MissingExtra, ProviderError
from rolecall.providers._google_auth import REFRESH_MARGIN, SCOPES, AccessToken, load_credentials

T0 = 1_767_225_600.0  # 2026-01-01 00:00 UTC


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


async def test_first_call_refreshes_in_a_worker_thread(clock: Clock) -> None:
    credentials = FakeCredentials(clock=clock, quota_project_id="billing-project")
    token = AccessToken("vertex", credentials=credentials, clock=clock)
    headers = await token.headers()
    assert headers == {
        "authorization": f"Bearer {TOKEN}",
        "x-goog-user-project": "billing-project",
    }
    assert credentials.refreshes == 1
    assert credentials.refresh_threads != [threading.current_thread().name]


async def test_concurrent_calls_wait_for_one_refresh(clock: Clock) -> None:
    credentials = FakeCredentials(clock=clock)
    token = AccessToken("vertex", credentials=credentials, clock=clock)
    results = await asyncio.gather(*(token.headers() for _ in range(20)))
    assert {r["authorization"] for r in results} == {f"Bearer {TOKEN}"}
    assert credentials.refreshes == 1


async def test_token_is_kept_until_the_margin_before_expiry_then_renewed(clock: Clock) -> None:
    credentials = FakeCredentials(["ya29.one", "ya29.two"], lifetime=3600, clock=clock)
    token = AccessToken("vertex", credentials=credentials, clock=clock)
    assert (await token.headers())["authorization"] == "Bearer ya29.one"
    clock.now += 3600 - REFRESH_MARGIN - 1
    assert (await token.headers())["authorization"] == "Bearer ya29.one"
    clock.now += 1
    assert (await token.headers())["authorization"] == "Bearer ya29.two"
    assert credentials.refreshes == 2


async def test_credentials_that_hold_a_valid_token_are_not_refreshed(clock: Clock) -> None:
    credentials = FakeCredentials(clock=clock)
    credentials.refresh(None)  # as google.auth hands out credentials it has just refreshed
    token = AccessToken("vertex", credentials=credentials, clock=clock)
    assert (await token.headers())["authorization"] == f"Bearer {TOKEN}"
    assert credentials.refreshes == 1


async def test_a_token_the_server_refused_is_renewed_once_for_all_refused_calls(
    clock: Clock,
) -> None:
    credentials = FakeCredentials(["ya29.one", "ya29.two", "ya29.three"], clock=clock)
    token = AccessToken("vertex", credentials=credentials, clock=clock)
    refused = dict(await token.headers())
    assert await asyncio.gather(*(token.renewed(refused) for _ in range(5))) == [True] * 5
    assert (await token.headers())["authorization"] == "Bearer ya29.two"
    assert credentials.refreshes == 2


async def test_a_refused_token_renewed_to_itself_is_not_sent_again(clock: Clock) -> None:
    credentials = FakeCredentials(["ya29.only"], clock=clock)
    token = AccessToken("vertex", credentials=credentials, clock=clock)
    assert not await token.renewed(dict(await token.headers()))
    assert credentials.refreshes == 2


async def test_tokens_are_masked_and_a_replaced_one_is_dropped(clock: Clock) -> None:
    credentials = FakeCredentials(["ya29.mask-me-one", "ya29.mask-me-two"], clock=clock)
    token = AccessToken("vertex", credentials=credentials, clock=clock)
    refused = await token.headers()
    assert redact("echo ya29.mask-me-one") == "echo ***"
    assert await token.renewed(refused)
    assert redact("echo ya29.mask-me-two") == "echo ***"
    assert redact("echo ya29.mask-me-one") == "echo ya29.mask-me-one"


@pytest.mark.parametrize(
    ("error", "kind", "words"),
    [
        (exceptions.RefreshError("invalid_grant: Bad Request"), ErrorKind.AUTH, "refused"),
        (exceptions.RefreshError("500 from token server", retryable=True), ErrorKind.SERVER, ""),
        (exceptions.TransportError("connection refused"), ErrorKind.NETWORK, "cannot be reached"),
        (RuntimeError("odd"), ErrorKind.AUTH, "failed: odd"),
    ],
)
async def test_refresh_failures_are_provider_errors(
    clock: Clock, error: BaseException, kind: ErrorKind, words: str
) -> None:
    token = AccessToken("vertex", credentials=FakeCredentials(clock=clock, error=error))
    with pytest.raises(ProviderError) as raised:
        await token.headers()
    assert raised.value.kind is kind
    assert raised.value.provider == "vertex"
    assert words in str(raised.value)
    assert "\n" not in str(raised.value)


async def test_credentials_without_a_token_are_an_auth_error(clock: Clock) -> None:
    credentials = FakeCredentials([""], clock=clock)
    with pytest.raises(ProviderError) as raised:
        await AccessToken("vertex", credentials=credentials, clock=clock).headers()
    assert raised.value.kind is ErrorKind.AUTH
    assert "gave no access token" in str(raised.value)


async def test_no_application_default_credentials_names_the_fix(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    with pytest.raises(ProviderError) as raised:
        await AccessToken("vertex").headers()
    message = str(raised.value)
    assert raised.value.kind is ErrorKind.AUTH
    assert "gcloud auth application-default login" in message
    assert "providers.vertex.credentials_file" in message


@pytest.mark.parametrize("content", [None, "not json", json.dumps({"type": "nonsense"})])
async def test_a_bad_credentials_file_is_an_auth_error(tmp_path: Path, content: str | None) -> None:
    path = tmp_path / "key.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ProviderError) as raised:
        await AccessToken("vertex", credentials_file=str(path)).headers()
    assert raised.value.kind is ErrorKind.AUTH
    assert "\n" not in str(raised.value)


def test_without_google_auth_the_extra_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m == "google" or m.startswith("google.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "google", None)  # the namespace package is absent
    with pytest.raises(MissingExtra) as raised:
        AccessToken("vertex")
    assert "pip install 'rolecall[vertex]'" in str(raised.value)
    AccessToken("vertex", credentials=object())  # handed-in credentials need no google-auth


async def test_another_kind_of_credentials_file_points_to_the_environment(
    tmp_path: Path,
) -> None:
    path = tmp_path / "wif.json"
    path.write_text(json.dumps({"type": "external_account", "audience": "x"}))
    with pytest.raises(ProviderError) as raised:
        await AccessToken("vertex", credentials_file=str(path)).headers()
    assert str(raised.value).startswith("providers.vertex.credentials_file: ")
    assert "GOOGLE_APPLICATION_CREDENTIALS" in str(raised.value)


def _private_key_pem() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def test_a_service_account_key_file_is_scoped_to_cloud_platform(tmp_path: Path) -> None:
    path = tmp_path / "sa.json"
    info = {
        "type": "service_account",
        "project_id": "p",
        "private_key_id": "k1",
        "private_key": _private_key_pem(),
        "client_email": "robot@p.iam.gserviceaccount.com",
        "token_uri": "https://oauth2.googleapis.com/token",
    }
    path.write_text(json.dumps(info))
    credentials = load_credentials(str(path))
    assert credentials.service_account_email == "robot@p.iam.gserviceaccount.com"
    assert list(credentials.scopes) == list(SCOPES)


def test_a_gcloud_application_default_file_keeps_its_quota_project(tmp_path: Path) -> None:
    path = tmp_path / "application_default_credentials.json"
    info = {
        "type": "authorized_user",
        "client_id": "id.apps.googleusercontent.com",
        "client_secret": "s",
        "refresh_token": "1//r",
        "quota_project_id": "billing-project",
    }
    path.write_text(json.dumps(info))
    credentials = load_credentials(str(path))
    assert credentials.quota_project_id == "billing-project"
    assert credentials.token is None  # refreshed on first use, in a worker thread
