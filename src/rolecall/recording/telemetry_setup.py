"""Setting up OpenTelemetry export from the standard ``OTEL_*`` variables (``rolecall[otel]``).

The CLI and the gateway call :func:`setup_telemetry` when the variables ask for
telemetry. It installs a tracer provider and a meter provider with their
exporters, unless the host application already installed its own (then its
providers receive our spans and metrics and its exporters are left alone).

Variables read (the SDK's exporters read endpoint, headers, timeout and
compression themselves):

- ``OTEL_TRACES_EXPORTER`` / ``OTEL_METRICS_EXPORTER``: ``otlp``, ``console``
  or ``none``, comma-separated; unset means ``otlp`` when an OTLP endpoint is
  set and ``none`` otherwise (so ``console`` alone never tries a collector);
- ``OTEL_EXPORTER_OTLP_ENDPOINT`` (+ ``_TRACES_``/``_METRICS_`` variants),
  ``OTEL_EXPORTER_OTLP_HEADERS``, ``OTEL_EXPORTER_OTLP_PROTOCOL``
  (``http/protobuf``, the default; ``grpc`` when its exporter is installed);
- ``OTEL_SERVICE_NAME`` / ``OTEL_RESOURCE_ATTRIBUTES`` (service name defaults to
  ``rolecall``); ``OTEL_METRIC_EXPORT_INTERVAL`` (ms); ``OTEL_SDK_DISABLED``.

The SDK reads the other ``OTEL_*`` variables itself and warns about most values it
cannot use; a value it refuses with an exception turns that signal's export off with
one warning instead (the call goes on).

Console output goes to stderr so that ``--json`` output on stdout stays valid.
Providers installed here are flushed by :func:`flush_telemetry` (gateway stop)
and shut down at process exit (which exports what they hold), the traces and the
metrics side by side, within :data:`FLUSH_WAIT`: a collector that is down or never
answers would otherwise hold the process for the SDK's retries (up to its export
timeout per signal and step, half a minute in all).
Nothing here imports OpenTelemetry until :func:`setup_telemetry` runs, so
``import rolecall`` stays light.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import math
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import partial
from typing import Any
from urllib.parse import unquote

from rolecall._secrets import register_secret, register_url_secrets
from rolecall.errors import MissingExtra

__all__ = [
    "FLUSH_WAIT",
    "exporter_names",
    "flush_telemetry",
    "metrics_wanted",
    "setup_telemetry",
    "shutdown_telemetry",
    "traces_wanted",
]

log = logging.getLogger("rolecall.telemetry")

_lock = threading.Lock()
_done = False
_owned: list[Any] = []  # providers installed here: flushed and shut down by us
_exit_hook = False
_gave_up = False  # a flush found the collector unresponsive: exit waits for it no more

# Seconds a flush (or the flush and shutdown at exit) waits for the collector to take
# what is left; what it has not taken by then is dropped.
FLUSH_WAIT = 5.0
_DEFAULT_INTERVAL_MS = 60_000.0  # the SDK's and the specification's default export interval


def _env(environ: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if environ is None else environ


def _disabled(env: Mapping[str, str]) -> bool:
    return env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"


def exporter_names(signal: str, environ: Mapping[str, str] | None = None) -> list[str]:
    """Exporters asked for ``signal`` (``traces`` or ``metrics``), ``none`` removed."""
    env = _env(environ)
    if _disabled(env):
        return []
    upper = signal.upper()
    named = env.get(f"OTEL_{upper}_EXPORTER", "").strip().lower()
    if not named:
        endpoint = env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get(
            f"OTEL_EXPORTER_OTLP_{upper}_ENDPOINT"
        )
        named = "otlp" if endpoint else "none"
    names = [part.strip() for part in named.split(",") if part.strip()]
    return [name for name in names if name != "none"]


def traces_wanted(environ: Mapping[str, str] | None = None) -> bool:
    return bool(exporter_names("traces", environ))


def metrics_wanted(environ: Mapping[str, str] | None = None) -> bool:
    return bool(exporter_names("metrics", environ))


def setup_telemetry(environ: Mapping[str, str] | None = None, *, quiet: bool = False) -> None:
    """Install tracer and meter providers with exporters, once per process.

    A signal whose global provider the host application already set is left to it.
    ``quiet``: what the variables' values get warned of is not shown (a worker of
    ``serve --workers`` other than the first, which says it).
    Raises :class:`MissingExtra` when the SDK or the OTLP exporter is not installed.
    """
    with _lock:
        if _done:
            return
        with _warnings_hidden(quiet):
            _install(_env(environ))


@contextlib.contextmanager
def _warnings_hidden(hidden: bool) -> Iterator[None]:
    """Ours and the SDK's warnings (building an exporter checks its variables) not shown."""
    loggers = [logging.getLogger(name) for name in ("rolecall.telemetry", "opentelemetry")]
    levels = [logger.level for logger in loggers]
    if hidden:
        for logger in loggers:
            logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _install(env: Mapping[str, str]) -> None:
    """Install the providers and their exporters (``_lock`` held)."""
    global _done
    try:
        from opentelemetry import metrics, trace
    except ImportError as exc:
        raise MissingExtra("otel", "opentelemetry-api", "OpenTelemetry export") from exc
    traces, meters = exporter_names("traces", env), exporter_names("metrics", env)
    _register_secrets(env)
    if traces and _unset(trace.get_tracer_provider()):
        provider = _built("traces", lambda: _tracer_provider(traces, env), env)
        if provider is not None:
            trace.set_tracer_provider(provider)
            _owned.append(provider)
    if meters and _unset(metrics.get_meter_provider()):
        meter_provider = _built("metrics", lambda: _meter_provider(meters, env), env)
        if meter_provider is not None:
            metrics.set_meter_provider(meter_provider)
            _owned.append(meter_provider)
    _done = True
    _register_exit_hook()


