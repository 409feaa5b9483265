"""Table-driven fault tests: a fault sequence per provider -> who is called, who answers, how."""

from __future__ import annotations

from typing import Any

import pytest

from rolecall.errors import AllProvidersFailed, ErrorKind

CHAIN = {"coder": {"provider": "a", "fallback": ["b", "c"]}}

# scripts per provider, calls per provider, answering provider, attempts, sleeps
# (retry policy: 3 attempts, backoff 1 s x2, jitter drawn at its top; failover_within 5 s)
CASES: list[
    tuple[str, dict[str, list[str]], dict[str, int], str | None, list[str], list[float]]
] = [
    ("first answers", {}, {"a": 1, "b": 0, "c": 0}, "a", ["a1 ok"], []),
    (
        "server error then ok: retried on the same provider",
        {"a": ["server", "ok"]},
        {"a": 2, "b": 0},
        "a",
        ["a1 retry server", "a2 ok"],
        [1.0],
    ),
    (
        "server errors use up the attempts, then hand over",
        {"a": ["server", "server", "server"]},
        {"a": 3, "b": 1},
        "b",
        ["a1 retry server", "a2 retry server", "a3 handover server", "b1 ok"],
        [1.0, 2.0],
    ),
    *[
        (
            f"{kind}: hand over at once",
            {"a": [kind]},
            {"a": 1, "b": 1},
            "b",
            [f"a1 handover {kind}", "b1 ok"],
            [],
        )
        for kind in (
            "auth",
            "permission",
            "not_found",
            "quota",
            "context_length",
            "content_filter",
            "bad_request",
        )
    ],
    *[
        (
            f"{kind}: retried like a server error",
            {"a": [kind, kind, "ok"]},
            {"a": 3, "b": 0},
            "a",
            [f"a1 retry {kind}", f"a2 retry {kind}", "a3 ok"],
            [1.0, 2.0],
        )
        for kind in ("overloaded", "timeout", "network")
    ],
    (
        "rate limit: waits for Retry-After, not less",
        {"a": ["rate_limit:3", "ok"]},
        {"a": 2, "b": 0},
        "a",
        ["a1 retry rate_limit", "a2 ok"],
        [3.0],
    ),
    (
        "rate limit past the failover budget: hand over now",
        {"a": ["rate_limit:30"]},
        {"a": 1, "b": 1},
        "b",
        ["a1 handover rate_limit", "b1 ok"],
        [],
    ),
    (
        "malformed reply is retried once only",
        {"a": ["bad_response", "bad_response"]},
        {"a": 2, "b": 1},
        "b",
        ["a1 retry bad_response", "a2 handover bad_response", "b1 ok"],
        [1.0],
    ),
    (
        "two providers fail in turn, the third answers",
        {"a": ["server"] * 3, "b": ["auth"], "c": ["overloaded", "ok"]},
        {"a": 3, "b": 1, "c": 2},
        "c",
        [
            "a1 retry server",
            "a2 retry server",
            "a3 handover server",
            "b1 handover auth",
            "c1 retry overloaded",
            "c2 ok",
        ],
        [1.0, 2.0, 1.0],
    ),
    (
        "every provider fails",
        {"a": ["quota"], "b": ["not_found"], "c": ["content_filter"]},
        {"a": 1, "b": 1, "c": 1},
        None,
        ["a1 handover quota", "b1 handover not_found", "c1 handover content_filter"],
        [],
    ),
]


def _attempts(attempts: Any) -> list[str]:
    out = []
    for a in attempts:
        kind = f" {a.error_kind.value}" if a.error_kind else ""
        out.append(f"{a.provider}{a.attempt} {a.outcome}{kind}")
    return out


