"""OpenTelemetry export end to end: ``rolecall ask`` and ``rolecall serve`` send their spans and
GenAI client metrics to an OTLP/HTTP receiver on 127.0.0.1, set up from the OTEL_* variables
alone; ``OTEL_TRACES_EXPORTER=console`` prints the spans. Each front end runs as a subprocess,
so the process-wide providers it installs and its flush at exit are the real ones.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk")
pytest.importorskip("opentelemetry.exporter.otlp.proto.http")

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

import rolecall
from rolecall.sim import Fault, SimServer

SRC = str(Path(rolecall.__file__).resolve().parent.parent)


class Receiver:
    """A tiny OTLP/HTTP collector: keeps every POST to /v1/traces and /v1/metrics, decoded.

    ``hang=True`` makes one that reads each export and never answers it; ``delay`` one that
    answers each export that many seconds after reading it.
    """

    def __init__(self, *, hang: bool = False, delay: float = 0.0) -> None:
        self.spans: list[dict[str, Any]] = []
        self.metrics: list[dict[str, Any]] = []
        self.exports: list[str] = []  # the path of each POST, in the order they came
        self.services: set[str] = set()
        self._lock = threading.Lock()
        self._closed = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                if hang:
                    receiver._closed.wait()
                    return
                receiver._closed.wait(delay)
                if self.headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                receiver.take(self.path, body)
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def take(self, path: str, body: bytes) -> None:
        with self._lock:
            self.exports.append(path)
            if path == "/v1/traces":
                traces = ExportTraceServiceRequest.FromString(body)
                for resource in traces.resource_spans:
                    service = _attributes(resource.resource.attributes).get("service.name")
                    self.services.add(str(service))
                    for scope in resource.scope_spans:
                        for span in scope.spans:
                            self.spans.append(_span(span, service))
            elif path == "/v1/metrics":
                request = ExportMetricsServiceRequest.FromString(body)
                for resource in request.resource_metrics:
                    service = _attributes(resource.resource.attributes).get("service.name")
                    for scope in resource.scope_metrics:
                        for metric in scope.metrics:
                            self.metrics.append(_metric(metric, service))

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closed.set()
        self.server.shutdown()
        self.server.server_close()


def _value(any_value: Any) -> Any:
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind else None


def _attributes(pairs: Any) -> dict[str, Any]:
    return {pair.key: _value(pair.value) for pair in pairs}


def _span(span: Any, service: Any) -> dict[str, Any]:
    return {
        "name": span.name,
        "service": service,
        "span_id": span.span_id,
        "parent": span.parent_span_id,
        "attributes": _attributes(span.attributes),
        "status": span.status.code,
    }


def _metric(metric: Any, service: Any) -> dict[str, Any]:
    points = [
        {"attributes": _attributes(point.attributes), "count": point.count, "sum": point.sum}
        for point in metric.histogram.data_points
    ]
    return {"name": metric.name, "unit": metric.unit, "service": service, "points": points}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


@pytest.fixture
def workdir(tmp_path: Path) -> Iterator[Path]:
    with (
        SimServer("openai", models=("gpt-sim",)) as gpt,
        SimServer("anthropic", models=("claude-sim",)) as claude,
    ):
        gpt.script(Fault("auth"))  # the primary refuses the key: a hand-over to claude
        (tmp_path / "rolecall.yaml").write_text(
            f"""
providers:
  gpt: {{type: openai, model: gpt-sim, api_key: test-key, base_url: "{gpt.base_url}"}}
  claude: {{type: anthropic, model: claude-sim, api_key: test-key, base_url: "{claude.base_url}"}}
roles:
  coder: {{provider: gpt, fallback: [claude]}}
