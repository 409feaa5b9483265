"""The event sinks every front end attaches to its router: the recorder, and tracing if on."""

from __future__ import annotations

import logging
from pathlib import Path

from rolecall.errors import MissingExtra
from rolecall.events import EventSink
from rolecall.recorder import Recorder
from rolecall.router import Router
from rolecall.telemetry import TelemetrySink, telemetry_enabled

__all__ = ["attach_sinks"]

log = logging.getLogger("rolecall.sinks")


def attach_sinks(router: Router, *, base_dir: Path | None = None) -> Recorder:
    """Attach the run log + metrics recorder (and OpenTelemetry when OTEL_* asks for it).

    The caller owns the returned recorder and closes it, which flushes every event.
    """
    recorder = Recorder(router.config.metrics, base_dir=base_dir)
    router.events.add(recorder)
    if telemetry_enabled():
        types = {pid: provider.type for pid, provider in router.config.providers.items()}
        try:
            sink: EventSink = TelemetrySink(types)
        except MissingExtra as exc:
            log.warning("tracing is off: %s", exc.message)
        else:
            router.events.add(sink)
    return recorder
