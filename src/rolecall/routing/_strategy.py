"""Chains per role, resolved once from the config, and the per-call strategy ordering.

A role's chain is its providers in order, then ``default_provider`` (see
docs/architecture.md and the README's "How a call is routed"). With several
``providers`` and a strategy other than ``fallback``, the strategy reorders that
pool on every call; a primary written before the pool stays first, and
``fallback`` entries and the default stay after it.

A pool provider the health says is down now (cooling down, unavailable, circuit
open) gives up its round-robin turn and its weighted share to the others, so they
split its calls as they split the rest; the chain walk then skips it. ``fastest``
leads one call in :data:`EXPLORE_EVERY` with another provider in turn, so a
provider measured slow once (a cold start) is measured again, not passed over
for ever.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from rolecall.config.schema import RoleConfig

__all__ = ["ChainPlan", "plan_for_role"]

LatencyOf = Callable[[str], float | None]
IsDown = Callable[[str], bool]

# One call in this many, a fastest pool leads with another provider than the fastest.
EXPLORE_EVERY = 20


def _dedupe(ids: Iterable[str | None], exclude: Sequence[str] = ()) -> tuple[str, ...]:
    seen = set(exclude)
    out: list[str] = []
    for provider_id in ids:
        if provider_id and provider_id not in seen:
            seen.add(provider_id)
            out.append(provider_id)
    return tuple(out)


@dataclass(slots=True)
class ChainPlan:
    """One role's chain: ``head`` and ``tail`` are fixed, ``pool`` is ordered per call."""

    head: tuple[str, ...]
    pool: tuple[str, ...]
    tail: tuple[str, ...]
    strategy: str = "fallback"
    weights: tuple[float, ...] = ()
    fixed: tuple[str, ...] = field(init=False)
    _turns: itertools.count[int] = field(init=False, default_factory=itertools.count)

    def __post_init__(self) -> None:
        self.fixed = self.head + self.pool + self.tail
        if len(self.pool) < 2:
            self.strategy = "fallback"

    def order(
        self, latency_of: LatencyOf, rng: Callable[[], float], is_down: IsDown
    ) -> tuple[str, ...]:
        """The chain for one call: a tuple built from in-memory data only."""
        strategy = self.strategy
        if strategy == "fallback":
            return self.fixed
        pool = self.pool
        if strategy == "round_robin":
            start = self._turn(is_down)
            ordered = pool[start:] + pool[:start]
        elif strategy == "weighted":
            ordered = _weighted_first(pool, self.weights, rng, is_down)
        else:
            ordered = self._fastest(latency_of)
        return self.head + ordered + self.tail

    def _turn(self, is_down: IsDown) -> int:
        """The next turn's index; a provider down now passes its turn on (counted)."""
        size = len(self.pool)
        start = next(self._turns) % size
        for _ in range(size - 1):
            if not is_down(self.pool[start]):
                break
            start = next(self._turns) % size
        return start

    def _fastest(self, latency_of: LatencyOf) -> tuple[str, ...]:
        """Unmeasured first (in written order) so each gets measured, then the quickest."""
        ordered = sorted(self.pool, key=lambda pid: _latency_key(latency_of(pid)))
        turn = next(self._turns)
        if turn % EXPLORE_EVERY != EXPLORE_EVERY - 1:
            return tuple(ordered)
        others = ordered[1:]
        lead = others[(turn // EXPLORE_EVERY) % len(others)]
        return (lead, *(pid for pid in ordered if pid != lead))


def _latency_key(latency: float | None) -> tuple[int, float]:
    return (0, 0.0) if latency is None else (1, latency)


def _weighted_first(
    pool: tuple[str, ...], weights: tuple[float, ...], rng: Callable[[], float], is_down: IsDown
) -> tuple[str, ...]:
    chosen = _draw(weights, rng)
    if chosen is None:
        return pool
    if is_down(pool[chosen]):
        # Its share goes to the others by their weights, not all to the first written.
        live = tuple(0.0 if is_down(pid) else w for pid, w in zip(pool, weights, strict=True))
        redrawn = _draw(live, rng)
        if redrawn is not None:
            chosen = redrawn
    return (pool[chosen], *pool[:chosen], *pool[chosen + 1 :])


def _draw(weights: tuple[float, ...], rng: Callable[[], float]) -> int | None:
    """An index drawn by weight; None when no weight is above 0."""
    total = sum(weights)
    if total <= 0:
        return None
    point = rng() * total
    chosen = len(weights) - 1
    for index, weight in enumerate(weights):
        if point < weight:
            chosen = index
            break
        point -= weight
    # A zero-weight provider is never picked first, but still serves as a fallback.
    while weights[chosen] <= 0:
        chosen -= 1
    return chosen


def plan_for_role(role: RoleConfig | None, default_provider: str | None) -> ChainPlan:
    """Resolve a role's config into a :class:`ChainPlan` (an unknown role: the default alone)."""
    if role is None:
        return ChainPlan(head=(), pool=_dedupe([default_provider]), tail=())
    if role.providers:
        head = _dedupe([role.provider])
        pool = _dedupe(role.providers, exclude=head)
        tail = _dedupe([*role.fallback, default_provider], exclude=head + pool)
    else:
        head = ()
        pool = _dedupe([role.provider, *role.fallback])
        tail = _dedupe([default_provider], exclude=pool)
    weights: tuple[float, ...] = ()
    if role.strategy == "weighted":
        # Unlisted providers weigh 1 when no weights are given, 0 when some are.
        fallback_weight = 0.0 if role.weights else 1.0
        raw = [max(role.weights.get(pid, fallback_weight), 0.0) for pid in pool]
        # As shares of the largest: weights near the float maximum would sum to infinity.
        top = max(raw, default=0.0)
        weights = tuple(w / top for w in raw) if top > 0 else tuple(raw)
    return ChainPlan(head=head, pool=pool, tail=tail, strategy=role.strategy, weights=weights)
