"""The dashboard's JSON endpoints, as plain functions of (path, query) over a metrics store.

Both servers call :func:`answer`: the gateway's Starlette routes (``rolecall serve``)
and the standard-library server of ``rolecall dashboard``. The bodies are the JSON
the CLI prints for the same question (``metrics --format json``, ``metrics trend
--json``, ``metrics advise --json``, ``runs list/show --json``), built by the same
store queries and rows.

| path | query | body |
|---|---|---|
| ``/api/metrics`` | since, until, provider, role | ``rolecall metrics --format json`` |
| ``/api/handovers`` | since, until | ``[{provider, role, handovers}]`` (immediate ones) |
| ``/api/trend`` | bucket, since, until, by, provider, role | ``rolecall metrics trend --json`` |
| ``/api/advise`` | since, until, provider, role, min_requests | ``metrics advise --json`` |
| ``/api/runs`` | limit | ``rolecall runs list --json`` |
| ``/api/runs/RUN`` | limit | ``rolecall runs show RUN --json``, bounded (below) |
| ``/api/health`` | | ``{live, providers: {id: state}}`` (live only under ``serve``) |

Of a run with more than ``limit`` tasks (1000 by default; a gateway's run holds up to
100,000), ``/api/runs/RUN`` gives the newest ``limit`` and, in ``tasks_total``, how many
it has. Times are epoch seconds, or durations back from the server's now (``since=24h``:
the page asks so, whatever its browser's clock says); a window without ``until`` ends now,
as the CLI's without ``--until``. A bad parameter is a 400 with a one-line ``error``, as
is a ``since`` not earlier than ``until`` (or, without ``until``, than now).
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Collection, Mapping
from typing import Any, Literal

from rolecall.errors import RolecallError
from rolecall.recording.store import (
    EARLIEST_TIME,
    LATEST_TIME,
    MetricsStore,
    StoreNotFound,
    duration_seconds,
    file_identity,
    open_store,
    sqlite_path,
)

__all__ = ["ApiError", "DataSource", "answer", "foreign_host_body"]

HealthFn = Callable[[], dict[str, dict[str, Any]]]
# The provider ids a config has (None: no config), for ``/api/advise`` to propose only those.
ProvidersFn = Callable[[], Collection[str] | None]
# Tasks of one run /api/runs/RUN gives by default: its newest, when it has more.
RUN_TASKS = 1000
_GROUPS = {"provider,role": ("provider", "role"), "provider": ("provider",), "role": ("role",)}


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class DataSource:
    """Where the endpoints read: the metrics store at ``url()`` and, in a gateway, live health;
    ``clock`` is the server's now, which windows count back from and end at.

    The store is opened on first use (not created: a missing SQLite file reads as empty)
    and kept open; a changed URL (config reload) opens the new one, and so does a SQLite
    file that was replaced (moved aside, deleted, restored from a copy) since it was opened:
    the open connection would go on reading the old file.
    """

    def __init__(
        self,
        url: Callable[[], str],
        health: HealthFn | None = None,
        providers: ProvidersFn | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._url = url
        self.clock = clock
        self.health = health
        self.providers = providers
        self._lock = threading.Lock()
        self._store: MetricsStore | None = None
        self._store_key: tuple[str, tuple[int, int] | None] | None = None

    def store(self) -> MetricsStore | None:
        url = self._url()
        with self._lock:
            key = (url, _file_identity(url))
            if self._store is not None and self._store_key == key:
                return self._store
            self.close_store()
            try:
                self._store = open_store(url, create=False)
            except StoreNotFound:
                return None
            self._store_key = key
            return self._store

    def close_store(self) -> None:
        store, self._store, self._store_key = self._store, None, None
        if store is not None:
            store.close()


def _file_identity(url: str) -> tuple[int, int] | None:
    """The identity of the SQLite file ``url`` names; None for no file or another backend."""
    return file_identity(sqlite_path(url)) if url.startswith("sqlite:") else None


def _time(query: Mapping[str, str], name: str, now: float) -> float | None:
    value = query.get(name, "").strip()
    if not value:
        return None
    span = duration_seconds(value)
    try:
        moment = float(value) if span is None else now - span
    except ValueError:
        moment = math.nan
    if not EARLIEST_TIME <= moment <= LATEST_TIME:  # also false for nan and inf
        message = (
            f"{name}={value!r}: give epoch seconds from {EARLIEST_TIME:.0f} to {LATEST_TIME:.0f}"
            f" (years 1 to 9999), e.g. {name}=1767225600, or a duration back from now such as"
            f" {name}=24h (s, m, h, d, w)"
        )
        raise ApiError(400, message)
    return moment


def _window(query: Mapping[str, str], now: float) -> tuple[float | None, float]:
    """``since`` and ``until``, now without one: calls stamped later (a clock that ran ahead)
    are in no window that ends now. A window that ends before it starts is a 400, as the
    CLI's ``--since`` later than ``--until`` is a usage error, not an empty answer."""
    since, until = _time(query, "since", now), _time(query, "until", now)
    if until is None:
        if since is not None and since >= now:
            raise ApiError(
                400,
                f"since={query['since'].strip()} is later than now: give a later until too "
                "to read calls stamped later than now",
            )
        return since, now
    if since is not None and since >= until:
        raise ApiError(
            400,
            f"since={query['since'].strip()} must be earlier than until={query['until'].strip()}",
        )
    return since, until


def _int(query: Mapping[str, str], name: str, default: int, top: int) -> int:
    value = query.get(name, "").strip()
    if not value:
        return default
    if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= top:
        raise ApiError(400, f"{name}={value!r}: give a whole number from 1 to {top}")
    return int(value)


