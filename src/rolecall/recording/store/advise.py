"""``metrics advise``: which provider under-performs another in the same role.

A provider is judged on its own calls: every call but those the caller ended
(``cancelled``: the client went away, Ctrl-C, a race lost) or sent wrong (``bad_request``,
``unsupported``), which say nothing of the provider. Only clear differences are reported,
each with its numbers and sample sizes:

- success rate: at least 5 points lower, and a two-proportion z-test at the 99% level;
- p95 latency: at least 1.5x and 100 ms slower than a provider whose success rate is
  not clearly worse;
- cost per answer (a failed call costs nothing): at least 1.5x dearer than a provider
  whose success rate is not clearly worse.

A provider that met a rate limit on at least 10% of its calls in a role (and has
``min_requests`` of them) is told to get a fallback or lower its concurrency, one that
serves the role alone included: moving the role elsewhere is not the only fix.

A role where fewer than two providers have ``min_requests`` calls of their own, one
served by a single provider included, is reported as too little data to judge. Given the
providers a config still has, a provider it no longer has is neither judged nor suggested:
only what can be assigned is compared. A provider known to be unavailable (its key
rejected, its quota spent) is judged but never suggested.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Sequence

from rolecall.recording.store.rows import Advice, MetricsRow

__all__ = ["about_provider", "advise"]

MIN_RATE_GAP = 0.05
Z_99 = 2.576
LATENCY_RATIO = 1.5
LATENCY_MIN_GAP_MS = 100.0
COST_RATIO = 1.5
RATE_LIMIT_SHARE = 0.10
# Failures of the caller's doing, not the provider's (the metrics' ``errors`` keys).
CALLERS_DOING = ("cancelled", "bad_request", "unsupported")


def _own_calls(row: MetricsRow) -> int:
    """The calls that say something of the provider."""
    return row.requests - sum(row.errors.get(kind, 0) for kind in CALLERS_DOING)


def _rate(row: MetricsRow) -> float:
    own = _own_calls(row)
    return row.successes / own if own > 0 else 0.0


def _clearly_lower_rate(low: MetricsRow, high: MetricsRow) -> bool:
    """``low`` succeeds clearly less often than ``high``."""
    gap = _rate(high) - _rate(low)
    if gap < MIN_RATE_GAP:
        return False
    low_calls, high_calls = _own_calls(low), _own_calls(high)
    pooled = (low.successes + high.successes) / (low_calls + high_calls)
    spread = math.sqrt(pooled * (1 - pooled) * (1 / low_calls + 1 / high_calls))
    return spread > 0 and gap / spread >= Z_99


def _pct(value: float) -> str:
    return f"{value * 100:.0f}%" if value < 0.995 or value == 1 else f"{value * 100:.1f}%"


def _ms(value: float) -> str:
    return f"{value / 1000:.2f} s" if value >= 1000 else f"{value:.0f} ms"


def _usd(value: float) -> str:
    return f"${value:.4f}" if value >= 0.0001 else f"${value:.2e}"


def _reassign(
    weak: MetricsRow,
    better: MetricsRow,
    metric: str,
    value: float,
    better_value: float,
    shown: Callable[[float], str],
    what: str,
) -> Advice:
    role = weak.role or ""
    calls, better_calls = _own_calls(weak), _own_calls(better)
    evidence = (
        f"{what} {shown(better_value)} vs {shown(value)} over {better_calls} vs {calls} calls"
    )
    return Advice(
        kind="reassign",
        role=role,
        provider=weak.provider,
        better=better.provider,
        metric=metric,
        value=value,
        better_value=better_value,
        requests=calls,
        better_requests=better_calls,
        suggestion=f"roles.{role}.provider: {better.provider} ({evidence})",
        message=(
            f"role {role}: {weak.provider} is worse than {better.provider} on {what} "
            f"({shown(value)} vs {shown(better_value)}, {calls} vs {better_calls} calls)"
        ),
    )


def _judge(weak: MetricsRow, others: list[MetricsRow]) -> list[Advice]:
    found: list[Advice] = []
    if not others:
        return found
    best = max(others, key=_rate)
    if _clearly_lower_rate(weak, best):
        found.append(
            _reassign(weak, best, "success_rate", _rate(weak), _rate(best), _pct, "success")
        )
    # Speed and price only count against providers that answer at least as reliably.
    peers = [o for o in others if not _clearly_lower_rate(o, weak)]
    timed = [o for o in peers if o.latency_p95_ms is not None]
    if weak.latency_p95_ms is not None and timed:
        fastest = min(timed, key=lambda o: o.latency_p95_ms or 0.0)
        slow, fast = weak.latency_p95_ms, fastest.latency_p95_ms or 0.0
        if slow >= fast * LATENCY_RATIO and slow - fast >= LATENCY_MIN_GAP_MS:
            found.append(_reassign(weak, fastest, "p95_latency", slow, fast, _ms, "p95 latency"))
    priced = [o for o in peers if o.cost_per_success is not None]
    if weak.cost_per_success is not None and priced:
        cheapest = min(priced, key=lambda o: o.cost_per_success or 0.0)
        dear, cheap = weak.cost_per_success, cheapest.cost_per_success or 0.0
        if dear > 0 and dear >= cheap * COST_RATIO:
            found.append(
                _reassign(weak, cheapest, "cost_per_success", dear, cheap, _usd, "cost per answer")
            )
    return found


def _rate_limited(row: MetricsRow) -> Advice | None:
    """Advice to ``row``'s provider when 429s took a clear share of its calls."""
    limited, calls = row.errors.get("rate_limit", 0), _own_calls(row)
    if limited < calls * RATE_LIMIT_SHARE:
        return None
    role, provider = row.role or "", row.provider or ""
    return Advice(
        kind="rate_limited",
        role=role,
        provider=provider,
        metric="rate_limit_share",
        value=round(limited / calls, 4),
        requests=calls,
        suggestion=(
            f"roles.{role}.fallback: a provider to take the calls while {provider} cools "
            f"down, or a lower providers.{provider}.max_concurrency"
        ),
        message=(
            f"role {role}: {provider} was rate limited on {limited} of {calls} calls "
            f"({_pct(limited / calls)})"
        ),
    )


