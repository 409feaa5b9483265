"""Provider health: cooldowns, the circuit breaker, providers marked unavailable.

:mod:`.memory` keeps it in this process; :mod:`.shared` shares it between
processes and machines through Redis (``state.redis_url``), falling back to
memory when Redis goes away. The router asks it who may be called; it never
calls a provider itself.
"""

from __future__ import annotations

from rolecall.health.memory import Admission, HealthState, HealthTracker, ProviderHealth

__all__ = ["Admission", "HealthState", "HealthTracker", "ProviderHealth"]