metrics: {{url: "sqlite:///{tmp_path / "metrics.db"}", runs_dir: "{tmp_path / "runs"}"}}
"""
        )
        yield tmp_path


def _env(**otel: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.pop("ROLECALL_CONFIG", None)
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    env.update(otel)
    return env


def _rolecall(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "rolecall", *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=60)


def _check_handover(receiver: Receiver, service: str) -> None:
    spans = [span for span in receiver.spans if span["service"] == service]
    tasks = [span for span in spans if span["name"] == "rolecall.task coder"]
    assert len(tasks) == 1, spans
    task = tasks[0]["attributes"]
    assert task["rolecall.role"] == "coder"
    assert task["rolecall.provider"] == "claude"
    assert task["gen_ai.operation.name"] == "chat"
    assert task["rolecall.handovers"] == 1
    failed = next(span for span in spans if span["name"] == "chat gpt-sim")
    answered = next(span for span in spans if span["name"] == "chat claude-sim")
    assert failed["parent"] == answered["parent"] == tasks[0]["span_id"]
    assert failed["attributes"]["error.type"] == "auth"
    assert failed["attributes"]["rolecall.provider"] == "gpt"
    assert failed["attributes"]["gen_ai.system"] == "openai"
    assert failed["attributes"]["rolecall.outcome"] == "handover"
    assert answered["attributes"]["gen_ai.system"] == "anthropic"
    assert answered["attributes"]["gen_ai.usage.output_tokens"] > 0

    metrics = [metric for metric in receiver.metrics if metric["service"] == service]
    by_name = {metric["name"]: metric for metric in metrics}
    duration = by_name["gen_ai.client.operation.duration"]
    assert duration["unit"] == "s"
    calls = {
        (p["attributes"]["rolecall.provider"], p["attributes"].get("error.type")): p["count"]
        for p in duration["points"]
    }
    assert calls == {("gpt", "auth"): 1, ("claude", None): 1}
    assert all(p["attributes"]["rolecall.role"] == "coder" for p in duration["points"])
    tokens = by_name["gen_ai.client.token.usage"]
    kinds = {p["attributes"]["gen_ai.token.type"]: p for p in tokens["points"]}
    assert set(kinds) == {"input", "output"}
    assert kinds["output"]["sum"] > 0
    assert kinds["output"]["attributes"]["rolecall.provider"] == "claude"


def test_ask_exports_spans_and_metrics_over_otlp_http(workdir: Path, receiver: Receiver) -> None:
    env = _env(OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url, OTEL_SERVICE_NAME="rolecall-ask")
    done = _rolecall("ask", "coder", "say hi", "--json", "--offline", cwd=workdir, env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["provider"] == "claude"
    _check_handover(receiver, "rolecall-ask")


def test_gateway_exports_spans_and_metrics_over_otlp_http(
    workdir: Path, receiver: Receiver
) -> None:
    env = _env(OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url, OTEL_SERVICE_NAME="rolecall-gateway")
    command = [sys.executable, "-m", "rolecall", "serve", "--port", "0", "--offline"]
    command += ["--no-access-log"]
    server = subprocess.Popen(
        command, cwd=workdir, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
    )
    try:
        url = _gateway_url(server)
        body = json.dumps({"model": "coder", "messages": [{"role": "user", "content": "hi"}]})
        request = urllib.request.Request(
            f"{url}/chat/completions",
            data=body.encode(),
            headers={"content-type": "application/json"},
        )
        answer = _post_when_listening(request)
        assert answer["choices"][0]["message"]["content"]
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)
    _check_handover(receiver, "rolecall-gateway")


def test_gateway_exports_the_tasks_whose_clients_left(tmp_path: Path, receiver: Receiver) -> None:
    # A client that left mid-answer or mid-stream: its task never ended, so its attempt
    # waited in the gateway's memory for good and no span of it reached the collector.
    with SimServer("openai", models=("gpt-sim",)) as gpt:
        (tmp_path / "rolecall.yaml").write_text(
            f"""
providers:
  gpt: {{type: openai, model: gpt-sim, api_key: test-key, base_url: "{gpt.base_url}"}}
roles:
  coder: {{provider: gpt}}
