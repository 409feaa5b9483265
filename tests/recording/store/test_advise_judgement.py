"""What ``metrics advise`` holds against a provider: only what the provider did.

A call the caller ended (``cancelled``) or sent wrong (``bad_request``, ``unsupported``)
says nothing of the provider; a failed call costs nothing, so price is compared per
answer, not per call (which would make a provider that fails look cheap).
"""

from __future__ import annotations

import pytest

from factories import T0, attempt_event
from rolecall.events import AttemptEvent
from rolecall.recording.store import MetricsStore


def _calls(
    provider: str,
    answered: int,
    failed: int = 0,
    kind: str | None = "server",
    cost: float | None = None,
    first: int = 0,
) -> list[AttemptEvent]:
    """``answered`` coder calls to ``provider`` (each costing ``cost``), then ``failed``
    more that ended with ``kind`` (None: cancelled); tasks numbered from ``first``."""
    return [
        attempt_event(
            run_id=f"run-{provider}",
            task_id=f"{provider}-{index}",
            provider=provider,
            outcome="ok" if index < first + answered else "handover",
            error_kind=None if index < first + answered else kind,
            cost_usd=cost if index < first + answered else None,
            ts=T0 + index,
        )
        for index in range(first, first + answered + failed)
    ]


@pytest.mark.parametrize("kind", [None, "bad_request", "unsupported"])
def test_failures_of_the_callers_doing_do_not_count_against_a_provider(
    store: MetricsStore, kind: str | None
) -> None:
    # Every call "flaky" was sent that it could answer, it answered; 60 more were
    # cancelled by their client, or refused as requests no provider could take.
    store.record(_calls("flaky", 140, 60, kind) + _calls("steady", 200))
    [row] = [r for r in store.metrics() if r.provider == "flaky"]
    assert row.success_rate == 0.7  # the metrics still count every call made
    assert [f for f in store.advise() if f.kind == "reassign"] == []


def test_failures_of_the_provider_still_count(store: MetricsStore) -> None:
    store.record(_calls("flaky", 140, 60, "server") + _calls("steady", 200))
    [finding] = store.advise()
    assert (finding.provider, finding.better, finding.metric) == ("flaky", "steady", "success_rate")
    assert "70% vs 100%, 200 vs 200 calls" in finding.message


def test_a_provider_is_judged_on_the_calls_that_were_its_own(store: MetricsStore) -> None:
    # 100 answers, 50 server errors and 50 cancelled: 67% of the calls that were its own.
    store.record(_calls("flaky", 100, 50, "server") + _calls("flaky", 0, 50, None, first=150))
    store.record(_calls("steady", 200))
    [finding] = store.advise()
    assert finding.metric == "success_rate" and finding.requests == 150
    assert "(67% vs 100%, 150 vs 200 calls)" in finding.message


def test_cost_is_compared_per_answer(store: MetricsStore) -> None:
    # "cheap" answers 150 calls at $0.008 each, and 50 more were cancelled by their client;
    # "dear" answers 200 at $0.010. Per call "cheap" looks 1.67x cheaper ($0.0060 vs
    # $0.0100); per answer it is 1.25x: not a clear difference.
    store.record(_calls("cheap", 150, 50, None, cost=0.008) + _calls("dear", 200, cost=0.010))
    assert store.advise() == []


def test_a_provider_dearer_per_answer_is_flagged_with_the_figures(store: MetricsStore) -> None:
    store.record(_calls("dear", 200, cost=0.03) + _calls("cheap", 200, cost=0.01))
    [finding] = store.advise()
    assert (finding.provider, finding.better) == ("dear", "cheap")
    assert finding.metric == "cost_per_success"
    assert finding.suggestion == (
        "roles.coder.provider: cheap (cost per answer $0.0100 vs $0.0300 over 200 vs 200 calls)"
    )


def test_a_provider_often_rate_limited_is_told_to_get_a_fallback(store: MetricsStore) -> None:
    # gpt serves coder alone and 60 of its 200 calls met a 429.
    store.record(_calls("gpt", 140, 60, "rate_limit"))
    [thin, limited] = store.advise()
    assert thin.kind == "insufficient_data"
    assert (limited.kind, limited.role, limited.provider) == ("rate_limited", "coder", "gpt")
    assert (limited.metric, limited.value, limited.requests) == ("rate_limit_share", 0.3, 200)
    assert limited.message == "role coder: gpt was rate limited on 60 of 200 calls (30%)"
    assert limited.suggestion == (
        "roles.coder.fallback: a provider to take the calls while gpt cools down, "
        "or a lower providers.gpt.max_concurrency"
    )


def test_a_few_rate_limits_are_not_worth_a_word(store: MetricsStore) -> None:
    store.record(_calls("gpt", 195, 5, "rate_limit") + _calls("claude", 200, first=500))
    assert store.advise() == []