# A route reads its parameters first (a bad one is a 400 whether or not there is a store
# yet), then asks for the store: None before anything was recorded, answered with [].


def _metrics(source: DataSource, query: Mapping[str, str]) -> Any:
    window = _window(query, source.clock())
    store = source.store()
    if store is None:
        return []
    rows = store.metrics(
        *window,
        provider=query.get("provider") or None,
        role=query.get("role") or None,
    )
    return [row.to_dict() for row in rows]


def _handovers(source: DataSource, query: Mapping[str, str]) -> Any:
    from rolecall.recording.store.handovers import handovers

    window = _window(query, source.clock())
    store = source.store()
    if store is None:
        return []
    counts = handovers(store.metrics(*window))
    return [
        {"provider": provider, "role": role, "handovers": count}
        for (provider, role), count in sorted(counts.items())
    ]


def _trend(source: DataSource, query: Mapping[str, str]) -> Any:
    bucket = query.get("bucket", "hour")
    if bucket not in ("hour", "day"):
        raise ApiError(400, f"bucket={bucket!r}: use hour or day")
    by = query.get("by", "provider,role")
    if by not in _GROUPS:
        raise ApiError(400, f"by={by!r}: use provider,role or provider or role")
    step: Literal["hour", "day"] = "hour" if bucket == "hour" else "day"
    window = _window(query, source.clock())
    store = source.store()
    if store is None:
        return []
    rows = store.trend(
        step,
        *window,
        provider=query.get("provider") or None,
        role=query.get("role") or None,
        group_by=_GROUPS[by],
    )
    return [row.to_dict() for row in rows]


def _advise(source: DataSource, query: Mapping[str, str]) -> Any:
    """``metrics advise --json``: proposing only providers the config has and, under
    ``serve``, none its health holds unavailable (a key rejected, a quota spent). ``role``
    judges that role only; ``provider`` keeps the findings about that provider."""
    from rolecall.recording.store.advise import about_provider, advise

    window = _window(query, source.clock())
    min_requests = _int(query, "min_requests", 20, 10**9)
    store = source.store()
    if store is None:
        return []
    providers = source.providers() if source.providers is not None else None
    health = source.health() if source.health is not None else {}
    unavailable = {pid for pid, state in health.items() if state.get("state") == "unavailable"}
    rows = store.metrics(*window, role=query.get("role") or None)
    findings = advise(rows, min_requests, providers, unavailable)
    provider = query.get("provider") or None
    if provider is not None:
        findings = about_provider(findings, rows, provider)
    return [finding.to_dict() for finding in findings]


def _runs(source: DataSource, query: Mapping[str, str]) -> Any:
    from rolecall.recording.runwriter import settle_summary

    limit = _int(query, "limit", 20, 1000)
    store = source.store()
    if store is None:
        return []
    summaries = store.runs(limit)
    settled = [
        settle_summary(s, store.run_meta(s.run_id)) if s.status == "running" else s
        for s in summaries
    ]
    return [summary.to_dict() for summary in settled]


def _run(source: DataSource, run_id: str, query: Mapping[str, str]) -> Any:
    """``runs show RUN --json``; of a run with more than ``limit`` tasks (a gateway's
    holds up to 100,000), its newest ``limit`` and, in ``tasks_total``, how many it has."""
    from rolecall.recording.runwriter import settle_run

    limit = _int(query, "limit", RUN_TASKS, 100_000)
    store = source.store()
    if store is None:
        raise ApiError(404, f"no run {run_id!r}: no metrics recorded yet")
    run = store.run(run_id, last_tasks=limit)
    if run is None:
        raise ApiError(404, f"no run {run_id!r}: /api/runs lists the recorded runs")
    data = settle_run(run).to_dict()
    if run.tasks_total is not None:
        data["tasks_total"] = run.tasks_total
    return data


_ROUTES: dict[str, Callable[[DataSource, Mapping[str, str]], Any]] = {
    "/api/metrics": _metrics,
    "/api/handovers": _handovers,
    "/api/trend": _trend,
    "/api/runs": _runs,
}


def _health(source: DataSource) -> Any:
    if source.health is None:
        return {"live": False, "providers": {}}
    return {"live": True, "providers": source.health()}


def foreign_host_body(host: str | None) -> bytes:
    """The 403 body for a keyless server asked for data under a name that is not loopback."""
    message = (
        f"Host {host!r} is not a loopback name and this server has no API keys: open the "
        "dashboard at http://127.0.0.1:PORT/ui (or localhost), or set gateway.keys"
    )
    return json.dumps({"error": message}, separators=(",", ":")).encode("utf-8")


def answer(source: DataSource, path: str, query: Mapping[str, str]) -> tuple[int, bytes]:
    """(HTTP status, JSON body) for a GET of ``path`` under ``/api/``."""
    try:
        data = _data(source, path, query)
        status = 200
    except ApiError as exc:
        data, status = {"error": exc.message}, exc.status
    except RolecallError as exc:  # the store cannot be opened or read (unsupported URL, down)
        data, status = {"error": " ".join(exc.message.split())}, 503
    return status, json.dumps(data, separators=(",", ":")).encode("utf-8")


def _data(source: DataSource, path: str, query: Mapping[str, str]) -> Any:
    if path == "/api/health":
        return _health(source)
    if path == "/api/advise":
        return _advise(source, query)
    route = _ROUTES.get(path)
    if route is not None:
        return route(source, query)
    if not path.startswith("/api/runs/"):
        raise ApiError(404, f"no endpoint {path}: see the README's dashboard section")
    return _run(source, path[len("/api/runs/") :], query)