metrics: {{url: "sqlite:///{tmp_path / "metrics.db"}", runs_dir: "{tmp_path / "runs"}"}}
"""
        )
        gpt.script(Fault("timeout", delay=30), Fault("stall", after_chunks=1, delay=30))
        env = _env(OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url, OTEL_SERVICE_NAME="rolecall-left")
        command = [sys.executable, "-m", "rolecall", "serve", "--port", "0", "--offline"]
        command += ["--workers", "1", "--no-access-log"]
        server = subprocess.Popen(
            command,
            cwd=tmp_path,
            env=env,
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
        )
        try:
            url = _gateway_url(server)
            _leave_mid_call(url, stream=False, called=lambda: gpt.calls == 1)
            _leave_mid_call(url, stream=True, called=lambda: gpt.calls == 2)
            _wait_until_idle(url)
        finally:
            server.send_signal(signal.SIGINT)
            server.wait(timeout=30)
    tasks = [span for span in receiver.spans if span["name"] == "rolecall.task coder"]
    assert [task["attributes"]["rolecall.status"] for task in tasks] == ["cancelled"] * 2
    assert all(task["status"] == 0 for task in tasks)  # unset: no provider failed
    calls = [span for span in receiver.spans if span["name"] == "chat gpt-sim"]
    assert sorted(call["parent"] for call in calls) == sorted(t["span_id"] for t in tasks)
    assert {call["attributes"]["rolecall.outcome"] for call in calls} == {"cancelled"}


def _leave_mid_call(url: str, *, stream: bool, called: Callable[[], bool]) -> None:
    """Ask for an answer, then hang up before it is whole: once the provider was ``called``,
    after a stream's first line."""
    host, port = url.removeprefix("http://").removesuffix("/v1").split(":")
    body = json.dumps(
        {"model": "coder", "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    ).encode()
    deadline = time.monotonic() + 30
    while True:
        try:
            connection = socket.create_connection((host, int(port)), timeout=30)
            break
        except ConnectionRefusedError:  # it logs its address just before it listens
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    with connection:
        connection.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\n"
            b"content-type: application/json\r\n"
            + f"content-length: {len(body)}\r\n\r\n".encode()
            + body
        )
        if stream:
            received = b""
            while b"data:" not in received:
                more = connection.recv(65536)
                assert more, received
                received += more
        while not called():
            assert time.monotonic() < deadline, "the provider was never called"
            time.sleep(0.02)


def _wait_until_idle(url: str) -> None:
    """Until the gateway has no request in progress (its clients' leaving was noticed)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with urllib.request.urlopen(url.removesuffix("/v1") + "/metrics", timeout=30) as page:
            text = page.read().decode()
        if re.search(r"^rolecall_gateway_in_flight 0$", text, re.M):
            return
        time.sleep(0.05)
    raise AssertionError("requests still in flight")


def _post_when_listening(request: urllib.request.Request) -> Any:
    """The gateway logs its address just before it starts listening: retry a refused connect."""
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return json.load(response)
        except urllib.error.URLError as exc:
            if "refused" not in str(exc.reason) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _gateway_url(server: subprocess.Popen[str], seen: list[str] | None = None) -> str:
    assert server.stderr is not None
    deadline = time.monotonic() + 30
    seen = [] if seen is None else seen
    while time.monotonic() < deadline:
        line = server.stderr.readline()
        if not line:
            break
        seen.append(line)
        found = re.search(r"rolecall gateway on (http://\S+/v1)", line)
        if found:
            threading.Thread(target=server.stderr.read, daemon=True).start()  # keep draining
            return found.group(1)
    raise AssertionError("the gateway did not start: " + "".join(seen))


def test_a_collector_that_never_answers_does_not_hold_the_exit(workdir: Path) -> None:
    with Receiver(hang=True) as silent:
        env = _env(OTEL_EXPORTER_OTLP_ENDPOINT=silent.url)
        done = _rolecall("ask", "coder", "say hi", "--json", "--offline", cwd=workdir, env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["provider"] == "claude"
    # The exit gave up on the collector after FLUSH_WAIT, not after the SDK's retries.
    assert "the collector did not take the last spans and metrics within 5 s" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_exit_sends_the_metrics_once(workdir: Path, receiver: Receiver) -> None:
    env = _env(OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url)
    done = _rolecall("ask", "coder", "say hi", "--json", "--offline", cwd=workdir, env=env)
    assert done.returncode == 0, done.stderr
    assert sorted(receiver.exports) == ["/v1/metrics", "/v1/traces"]


def test_a_collector_that_answers_slowly_gets_everything_without_a_warning(
    workdir: Path,
) -> None:
    # Two seconds an answer: the exit waits for one answer per signal, sent side by side,
    # well within FLUSH_WAIT (it waited for three in a row, and gave up).
    with Receiver(delay=2.0) as slow:
        env = _env(OTEL_EXPORTER_OTLP_ENDPOINT=slow.url)
        done = _rolecall("ask", "coder", "say hi", "--json", "--offline", cwd=workdir, env=env)
        assert done.returncode == 0, done.stderr
        assert "did not take" not in done.stderr
        _check_handover(slow, "rolecall")


@pytest.mark.parametrize("interval", ["0", "-5", "1e20"])
def test_an_unusable_export_interval_is_one_warning_and_the_default(
    workdir: Path, receiver: Receiver, interval: str
) -> None:
    env = _env(OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url, OTEL_METRIC_EXPORT_INTERVAL=interval)
    done = _rolecall("ask", "coder", "say hi", "--json", "--offline", cwd=workdir, env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["provider"] == "claude"
    assert "Traceback" not in done.stderr
    warning = f"warning: OTEL_METRIC_EXPORT_INTERVAL: '{interval}' is not a number of milliseconds"
    assert warning in done.stderr
    assert "metrics are exported every 60000 ms (the default)" in done.stderr
    _check_handover(receiver, "rolecall")  # spans and metrics still reach the collector


@pytest.mark.parametrize(
    ("variable", "value", "refused"),
    [
        ("OTEL_BSP_SCHEDULE_DELAY", "-1", ("traces",)),
        ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "99999", ("traces",)),
        ("OTEL_METRICS_EXEMPLAR_FILTER", "sometimes", ("metrics",)),
        # Read when the SDK's trace module is imported, which the OTLP exporters of both do.
        ("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "many", ("traces", "metrics")),
    ],
)
def test_a_variable_the_sdk_refuses_turns_its_signal_off_with_one_warning(
    workdir: Path, receiver: Receiver, variable: str, value: str, refused: tuple[str, ...]
) -> None:
    # The SDK raises on these (it warns on most): the call is answered, no traceback, and
    # the other signal still reaches the collector.
    env = _env(OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url, **{variable: value})
    done = _rolecall("ask", "coder", "say hi", "--json", "--offline", cwd=workdir, env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["provider"] == "claude"
    assert "Traceback" not in done.stderr
    for signal_name in ("traces", "metrics"):
        said = [line for line in done.stderr.splitlines() if f"no {signal_name} are" in line]
        assert len(said) == (signal_name in refused), done.stderr
        assert all(line.startswith("warning: telemetry: ") and variable in line for line in said)
    assert bool(receiver.spans) == ("traces" not in refused)
    assert bool(receiver.metrics) == ("metrics" not in refused)


def test_an_unsupported_protocol_is_named_with_the_fix(workdir: Path, receiver: Receiver) -> None:
    env = _env(
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url,
        OTEL_EXPORTER_OTLP_TRACES_PROTOCOL="http/json",
        OTEL_TRACES_EXPORTER="otlp,console",
    )
    done = _rolecall("ask", "coder", "say hi", "--json", "--offline", cwd=workdir, env=env)
    assert done.returncode == 0, done.stderr
    assert (
        "warning: OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: protocol 'http/json' is not supported, "
        "so no traces are exported over OTLP; use http/protobuf (the default) or grpc"
    ) in done.stderr
    assert "pip install" not in done.stderr  # no package gives that protocol
    assert '"name": "rolecall.task coder"' in done.stderr  # the console exporter still prints
    assert not receiver.spans
    assert receiver.metrics  # metrics use the default protocol, over HTTP


def test_grpc_without_its_exporter_names_the_package_to_install(
    workdir: Path, receiver: Receiver
) -> None:
    if importlib.util.find_spec("opentelemetry.exporter.otlp.proto.grpc") is not None:
        pytest.skip("the gRPC exporter is installed here")
    env = _env(
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url,
        OTEL_EXPORTER_OTLP_PROTOCOL="grpc",
        OTEL_TRACES_EXPORTER="otlp,console",
    )
    done = _rolecall("ask", "coder", "say hi", "--json", "--offline", cwd=workdir, env=env)
    assert done.returncode == 0, done.stderr
    package = "opentelemetry-exporter-otlp-proto-grpc"
    assert f"pip install {package}, or use http/protobuf (the default)" in done.stderr
    assert "rolecall[otel]" not in done.stderr  # the extra does not install it
    assert '"name": "rolecall.task coder"' in done.stderr  # telemetry stays on


TOKEN = "otlp-query-token-4242"
BEARER = "sk-live-collector-7373"


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_the_collector_credentials_never_reach_the_output(workdir: Path) -> None:
    # A collector that is down makes the SDK warn with the URL it tried; a headers
    # variable written as "name: value" makes it quote the variable.
    port = _closed_port()
    env = _env(
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=f"http://127.0.0.1:{port}/v1/traces?api_key={TOKEN}",
        OTEL_EXPORTER_OTLP_METRICS_ENDPOINT=f"http://collector:{TOKEN}@127.0.0.1:{port}/v1/metrics",
        OTEL_EXPORTER_OTLP_HEADERS=f"Authorization: Bearer {BEARER}",
    )
    done = _rolecall("ask", "coder", "say hi", "--json", "--offline", cwd=workdir, env=env)
    assert done.returncode == 0, done.stderr
    assert "Header format invalid!" in done.stderr  # the SDK's warnings are shown...
    assert "/v1/traces?api_key=***" in done.stderr
    for secret in (TOKEN, BEARER):  # ...redacted
        assert secret not in done.stderr + done.stdout


def test_the_gateway_log_masks_the_collector_credentials(workdir: Path, receiver: Receiver) -> None:
    env = _env(
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url,
        OTEL_EXPORTER_OTLP_HEADERS=f"Authorization: Bearer {BEARER}",
    )
    command = [sys.executable, "-m", "rolecall", "serve", "--port", "0", "--offline"]
    command += ["--workers", "1", "--no-access-log"]
    server = subprocess.Popen(
        command, cwd=workdir, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
    )
    logged: list[str] = []  # up to the line saying where it listens, the exporters made
    try:
        _gateway_url(server, logged)
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)
    stderr = "".join(logged)
    assert "Header format invalid!" in stderr
    assert BEARER not in stderr


def test_the_workers_say_a_telemetry_setting_problem_once(
    workdir: Path, receiver: Receiver
) -> None:
    # Every worker sets telemetry up from the same variables: the first says what is wrong.
    env = _env(
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url,
        OTEL_EXPORTER_OTLP_HEADERS=f"Authorization: Bearer {BEARER}",
        OTEL_METRIC_EXPORT_INTERVAL="0",
    )
    command = [sys.executable, "-m", "rolecall", "serve", "--port", "0", "--offline"]
    command += ["--workers", "3", "--no-access-log"]
    server = subprocess.Popen(
        command, cwd=workdir, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
    )
    assert server.stderr is not None
    logged: list[str] = []
    try:
        while sum("rolecall gateway on" in line for line in logged) < 3:  # every worker ready
            line = server.stderr.readline()
            assert line, "the gateway stopped: " + "".join(logged)
            logged.append(line)
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)
    stderr = "".join(logged)
    assert stderr.count("OTEL_METRIC_EXPORT_INTERVAL: '0' is not a number") == 1, stderr
    assert stderr.count("Header format invalid!") == 2, stderr  # one per signal's exporter


def test_console_exporter_prints_the_spans(workdir: Path) -> None:
    env = _env(OTEL_TRACES_EXPORTER="console")
    done = _rolecall("ask", "coder", "say hi", "--json", "--offline", cwd=workdir, env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["provider"] == "claude"  # stdout stays pure JSON
    assert '"name": "rolecall.task coder"' in done.stderr
    assert '"error.type": "auth"' in done.stderr


def test_nothing_of_opentelemetry_is_imported_without_the_variables(workdir: Path) -> None:
    code = (
        "import sys, rolecall, rolecall.recording.sinks, rolecall.cli; "
        "from rolecall.cli import main\n"
        "try:\n    main(['ask', 'coder', 'hi', '--offline'])\nexcept SystemExit:\n    pass\n"
        "print(sorted({m.split('.')[0] + '.' + m.split('.')[1] for m in sys.modules "
        "if m.startswith('opentelemetry.')}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=workdir,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_a_provider_the_host_application_set_is_kept(workdir: Path, receiver: Receiver) -> None:
    code = """
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider
from rolecall.recording.telemetry_setup import setup_telemetry
host_tracer, host_meter = TracerProvider(), MeterProvider()
trace.set_tracer_provider(host_tracer)
metrics.set_meter_provider(host_meter)
setup_telemetry()
print(trace.get_tracer_provider() is host_tracer, metrics.get_meter_provider() is host_meter)
"""
    env = _env(OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url)
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=workdir, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "True"]
