"""Hand-overs per provider x role over a time range, for the dashboard, from the rollups.

A failure whose kind is not retryable (auth, quota, context length...) hands the task
over at once, so the rollups' failures by kind give those hand-overs for any range in
the time of a ``metrics`` query. A retryable failure hands over only when its retries or
``failover_within`` run out, which the rollups do not record: those stay counted under
failures here, and a run's exact hand-overs are in ``runs show``. Counting the raw
attempts instead was measured at about 0.5 s per million calls in range: too slow for a
page that must load in well under a second at ten million calls.
"""

from __future__ import annotations

from collections.abc import Sequence

from rolecall.errors import ErrorKind
from rolecall.recording.store.rows import MetricsRow

__all__ = ["handovers"]


def _hands_over(kind: str) -> bool:
    try:
        return not ErrorKind(kind).retryable
    except ValueError:  # a kind recorded by a newer version: count it as a hand-over
        return True


def handovers(rows: Sequence[MetricsRow]) -> dict[tuple[str, str], int]:
    """{(provider, role): failures that handed the task over at once} for ``metrics`` rows."""
    return {
        (str(row.provider), str(row.role)): sum(
            count for kind, count in row.errors.items() if _hands_over(kind)
        )
        for row in rows
    }