def _register_secrets(env: Mapping[str, str]) -> None:
    """Mask the collector's credentials in every line shown, the SDK's own warnings too.

    An endpoint may carry a token (``?api_key=``, ``user:pass@``), and the SDK quotes a
    headers variable it cannot parse (``Authorization: Bearer ...``) whole.
    """
    for signal in ("", "TRACES_", "METRICS_"):
        register_url_secrets(env.get(f"OTEL_EXPORTER_OTLP_{signal}ENDPOINT", ""))
        headers = env.get(f"OTEL_EXPORTER_OTLP_{signal}HEADERS", "").strip()
        if not headers:
            continue
        register_secret(headers)
        for item in headers.split(","):
            name, equals, value = item.partition("=")
            value = value if equals else name.partition(":")[2]  # a name: value written
            for form in (value.strip(), unquote(value).strip()):
                register_secret(form)
                register_secret(form.rpartition(" ")[2])  # the credential after "Bearer "


def _built(signal: str, build: Callable[[], Any], env: Mapping[str, str]) -> Any | None:
    """``build()``, or None with one warning when the SDK refuses an OTEL_* variable.

    The SDK raises ValueError for a few values it will not take (a negative
    ``OTEL_BSP_SCHEDULE_DELAY``, a limit that is no number, an unknown exemplar filter),
    not always naming the variable: the warning lists the ones set.
    """
    try:
        return build()
    except ValueError as exc:
        names = ", ".join(sorted(name for name in env if name.startswith("OTEL_")))
        log.warning(
            "telemetry: no %s are exported: %s; fix or unset the OTEL_* variable it comes "
            "from (set: %s)",
            signal,
            str(exc).rstrip("."),
            names,
        )
        return None


def _unset(provider: Any) -> bool:
    """True while the global provider is still the API's placeholder (no host provider)."""
    name = type(provider).__name__
    return name in ("ProxyTracerProvider", "_ProxyMeterProvider", "ProxyMeterProvider")


def _resource(env: Mapping[str, str]) -> Any:
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource

    resource = Resource.create()
    if not env.get("OTEL_SERVICE_NAME") and "service.name=" not in env.get(
        "OTEL_RESOURCE_ATTRIBUTES", ""
    ):
        resource = resource.merge(Resource({SERVICE_NAME: "rolecall"}))
    return resource