@pytest.mark.parametrize(
    ("scripts", "calls", "answer", "attempts", "sleeps"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
async def test_fault_table(
    build: Any,
    config_of: Any,
    scripts: dict[str, list[str]],
    calls: dict[str, int],
    answer: str | None,
    attempts: list[str],
    sleeps: list[float],
) -> None:
    h = build(config_of(roles=CHAIN), scripts)
    if answer is None:
        with pytest.raises(AllProvidersFailed) as caught:
            await h.router.complete("coder", "hi")
        got_attempts = caught.value.attempts
        assert [e.provider for e in caught.value.errors] == ["a", "b", "c"]
    else:
        reply = await h.router.complete("coder", "hi")
        assert reply.provider == answer
        assert reply.text == f"answer from {answer}"
        got_attempts = list(reply.attempts)
    assert {pid: len(h.providers[pid].calls) for pid in calls} == calls
    assert _attempts(got_attempts) == attempts
    assert h.time.sleeps == sleeps


async def test_budget_cuts_retries_short(build: Any, config_of: Any) -> None:
    # Second wait (2 s) would end 3 s after the first failure: past a 2.5 s budget.
    h = build(config_of(roles=CHAIN, failover_within=2.5), {"a": ["server", "server", "ok"]})
    reply = await h.router.complete("coder", "hi")
    assert reply.provider == "b"
    assert _attempts(reply.attempts) == ["a1 retry server", "a2 handover server", "b1 ok"]
    assert h.time.sleeps == [1.0]


async def test_disabled_provider_is_skipped_by_later_calls(build: Any, config_of: Any) -> None:
    h = build(config_of(roles=CHAIN), {"a": ["auth"]})
    await h.router.complete("coder", "hi")
    reply = await h.router.complete("coder", "again")
    assert reply.provider == "b"
    assert len(h.providers["a"].calls) == 1
    # A skipped provider is not an attempt: only real calls are.
    assert _attempts(reply.attempts) == ["b1 ok"]
    assert h.router.health.state("a") == "unavailable"


async def test_context_length_does_not_disable(build: Any, config_of: Any) -> None:
    h = build(config_of(roles=CHAIN), {"a": ["context_length"]})
    assert (await h.router.complete("coder", "long")).provider == "b"
    assert (await h.router.complete("coder", "short")).provider == "a"


async def test_all_skipped_still_says_why(build: Any, config_of: Any) -> None:
    h = build(
        config_of(("a", "b"), roles={"coder": {"provider": "a", "fallback": ["b"]}}),
        {"a": ["auth"], "b": ["rate_limit:60"]},
    )
    with pytest.raises(AllProvidersFailed):
        await h.router.complete("coder", "hi")
    with pytest.raises(AllProvidersFailed) as caught:
        await h.router.complete("coder", "hi")
    failure = caught.value
    assert failure.attempts == []  # nothing was called the second time
    assert [e.kind for e in failure.errors] == [ErrorKind.AUTH, ErrorKind.RATE_LIMIT]
    text = str(failure)
    assert "a: the api_key of provider 'a' was rejected: set a valid key" in text
    assert "b: rate limited until" in text
    assert [len(h.providers[p].calls) for p in ("a", "b")] == [1, 1]


async def test_failure_message_names_each_provider_and_fix(build: Any, config_of: Any) -> None:
    config = config_of(
        roles=CHAIN,
        provider_extra={"b": {"base_url": "http://127.0.0.1:9/v1"}},
    )
    config.set_key_env_vars({"a": "OPENAI_API_KEY"})
    h = build(config, {"a": ["auth"], "b": ["network"] * 3, "c": ["not_found"]})
    with pytest.raises(AllProvidersFailed) as caught:
        await h.router.complete("coder", "hi")
    lines = str(caught.value).splitlines()
    assert lines[0] == "every provider for role 'coder' failed:"
    assert lines[1].startswith("  a: OPENAI_API_KEY was rejected: set a valid key (auth: ")
    assert lines[2].startswith("  b: could not reach http://127.0.0.1:9/v1: ")
    assert lines[3].startswith(
        "  c: model 'c-model' not found at provider 'c': check the model name"
    )
    assert [e.kind for e in caught.value.errors] == [
        ErrorKind.AUTH,
        ErrorKind.NETWORK,
        ErrorKind.NOT_FOUND,
    ]


async def test_quota_hint(build: Any, config_of: Any) -> None:
    h = build(config_of(("a",), roles={"coder": {"provider": "a"}}), {"a": ["quota"]})
    with pytest.raises(AllProvidersFailed, match="provider 'a' has no credit/quota left"):
        await h.router.complete("coder", "hi")


async def test_circuit_opens_after_consecutive_failures(build: Any, config_of: Any) -> None:
    config = config_of(roles=CHAIN, retry={"max_attempts": 1})
    h = build(config, {"a": ["server"] * 5})
    for _ in range(5):
        assert (await h.router.complete("coder", "hi")).provider == "b"
    assert h.router.health.state("a") == "open"
    assert (await h.router.complete("coder", "hi")).provider == "b"
    assert len(h.providers["a"].calls) == 5
    h.time.now += 31  # past the open period: one probe is let through, and it succeeds
    assert (await h.router.complete("coder", "hi")).provider == "a"
    assert h.router.health.state("a") == "ok"
