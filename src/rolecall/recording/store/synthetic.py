"""A synthetic call history: attempt events with realistic mixes of providers, roles,
faults, retries, hand-overs, latencies, tokens and costs. Used by the store benchmark
and the tests; deterministic for a given seed.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from rolecall.errors import ErrorKind
from rolecall.events import AttemptEvent
from rolecall.types import Outcome

__all__ = ["PROFILES", "ProviderProfile", "synthetic_attempts"]


@dataclass(frozen=True, slots=True)
class ProviderProfile:
    model: str
    success: float  # probability that one call answers
    median_ms: float
    spread: float  # sigma of the log-normal latency
    input_per_mtok: float | None
    output_per_mtok: float | None


PROFILES: dict[str, ProviderProfile] = {
    "gpt": ProviderProfile("gpt-4.1", 0.97, 900.0, 0.5, 2.0, 8.0),
    "claude": ProviderProfile("claude-sonnet-4-5", 0.99, 1200.0, 0.4, 3.0, 15.0),
    "gemini": ProviderProfile("gemini-2.5-pro", 0.93, 700.0, 0.7, 1.25, 10.0),
    "local": ProviderProfile("smollm2", 0.999, 300.0, 0.3, None, None),
}
ROLES = ("clarifier", "planner", "coder", "reviewer")
_FAULTS = (
    ErrorKind.RATE_LIMIT,
    ErrorKind.RATE_LIMIT,
    ErrorKind.OVERLOADED,
    ErrorKind.SERVER,
    ErrorKind.TIMEOUT,
    ErrorKind.NETWORK,
    ErrorKind.AUTH,
    ErrorKind.CONTEXT_LENGTH,
)


def synthetic_attempts(
    count: int,
    *,
    providers: Sequence[str] = tuple(PROFILES),
    roles: Sequence[str] = ROLES,
    days: float = 30.0,
    end: float = 1_767_225_600.0,  # 2026-01-01T00:00:00Z
    seed: int = 0,
    calls_per_run: int = 1000,
) -> Iterator[AttemptEvent]:
    """``count`` attempts spread evenly over ``days`` before ``end``, oldest first."""
    rng = random.Random(seed)
    start = end - days * 86400.0
    step = (end - start) / max(count, 1)
    profiles = [(name, PROFILES.get(name, PROFILES["gpt"])) for name in providers]
    for index in range(count):
        name, profile = profiles[rng.randrange(len(profiles))]
        role = roles[rng.randrange(len(roles))]
        latency = profile.median_ms * math.exp(rng.gauss(0.0, profile.spread))
        outcome: Outcome = "ok"
        kind: ErrorKind | None = None
        if rng.random() < profile.success:
            tokens_in, tokens_out = rng.randrange(200, 4000), rng.randrange(50, 2000)
        else:
            kind = _FAULTS[rng.randrange(len(_FAULTS))]
            outcome = "retry" if kind.retryable else "handover"
            tokens_in = tokens_out = 0
        cost = None
        if profile.input_per_mtok is not None and profile.output_per_mtok is not None:
            cost = (
                tokens_in * profile.input_per_mtok + tokens_out * profile.output_per_mtok
            ) / 1_000_000
        run = index // calls_per_run
        yield AttemptEvent(
            run_id=f"synthetic-{seed}-{run:08d}",
            task_id=f"task-{index}",
            role=role,
            provider=name,
            model=profile.model,
            attempt=1,
            outcome=outcome,
            error_kind=kind,
            latency_ms=latency,
            input_tokens=tokens_in,
            output_tokens=tokens_out,
            cost_usd=cost,
            ts=start + index * step,
        )