def advise(
    rows: Sequence[MetricsRow],
    min_requests: int = 20,
    providers: Collection[str] | None = None,
    unavailable: Collection[str] = (),
) -> list[Advice]:
    """Findings from per (provider, role) metrics rows; see the module docstring.

    ``providers``: the ids that can be assigned now (None: every provider recorded);
    ``unavailable``: ids never to suggest.
    """
    by_role: dict[str, list[MetricsRow]] = {}
    for row in rows:
        if row.role is None or row.provider is None or _own_calls(row) <= 0:
            continue
        if providers is None or row.provider in providers:
            by_role.setdefault(row.role, []).append(row)
    found: list[Advice] = []
    for role in sorted(by_role):
        role_rows = sorted(by_role[role], key=lambda r: r.provider or "")
        enough = [r for r in role_rows if _own_calls(r) >= min_requests]
        limited = [advice for advice in map(_rate_limited, enough) if advice is not None]
        if len(enough) < 2:
            # One provider alone is said too: silence would read as "it does well".
            counts = ", ".join(f"{r.provider} {_own_calls(r)}" for r in role_rows)
            found.append(
                Advice(
                    kind="insufficient_data",
                    role=role,
                    requests=sum(_own_calls(r) for r in role_rows),
                    message=(
                        f"role {role}: too little data to judge (calls: {counts}); "
                        f"need at least {min_requests} calls from each of two providers"
                    ),
                )
            )
        else:
            for weak in enough:
                others = [o for o in enough if o is not weak and o.provider not in unavailable]
                found.extend(_judge(weak, others))
        found.extend(limited)
    return found


def about_provider(
    findings: Sequence[Advice], rows: Sequence[MetricsRow], provider: str
) -> list[Advice]:
    """The findings about ``provider``: where it does worse, and its roles with too little
    data (``metrics advise --provider``; ``rows`` are those the findings were drawn from)."""
    roles = {row.role for row in rows if row.provider == provider}
    return [
        finding
        for finding in findings
        if finding.provider == provider
        or (finding.kind == "insufficient_data" and finding.role in roles)
    ]
