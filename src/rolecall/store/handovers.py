"""Hand-overs per provider x role over a time range, for the dashboard.

The rollups count failures by kind but not which failed attempts handed the task
over (a retryable failure hands over only once its retries or ``failover_within``
run out), so this counts the raw attempts whose outcome is ``handover``. Only
those rows are read: the time range picks them through the ``attempts_ts`` index.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from rolecall.store.rollups import HOUR

if TYPE_CHECKING:
    from rolecall.store.base import MetricsStore

__all__ = ["handovers"]

_SQL = (
    "SELECT provider, role, COUNT(*) FROM attempts "
    "WHERE outcome = 'handover' AND ts >= ? AND ts < ? GROUP BY provider, role"
)


def handovers(
    store: MetricsStore, since: float | None = None, until: float | None = None
) -> dict[tuple[str, str], int]:
    """{(provider, role): attempts that handed the task over} in [since, until).

    At hour resolution like :meth:`MetricsStore.metrics`: the hours at the edges count whole.
    """
    lo = float("-inf") if since is None else float(math.floor(since / HOUR) * HOUR)
    hi = float("inf") if until is None else float(math.ceil(until / HOUR) * HOUR)
    rows = store._read(_SQL, (lo, hi))
    return {(str(provider), str(role)): int(count) for provider, role, count in rows}
