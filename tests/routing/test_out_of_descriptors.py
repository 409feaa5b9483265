"""A provider this process cannot connect to for want of a file descriptor is not at fault.

Such a connect failed as ``network``, and five in a row opened the provider's circuit: every
provider of the chain was then skipped for everyone, long after descriptors were free again,
and the message said nothing of the cause. It is still a ``network`` failure (retried, handed
over), named as too many open files, and the providers' health is left alone.
"""

from __future__ import annotations

import pytest

import rolecall.providers.openai  # noqa: F401  (imported on first use: not while out of descriptors)
from descriptor_helpers import no_descriptor_left
from rolecall.config.schema import RolecallConfig
from rolecall.errors import AllProvidersFailed
from rolecall.routing.router import Router
from rolecall.sim import SimServer

KEY = "sk-out-of-descriptors-0123456789"
BREAKER_THRESHOLD = 5  # failures in a row that open a provider's circuit


async def test_connects_failing_for_want_of_descriptors_leave_the_providers_healthy() -> None:
    with (
        SimServer("openai", api_key=KEY, models=("a-model",)) as a,
        SimServer("openai", api_key=KEY, models=("b-model",)) as b,
    ):
        config = RolecallConfig.model_validate(
            {
                "providers": {
                    pid: {
                        "type": "openai",
                        "model": f"{pid}-model",
                        "api_key": KEY,
                        "base_url": sim.base_url,
                    }
                    for pid, sim in (("a", a), ("b", b))
                },
                "roles": {"coder": {"provider": "a", "fallback": ["b"]}},
                "retry": {"max_attempts": 1},
                "failover_within": 600,
            }
        )
        router = Router(config)
        try:
            failures: list[AllProvidersFailed] = []
            with no_descriptor_left():
                for _ in range(BREAKER_THRESHOLD + 1):
                    with pytest.raises(AllProvidersFailed) as failed:
                        await router.complete("coder", "hi")
                    failures.append(failed.value)
            assert {e.kind.value for f in failures for e in f.errors} == {"network"}
            assert all("too many open files" in e.message for f in failures for e in f.errors)
            assert {router.health.state(pid) for pid in ("a", "b")} == {"ok"}
            reply = await router.complete("coder", "hi")
        finally:
            await router.aclose()
    assert reply.provider == "a"
