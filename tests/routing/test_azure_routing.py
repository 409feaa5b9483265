"""A router with an Azure OpenAI deployment first and OpenAI as its fallback, both real
adapters against the sims: what Azure says decides between a retry and an immediate
hand-over, and an Entra ID token that expires mid-run is refreshed, not handed over."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

import pytest

from rolecall.config.schema import RolecallConfig
from rolecall.providers.azure_openai import AzureOpenAIProvider
from rolecall.routing.router import Router
from rolecall.sim import Fault, SimServer

KEY = "azure-routing-key-0123456789"


@pytest.fixture(scope="module")
def _sims() -> Iterator[dict[str, SimServer]]:
    sims = {
        "azure": SimServer("azure-openai", api_key=KEY, reply="hello from azure"),
        "gpt": SimServer("openai", api_key=KEY, reply="hello from gpt"),
    }
    for server in sims.values():
        server.start()
    yield sims
    for server in sims.values():
        server.stop()


@pytest.fixture
def sims(_sims: dict[str, SimServer]) -> dict[str, SimServer]:
    for server in _sims.values():
        server.clear()
        server.reset_stats()
        server.api_key = KEY
    return _sims


def _config(sims: dict[str, SimServer], **azure: Any) -> RolecallConfig:
    entry = {
        "type": "azure-openai",
        "endpoint": sims["azure"].base_url,
        "deployment": "sim-model",
        "api_key": KEY,
        "timeout": 5,
        **azure,
    }
    gpt = {"type": "openai", "model": "sim-model", "api_key": KEY, "base_url": sims["gpt"].base_url}
    return RolecallConfig.model_validate(
        {
            "providers": {"azure": {k: v for k, v in entry.items() if v is not None}, "gpt": gpt},
            "roles": {"coder": {"provider": "azure", "fallback": ["gpt"]}},
            "retry": {"initial_backoff": 0.01, "max_backoff": 0.05},
            "failover_within": 2.0,
        }
    )


def _attempts(reply: Any) -> list[str]:
    return [
        f"{a.provider} {a.outcome}" + (f" {a.error_kind.value}" if a.error_kind else "")
        for a in reply.attempts
    ]


@pytest.mark.parametrize(
    ("faults", "outcomes"),
    [
        (["not_found"], ["azure handover not_found", "gpt ok"]),
        (["auth"], ["azure handover auth", "gpt ok"]),
        (["permission"], ["azure handover permission", "gpt ok"]),
        (["quota"], ["azure handover quota", "gpt ok"]),
        (
            [Fault("content_filter", variant="prompt")],
            ["azure handover content_filter", "gpt ok"],
        ),
        (["content_filter"], ["azure handover content_filter", "gpt ok"]),
        (["context_length"], ["azure handover context_length", "gpt ok"]),
        ([Fault("rate_limit", retry_after=30)], ["azure handover rate_limit", "gpt ok"]),
        ([Fault("rate_limit", retry_after=0.05), "ok"], ["azure retry rate_limit", "azure ok"]),
        (["server", "ok"], ["azure retry server", "azure ok"]),
        (["overloaded", "ok"], ["azure retry overloaded", "azure ok"]),
    ],
    ids=[
        "not_found",
        "auth",
        "permission",
        "quota",
        "content_filter-prompt",
        "content_filter-answer",
        "context_length",
        "rate_limit-long",
        "rate_limit-short",
        "server",
        "overloaded",
    ],
)
async def test_what_azure_says_decides_retry_or_hand_over(
    sims: dict[str, SimServer], faults: list[Any], outcomes: list[str]
) -> None:
    sims["azure"].script(*faults)
    async with Router(_config(sims)) as router:
        reply = await router.complete("coder", "hi")
    assert _attempts(reply) == outcomes
    assert reply.text == f"hello from {outcomes[-1].split()[0]}"
    assert sims["azure"].calls == sum(o.startswith("azure") for o in outcomes)


async def test_a_deployment_not_found_keeps_the_provider_out_of_later_tasks(
    sims: dict[str, SimServer],
) -> None:
    sims["azure"].set_faults("not_found")
    async with Router(_config(sims)) as router:
        first = await router.complete("coder", "one")
        second = await router.complete("coder", "two")
    assert (first.provider, second.provider) == ("gpt", "gpt")
    assert sims["azure"].calls == 1  # marked unavailable after the first 404
    assert router.health.state("azure") == "unavailable"


class AccessToken(NamedTuple):
    token: str
    expires_on: int


class HourTokens:
    """token-1, token-2, ... each valid an hour from the router's (fake) clock."""

    def __init__(self, clock: Any) -> None:
        self.clock, self.issued = clock, 0

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.issued += 1
        return AccessToken(f"token-{self.issued}", int(self.clock() + 3600))


async def test_entra_token_expiring_mid_run_is_refreshed_and_azure_keeps_the_work(
    sims: dict[str, SimServer], fake_time: Any
) -> None:
    config = _config(sims, api_key=None, auth="entra")
    credential = HourTokens(fake_time.clock)
    azure = AzureOpenAIProvider(
        "azure", config.providers["azure"], credential=credential, clock=fake_time.clock
    )
    sims["azure"].api_key = "token-1"
    # The token's clock is the fake one; the router waits on real time, since its stall
    # timer on the fake clock would fire while the real sim is still answering.
    async with Router(config, providers={"azure": azure}, clock=fake_time.clock) as router:
        early = [await router.complete("coder", f"task {i}") for i in range(3)]
        fake_time.now += 3600  # an hour on: Azure no longer takes token 1
        sims["azure"].api_key = "token-2"
        late = [await router.complete("coder", f"task {i}") for i in range(3, 6)]
    assert [r.provider for r in early + late] == ["azure"] * 6
    assert [_attempts(r) for r in early + late] == [["azure ok"]] * 6
    assert credential.issued == 2
    assert sims["gpt"].calls == 0
    sent = [r.headers["authorization"] for r in sims["azure"].requests]
    assert sent == ["Bearer token-1"] * 3 + ["Bearer token-2"] * 3
