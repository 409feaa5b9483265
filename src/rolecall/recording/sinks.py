"""The event sinks every front end attaches to its router: the recorder, and telemetry if on.

Telemetry is on when the standard ``OTEL_*`` variables ask for it; the first sink built
then installs the tracer and meter providers and their exporters
(:mod:`rolecall.recording.telemetry_setup`), which are flushed at exit or by
:func:`flush_telemetry`.
"""

from __future__ import annotations

import logging
from pathlib import Path

from rolecall.config.registry import provider_types as registered_types
from rolecall.config.schema import RolecallConfig
from rolecall.errors import MissingExtra
from rolecall.events import EventSink
from rolecall.recording.recorder import Recorder
from rolecall.recording.telemetry import TelemetrySink, telemetry_enabled
from rolecall.routing.router import Router

__all__ = ["attach_sinks", "flush_telemetry", "telemetry_sink"]

log = logging.getLogger("rolecall.sinks")


def telemetry_sink(config: RolecallConfig, *, quiet: bool = False) -> EventSink | None:
    """An OpenTelemetry sink when the OTEL_* variables ask for telemetry, else None.

    The first call sets up the exporters, unless the host application installed its own
    providers; a missing package turns telemetry off with one warning naming the fix.
    ``quiet``: the set-up's warnings are not shown (another process shows them).
    """
    if not telemetry_enabled():
        return None
    types = {pid: provider.type for pid, provider in config.providers.items()}
    models = {pid: p.model for pid, p in config.providers.items() if p.model}
    rows = registered_types()
    urls = {
        pid: str(url)
        for pid, p in config.providers.items()
        if (url := p.base_url or (rows[p.type].default_base_url if p.type in rows else None))
    }
    try:
        from rolecall.recording.telemetry_setup import setup_telemetry

        setup_telemetry(quiet=quiet)
        return TelemetrySink(types, provider_models=models, provider_urls=urls)
    except MissingExtra as exc:
        log.log(logging.DEBUG if quiet else logging.WARNING, "telemetry is off: %s", exc.message)
        return None


def flush_telemetry() -> None:
    """Export the spans and metrics recorded so far, when telemetry was set up at all."""
    import sys

    if "rolecall.recording.telemetry_setup" in sys.modules:
        from rolecall.recording.telemetry_setup import flush_telemetry as flush

        flush()


def attach_sinks(router: Router, *, base_dir: Path | None = None) -> Recorder:
    """Attach the run log + metrics recorder (and tracing when enabled) to ``router``.

    The recorder takes each call's start too (``ask`` and the workflow: few, long calls),
    so that a call in flight when the process is killed is still recorded.

    The caller owns the returned recorder and closes it, which flushes every event.
    """
    recorder = Recorder(router.config.metrics, base_dir=base_dir)
    router.events.add(recorder, starts=True)
    tracing = telemetry_sink(router.config)
    if tracing is not None:
        router.events.add(tracing)
    return recorder