def _protocol(signal: str, env: Mapping[str, str]) -> tuple[str, str]:
    """(the variable that sets the protocol, the protocol) for ``signal``."""
    for name in (f"OTEL_EXPORTER_OTLP_{signal.upper()}_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        value = env.get(name, "").strip().lower()
        if value:
            return name, value
    return "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"


def _otlp_module(signal: str, env: Mapping[str, str]) -> Any | None:
    """The OTLP exporter module for ``signal`` in the configured protocol (None: unknown)."""
    import importlib

    variable, protocol = _protocol(signal, env)
    kind = "trace_exporter" if signal == "traces" else "metric_exporter"
    if protocol == "grpc":
        package, module = "opentelemetry-exporter-otlp-proto-grpc", "grpc"
    elif protocol == "http/protobuf":
        package, module = "opentelemetry-exporter-otlp-proto-http", "http"
    else:
        log.warning(
            "%s: protocol %r is not supported, so no %s are exported over OTLP; "
            "use http/protobuf (the default) or grpc",
            variable,
            protocol,
            signal,
        )
        return None
    try:
        return importlib.import_module(f"opentelemetry.exporter.otlp.proto.{module}.{kind}")
    except ImportError as exc:
        if module == "http":
            raise MissingExtra("otel", package, "OTLP export") from exc
    # rolecall[otel] installs the HTTP exporter only: naming the extra would not help.
    log.warning(
        "%s=grpc needs the '%s' package, so no %s are exported over OTLP: "
        "pip install %s, or use http/protobuf (the default)",
        variable,
        package,
        signal,
        package,
    )
    return None


def _span_exporter(name: str, env: Mapping[str, str]) -> Any:
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter(out=sys.stderr)
    if name == "otlp":
        module = _otlp_module("traces", env)
        return None if module is None else module.OTLPSpanExporter()
    log.warning("OTEL_TRACES_EXPORTER: unknown exporter %r ignored; use otlp or console", name)
    return None


def _tracer_provider(names: list[str], env: Mapping[str, str]) -> Any:
    try:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        raise MissingExtra("otel", "opentelemetry-sdk", "OpenTelemetry export") from exc
    provider = TracerProvider(resource=_resource(env), shutdown_on_exit=False)
    for name in names:
        exporter = _span_exporter(name, env)
        if exporter is not None:
            provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def _metric_exporter(name: str, env: Mapping[str, str]) -> Any:
    if name == "console":
        from opentelemetry.sdk.metrics.export import ConsoleMetricExporter

        return ConsoleMetricExporter(out=sys.stderr)
    if name == "otlp":
        module = _otlp_module("metrics", env)
        return None if module is None else module.OTLPMetricExporter()
    log.warning("OTEL_METRICS_EXPORTER: unknown exporter %r ignored; use otlp or console", name)
    return None


def _meter_provider(names: list[str], env: Mapping[str, str]) -> Any:
    try:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    except ImportError as exc:
        raise MissingExtra("otel", "opentelemetry-sdk", "OpenTelemetry export") from exc
    resource = _resource(env)
    # Built once without readers first: it raises on an OTEL_* value it refuses before
    # any reader has started the export thread it would leave behind.
    MeterProvider(resource=resource, shutdown_on_exit=False)
    readers = []
    interval = _export_interval(env)
    for name in names:
        exporter = _metric_exporter(name, env)
        if exporter is not None:
            # Flushing at exit and at gateway stop exports what is left.
            readers.append(PeriodicExportingMetricReader(exporter, interval))
    return MeterProvider(resource=resource, metric_readers=readers, shutdown_on_exit=False)


def _export_interval(env: Mapping[str, str]) -> float:
    """OTEL_METRIC_EXPORT_INTERVAL in milliseconds; the default 60 s when unset or not usable.

    The SDK refuses 0 and negative values with an exception, and a value beyond the
    longest wait a thread can make kills its export thread with a traceback.
    """
    text = env.get("OTEL_METRIC_EXPORT_INTERVAL", "").strip()
    if not text:
        return _DEFAULT_INTERVAL_MS
    try:
        interval = float(text)
    except ValueError:
        interval = math.nan
    if interval > 0 and (interval <= threading.TIMEOUT_MAX * 1000 or math.isinf(interval)):
        return interval
    log.warning(
        "OTEL_METRIC_EXPORT_INTERVAL: %r is not a number of milliseconds above 0 and at most "
        "%d; metrics are exported every %d ms (the default)",
        text,
        threading.TIMEOUT_MAX * 1000,
        _DEFAULT_INTERVAL_MS,
    )
    return _DEFAULT_INTERVAL_MS


def flush_telemetry(timeout_ms: int = int(FLUSH_WAIT * 1000)) -> None:
    """Export every span and metric recorded so far (the process goes on)."""
    global _gave_up
    works = [partial(_flush, provider, timeout_ms) for provider in _owned]
    if works and not _within(timeout_ms / 1000, works):
        _gave_up = True


def shutdown_telemetry() -> None:
    """Shut down the providers installed here (at process exit), which exports what they hold."""
    global _done, _gave_up
    with _lock:
        owned, _owned[:] = list(_owned), []
        _done = False
    if not owned:
        return
    wait = 0.0 if _gave_up else FLUSH_WAIT  # an unresponsive collector is not waited for twice
    _gave_up = False
    # A shutdown exports each signal once: a flush before it would send the metrics twice,
    # and a collector that takes a while to answer would hold the exit for three answers.
    _within(wait, [partial(_shut_down, provider) for provider in owned])


def _flush(provider: Any, timeout_ms: int) -> None:
    try:
        provider.force_flush(timeout_ms)
    except Exception as exc:  # an unreachable collector must not break a front end
        log.warning("flushing telemetry failed: %s", exc)


def _shut_down(provider: Any) -> None:
    try:
        provider.shutdown()
    except Exception as exc:
        log.warning("shutting telemetry down failed: %s", exc)


def _within(seconds: float, works: Sequence[Callable[[], None]]) -> bool:
    """Run each of ``works`` in a daemon thread of its own, so the traces and the metrics go
    out side by side, waiting at most ``seconds`` for all; False when one is not done.

    The SDK's exporters retry a collector that refuses, fails or never answers for their
    whole timeout; a thread left behind is a daemon, so the process still exits.
    """
    threads = [
        threading.Thread(target=work, name="rolecall-telemetry-flush", daemon=True)
        for work in works
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + seconds
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    if not any(thread.is_alive() for thread in threads):
        return True
    if seconds > 0:
        log.warning(
            "telemetry: the collector did not take the last spans and metrics within %g s; "
            "they are dropped (check that OTEL_EXPORTER_OTLP_ENDPOINT names a running collector)",
            seconds,
        )
    return False


def _register_exit_hook() -> None:
    global _exit_hook
    if not _exit_hook:
        atexit.register(shutdown_telemetry)
        _exit_hook = True
