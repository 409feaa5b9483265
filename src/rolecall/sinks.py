"""The event sinks every front end attaches to its router: the recorder, and tracing if on."""

from __future__ import annotations

import logging
from pathlib import Path

from rolecall.config.schema import RolecallConfig
from rolecall.errors import MissingExtra
from rolecall.events import EventSink
from rolecall.recorder import Recorder
from rolecall.router import Router
from rolecall.telemetry import TelemetrySink, telemetry_enabled

__all__ = ["attach_sinks", "telemetry_sink"]

log = logging.getLogger("rolecall.sinks")


def telemetry_sink(config: RolecallConfig) -> EventSink | None:
    """An OpenTelemetry sink when the OTEL_* variables ask for tracing, else None."""
    if not telemetry_enabled():
        return None
    types = {pid: provider.type for pid, provider in config.providers.items()}
    try:
        return TelemetrySink(types)
    except MissingExtra as exc:
        log.warning("tracing is off: %s", exc.message)
        return None


def attach_sinks(router: Router, *, base_dir: Path | None = None) -> Recorder:
    """Attach the run log + metrics recorder (and tracing when enabled) to ``router``.

    The caller owns the returned recorder and closes it, which flushes every event.
    """
    recorder = Recorder(router.config.metrics, base_dir=base_dir)
    router.events.add(recorder)
    tracing = telemetry_sink(router.config)
    if tracing is not None:
        router.events.add(tracing)
    return recorder
