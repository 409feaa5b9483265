"""Claude on Bedrock refuses what Claude refuses on Anthropic's API (``config/model_limits.py``:
temperature and top_p together for Sonnet 4.5 and its kin, max_tokens above the model's most),
in Bedrock's words: a 400 ``ValidationException``. A Bedrock provider whose model would refuse
the request is skipped before it is called (``unsupported``), over the real adapter and the
Bedrock sim, which refuses those values as Bedrock does."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from rolecall.config.schema import RolecallConfig
from rolecall.errors import AllProvidersFailed, ErrorKind
from rolecall.routing.router import Router
from rolecall.sim import SimServer
from rolecall.types import Attempt

SECRET = "sim-bedrock-limits-key-42"
KEY = "test-key"
SONNET = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
HAIKU_3 = "anthropic.claude-3-haiku-20240307-v1:0"


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
def fresh(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sims: dict[str, SimServer]) -> None:
    for name in ("AWS_PROFILE", "AWS_BEARER_TOKEN_BEDROCK", "AWS_ACCESS_KEY_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for server in sims.values():
        server.clear()
        server.reset_stats()


def _router(sims: dict[str, SimServer], model: str = SONNET) -> Router:
    providers: dict[str, Any] = {
        "aws": {
            "type": "bedrock",
            "model": model,
            "region": "us-east-1",
            "api_key": SECRET,
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
    config = RolecallConfig.model_validate(
        {
            "providers": providers,
            "roles": {"coder": {"provider": "aws", "fallback": ["gpt"]}},
            "retry": {"max_attempts": 1},
        }
    )
    return Router(config, check_credentials=False)


def _skipped(pid: str) -> Attempt:
    return Attempt(pid, 0, "handover", ErrorKind.UNSUPPORTED, 0.0)


async def test_claude_on_bedrock_is_skipped_for_temperature_and_top_p_together(
    sims: dict[str, SimServer],
) -> None:
    async with _router(sims) as router:
        reply = await router.complete("coder", "hi", params={"temperature": 0.5, "top_p": 0.9})
        assert reply.provider == "gpt" and reply.attempts[0] == _skipped("aws")
        reply = await router.complete("coder", "hi", params={"top_p": 0.9})
    assert reply.provider == "aws"
    assert sims["aws"].requests[-1].json["inferenceConfig"] == {"topP": 0.9}
    assert sims["aws"].calls == 1


async def test_max_tokens_above_claudes_most_on_bedrock_skips_it(
    sims: dict[str, SimServer],
) -> None:
    async with _router(sims) as router:
        reply = await router.complete("coder", "hi", params={"max_tokens": 64001})
        assert reply.provider == "gpt" and reply.attempts[0] == _skipped("aws")
        reply = await router.complete("coder", "hi", params={"max_tokens": 64000})
    assert reply.provider == "aws"
    assert sims["aws"].calls == 1


async def test_a_bedrock_model_the_table_does_not_name_gets_every_value(
    sims: dict[str, SimServer],
) -> None:
    async with _router(sims, HAIKU_3) as router:
        params = {"temperature": 0.5, "top_p": 0.9, "max_tokens": 100000}
        reply = await router.complete("coder", "hi", params=params)
    assert reply.provider == "aws"


async def test_a_thinking_budget_claude_refuses_skips_bedrock(
    sims: dict[str, SimServer],
) -> None:
    low = {"thinking": {"type": "enabled", "budget_tokens": 1000}}
    high = {"thinking": {"type": "enabled", "budget_tokens": 2000}, "max_tokens": 2000}
    async with _router(sims) as router:
        for params in (low, high):
            with pytest.raises(AllProvidersFailed) as caught:
                await router.complete("coder", "hi", params=params)
            assert caught.value.errors[0].kind == ErrorKind.UNSUPPORTED
        fits = {"thinking": {"type": "enabled", "budget_tokens": 1024}, "max_tokens": 2000}
        reply = await router.complete("coder", "hi", params=fits)
    assert reply.provider == "aws"
    assert sims["aws"].calls == 1


async def _converse(
    sims: dict[str, SimServer], model: str, inference: dict[str, Any], budget: int | None = None
) -> Any:
    body: dict[str, Any] = {
        "messages": [{"role": "user", "content": [{"text": "hi"}]}],
        "inferenceConfig": inference,
    }
    if budget is not None:
        thinking = {"type": "enabled", "budget_tokens": budget}
        body["additionalModelRequestFields"] = {"thinking": thinking}
    async with httpx.AsyncClient() as client:
        return await client.post(
            f"{sims['aws'].base_url}/model/{model}/converse",
            json=body,
            headers={"Authorization": f"Bearer {SECRET}"},
        )


@pytest.mark.parametrize(
    ("inference", "said"),
    [
        (
            {"temperature": 0.5, "topP": 0.9},
            "The model returned the following errors: `temperature` and `top_p` cannot both "
            "be specified for this model. Please use only one.",
        ),
        (
            {"maxTokens": 64001},
            "The maximum tokens you requested exceeds the model limit of 64000. Try again "
            "with a maximum tokens value that is lower than 64000.",
        ),
    ],
)
async def test_the_bedrock_sim_refuses_what_claude_refuses(
    sims: dict[str, SimServer], inference: dict[str, Any], said: str
) -> None:
    answer = await _converse(sims, SONNET, inference)
    assert answer.status_code == 400
    assert answer.headers["x-amzn-ErrorType"].startswith("ValidationException:")
    assert answer.json() == {"message": said}
    assert (await _converse(sims, HAIKU_3, inference)).status_code == 200


@pytest.mark.parametrize(
    ("budget", "said"),
    [
        (
            1000,
            "The model returned the following errors: thinking.enabled.budget_tokens: Input "
            "should be greater than or equal to 1024",
        ),
        (2000, "`max_tokens` must be greater than `thinking.budget_tokens`"),
    ],
)
async def test_the_bedrock_sim_refuses_a_thinking_budget_claude_refuses(
    sims: dict[str, SimServer], budget: int, said: str
) -> None:
    answer = await _converse(sims, HAIKU_3, {"maxTokens": 2000}, budget)
    assert answer.status_code == 400
    assert answer.json()["message"].startswith(said)
