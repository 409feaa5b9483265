"""A role whose primary is Bedrock and whose fallback is an OpenAI sim: a wrong AWS secret
(the sim recomputes the SigV4 signature: 403 InvalidSignatureException) or model access
not granted hands over at once and keeps Bedrock out afterwards; throttling is retried.
What the user reads when Bedrock alone fails names AWS's fixes, not an api_key's."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rolecall.config.schema import RolecallConfig
from rolecall.errors import AllProvidersFailed, CredentialsError
from rolecall.routing.router import Router
from rolecall.sim import Fault, SimServer
from rolecall.sim._bedrock import SIM_ACCESS_KEY_ID

SECRET = "sim-bedrock-routing-secret-42"
KEY = "test-key"
MODEL = "anthropic.claude-3-haiku-20240307-v1:0"


@pytest.fixture(scope="module")
def sims() -> Iterator[dict[str, SimServer]]:
    servers = {
        "aws": SimServer("bedrock", api_key=SECRET, reply="hello from bedrock", models=()),
        "gpt": SimServer("openai", api_key=KEY, reply="hello from gpt"),
    }
    for server in servers.values():
        server.start()
    yield servers
    for server in servers.values():
        server.stop()


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sims: dict[str, SimServer]) -> None:
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_BEARER_TOKEN_BEDROCK", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", SIM_ACCESS_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for server in sims.values():
        server.clear()
        server.reset_stats()


def _config(sims: dict[str, SimServer], fallback: tuple[str, ...] = ("gpt",)) -> RolecallConfig:
    providers: dict[str, Any] = {
        "aws": {
            "type": "bedrock",
            "model": MODEL,
            "region": "eu-west-1",
            "endpoint": sims["aws"].base_url,
            "timeout": 5,
        },
        "gpt": {
            "type": "openai",
            "model": "sim-model",
            "api_key": KEY,
            "base_url": sims["gpt"].base_url,
            "timeout": 5,
        },
    }
    return RolecallConfig.model_validate(
        {
            "providers": providers,
            "roles": {"coder": {"provider": "aws", "fallback": list(fallback)}},
            "retry": {"initial_backoff": 0.01, "max_backoff": 0.05},
        }
    )


def _outcomes(reply: Any) -> list[str]:
    return [
        f"{a.provider} {a.outcome}" + (f" {a.error_kind.value}" if a.error_kind else "")
        for a in reply.attempts
    ]


async def test_a_wrong_secret_hands_over_at_once_and_keeps_bedrock_out(
    sims: dict[str, SimServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "a-wrong-secret-access-key")
    async with Router(_config(sims)) as router:
        first = await router.complete("coder", "Plan the work.")
        second = await router.complete("coder", "And again.")
    assert first.provider == "gpt" and first.text == "hello from gpt"
    assert _outcomes(first) == ["aws handover auth", "gpt ok"]
    assert sims["aws"].calls == 1  # the 403 was not retried, nor tried again later
    assert "aws" not in {a.provider for a in second.attempts}
    assert sims["gpt"].calls == 2


async def test_model_access_not_granted_hands_over_streamed_too(
    sims: dict[str, SimServer],
) -> None:
    sims["aws"].set_faults(Fault("permission"))
    async with Router(_config(sims)) as router:
        stream = router.stream("coder", "Plan the work.")
        text = "".join([chunk async for chunk in stream])
    assert text == "hello from gpt"
    assert _outcomes(stream.reply) == ["aws handover permission", "gpt ok"]
    assert sims["aws"].calls == 1


async def test_throttling_is_retried_on_bedrock(sims: dict[str, SimServer]) -> None:
    sims["aws"].script(Fault("rate_limit"))
    async with Router(_config(sims)) as router:
        reply = await router.complete("coder", "Plan the work.")
    assert reply.provider == "aws" and reply.text == "hello from bedrock"
    assert _outcomes(reply) == ["aws retry rate_limit", "aws ok"]
    assert sims["gpt"].calls == 0


async def test_the_startup_check_names_the_aws_fix_and_never_the_secret(
    sims: dict[str, SimServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "a-wrong-secret-access-key")
    with pytest.raises(CredentialsError) as caught:
        async with Router(_config(sims), check_credentials=True):
            pass
    text = str(caught.value)
    assert "the AWS credentials of provider 'aws' were rejected" in text
    assert "aws sso login" in text and "api_key" not in text
    assert "a-wrong-secret-access-key" not in text and SECRET not in text
    assert sims["aws"].calls == 0  # the check spends no tokens


@pytest.mark.parametrize(
    ("variant", "words"),
    [("clock_behind", "Signature expired"), ("clock_ahead", "Signature not yet current")],
)
async def test_a_signature_refused_for_clock_skew_names_the_clock_not_the_keys(
    sims: dict[str, SimServer], variant: str, words: str
) -> None:
    sims["aws"].script_models(Fault("auth", variant=variant))
    with pytest.raises(CredentialsError) as caught:
        async with Router(_config(sims), check_credentials=True):
            pass
    text = str(caught.value)
    assert "this machine's clock is more than 5 minutes off" in text
    assert words in text  # AWS's own words stay, as evidence
    assert "AWS_ACCESS_KEY_ID" not in text and "aws sso login" not in text
    sims["aws"].set_faults(Fault("auth", variant=variant))
    async with Router(_config(sims, fallback=())) as router:
        with pytest.raises(AllProvidersFailed) as failed:
            await router.complete("coder", "Plan the work.")
    assert "this machine's clock is more than 5 minutes off" in str(failed.value)
    assert "AWS_ACCESS_KEY_ID" not in str(failed.value)


async def test_model_access_not_granted_alone_says_where_to_grant_it(
    sims: dict[str, SimServer],
) -> None:
    sims["aws"].set_faults(Fault("permission"))
    async with Router(_config(sims, fallback=())) as router:
        with pytest.raises(AllProvidersFailed) as caught:
            await router.complete("coder", "Plan the work.")
    text = str(caught.value)
    assert f"provider 'aws' may not invoke model '{MODEL}' in region 'eu-west-1'" in text
    assert "Bedrock console" in text
