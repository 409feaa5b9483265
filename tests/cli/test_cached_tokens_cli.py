"""Prompt-cache reads: priced at the cache price and shown by ``runs show`` and ``metrics``.

A routed call whose provider reports cached input tokens goes through the router,
the recorder and the SQLite store, then out through the CLI.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from rolecall.cli import main
from rolecall.config.schema import MetricsConfig, RolecallConfig
from rolecall.recording.recorder import Recorder
from rolecall.routing.router import Router
from rolecall.types import ChatRequest, Chunk, Completion, Usage

USAGE = Usage(
    input_tokens=1000, output_tokens=50, cached_input_tokens=600, cache_creation_input_tokens=100
)
# (300 uncached x 2.0 + 600 read x 0.5 + 100 written x 2.5 + 50 out x 8.0) / 1e6
EXPECTED_COST = 0.00155


class CachingProvider:
    """Answers every call and reports part of its input as read from the prompt cache."""

    def __init__(self, provider_id: str) -> None:
        self.id = provider_id
        self.model = "cache-model"

    async def complete(self, request: ChatRequest) -> Completion:
        return Completion(text="ok", model=self.model, usage=USAGE, finish_reason="stop")

    async def stream(self, request: ChatRequest) -> AsyncIterator[Chunk]:
        yield Chunk(text="ok")
        yield Chunk(usage=USAGE, finish_reason="stop")

    async def check_credentials(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


def _config(cache_prices: bool = True) -> RolecallConfig:
    pricing: dict[str, float] = {"input_per_mtok": 2.0, "output_per_mtok": 8.0}
    if cache_prices:
        pricing |= {"cache_read_per_mtok": 0.5, "cache_write_per_mtok": 2.5}
    return RolecallConfig.model_validate(
        {
            "providers": {
                "gpt": {
                    "type": "openai-compatible",
                    "model": "m",
                    "base_url": "http://h/v1",
                    "pricing": pricing,
                }
            },
            "roles": {"coder": {"provider": "gpt"}},
        }
    )


def test_cost_uses_cache_prices_and_defaults_to_the_input_price() -> None:
    provider = _config().providers["gpt"]
    assert provider.cost_usd(1000, 50, 600, 100) == pytest.approx(EXPECTED_COST)
    plain = _config(cache_prices=False).providers["gpt"]
    assert plain.cost_usd(1000, 50, 600, 100) == pytest.approx((1000 * 2.0 + 50 * 8.0) / 1e6)


async def test_cached_tokens_in_runs_show_and_metrics(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ROLECALL_CONFIG", raising=False)
    recorder = Recorder(
        MetricsConfig(flush_interval=0.05), base_dir=tmp_path, install_signal_handlers=False
    )
    router = Router(_config(), providers={"gpt": CachingProvider("gpt")}, sinks=[recorder])
    reply = await router.complete("coder", "hi", run_id="20260101-120000-cache1")
    await router.aclose()
    recorder.close()
    assert reply.cost_usd == pytest.approx(EXPECTED_COST)
    assert reply.usage.to_dict()["cached_input_tokens"] == 600

    assert main(["runs", "show", "20260101-120000-cache1", "--json"]) == 0
    (task,) = json.loads(capsys.readouterr().out)["tasks"]
    assert (task["input_tokens"], task["cached_input_tokens"]) == (1000, 600)
    assert task["cost_usd"] == pytest.approx(EXPECTED_COST)

    assert main(["metrics", "--format", "json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["tokens"] == {"input": 1000, "output": 50, "cached_input": 600}
    assert row["cost_usd"] == pytest.approx(EXPECTED_COST)
