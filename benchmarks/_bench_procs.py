"""The processes bench_gateway.py measures: fake provider, gateway and the two floors.

Each runs in a process of its own, started here and stopped with :func:`stop`;
the load generator (bench_gateway.py) shares the machine with them, or, after
:func:`pin_servers`, keeps to other cores than the servers measured.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from urllib.parse import urlsplit

SIM_KEY = "bench-provider-key-0001"
GATEWAY_KEY = "bench-gateway-key-0001"

SIM_SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    from rolecall.sim import SimServer
    reply = "The quick brown fox jumps over the lazy dog."
    sim = SimServer("openai", api_key=sys.argv[1], models=("sim-model",), reply=reply,
                    latency=float(sys.argv[2]), jitter=float(sys.argv[3]), max_recorded=0)
    sim.start()
    print(sim.base_url, flush=True)
    sys.stdin.read()   # until the parent closes our stdin
    sim.stop()
    """
)

Process = subprocess.Popen[str] | subprocess.Popen[bytes]

# The cores the measured servers (gateway, floors, LiteLLM) run on; None: any core.
_server_cpus: set[int] | None = None


def pin_servers() -> tuple[set[int], set[int]]:
    """Keep the measured servers on this process's last core and this process (the load
    generator, and the fake provider started after this) on the others, as a server under
    test has its host to itself; returns (server cores, client cores)."""
    global _server_cpus
    cpus = os.sched_getaffinity(0)
    if len(cpus) < 2:
        raise SystemExit("--pin needs at least two cores (one for the servers, one for the rest)")
    _server_cpus = {max(cpus)}
    os.sched_setaffinity(0, cpus - _server_cpus)
    return _server_cpus, cpus - _server_cpus


def _on_server_cpus() -> None:  # runs in the child between fork and exec
    if _server_cpus is not None:
        os.sched_setaffinity(0, _server_cpus)


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process and its live descendants (Linux /proc), or None.

    Descendants count so that `rolecall serve --workers N` (a parent, its workers and
    the recording writer) is measured whole; they live as long as the server does.
    """
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    seconds = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    for child in children:
        seconds += process_cpu_seconds(int(child)) or 0.0
    return seconds


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(name: str, proc: Process, port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the {name} exited with status {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    proc.kill()
    proc.wait()
    raise SystemExit(f"the {name} is not listening on 127.0.0.1:{port} after {timeout} s")


def unreachable(url: str) -> str | None:
    """Why nothing answers at ``url`` (host and port taken from it), or None if something does."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port or 80
    except ValueError:
        host = None
    if not url.startswith("http://") or not host:
        return "not an http://host:port/... URL"
    try:
        with socket.create_connection((host, port), timeout=2.0):
            return None
    except OSError as exc:
        return f"nothing answers there ({exc.strerror or exc})"


def start_sim(latency: float, jitter: float) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", SIM_SCRIPT, SIM_KEY, str(latency), str(jitter)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    base_url = proc.stdout.readline().strip()
    if not base_url:
        raise SystemExit("the fake provider did not start")
    return proc, base_url


def gateway_config(sim_base: str, workdir: Path, record: bool = True) -> Path:
    """The gateway's config in ``workdir`` (its store and run log there too): model ``coder``
    routed to the fake provider, key GATEWAY_KEY."""
    config = workdir / "rolecall.yaml"
    config.write_text(
        textwrap.dedent(
            f"""
            providers:
              sim:
                type: openai-compatible
                model: sim-model
                base_url: {sim_base}
                api_key: {SIM_KEY}
                max_concurrency: 1000
            roles:
              coder: {{provider: sim}}
            default_provider: sim  # the other built-in roles too: no startup warning
            retry: {{max_attempts: 1}}
            metrics:
              url: sqlite:///{workdir}/rolecall.db
              runs_dir: {workdir}/runs
              enabled: {"true" if record else "false"}
            gateway:
              keys: [{GATEWAY_KEY}]
            """
        )
    )
    return config


def start_gateway(
    sim_base: str,
    workdir: Path,
    record: bool = True,
    workers: int = 1,
    src: str | None = None,
    lag_report: Path | None = None,
    profile_to: str | None = None,
) -> tuple[subprocess.Popen[bytes], str]:
    """`rolecall serve` in front of the fake provider; ``src``: import rolecall from there;
    ``lag_report``: serve through _bench_lag.py, which writes its report there on exit;
    ``profile_to``: serve under cProfile (_bench_profile.py), its profile written there."""
    config = gateway_config(sim_base, workdir, record)
    port = free_port()
    exe = Path(sys.executable).with_name("rolecall")
    cmd = [str(exe), "serve", "-c", str(config), "--port", str(port), "--offline"]
    if lag_report is not None:
        cmd[:1] = [sys.executable, str(Path(__file__).with_name("_bench_lag.py")), str(lag_report)]
    elif profile_to is not None:
        profiler = str(Path(__file__).with_name("_bench_profile.py"))
        cmd[:1] = [sys.executable, profiler, "--serve", profile_to]
    cmd += ["--no-access-log", "--log-level", "warning", "--workers", str(workers)]
    env = None if src is None else {**os.environ, "PYTHONPATH": src}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, env=env, preexec_fn=_on_server_cpus)
    wait_http("gateway", proc, port)
    return proc, f"http://127.0.0.1:{port}/v1"


LITELLM_KEY = "sk-litellm-bench"


def start_litellm(python: str, sim_base: str, workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    """LiteLLM's proxy from its own environment (``python``: benchmarks/litellm-env.sh's
    interpreter), routing model ``coder`` to the fake provider; its logs go to workdir."""
    config = workdir / "litellm.yaml"
    config.write_text(
        textwrap.dedent(
            f"""
            model_list:
              - model_name: coder
                litellm_params:
                  model: openai/sim-model
                  api_base: {sim_base}
                  api_key: {SIM_KEY}
            general_settings:
              master_key: {LITELLM_KEY}
            litellm_settings:
              telemetry: false
            """
        )
    )
    port = free_port()
    exe = Path(python).with_name("litellm")
    if not exe.is_file():
        raise SystemExit(
            f"no LiteLLM proxy at {exe}: build its environment with benchmarks/litellm-env.sh "
            "and pass the python it prints to --litellm"
        )
    log = workdir / "litellm.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(exe), "--config", str(config), "--host", "127.0.0.1", "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "LITELLM_TELEMETRY": "False", "LITELLM_LOG": "ERROR"},
            preexec_fn=_on_server_cpus,
        )
    try:
        wait_http("LiteLLM proxy", proc, port, timeout=120.0)
    except SystemExit as exc:  # its log lives in a directory removed on exit: show its end
        tail = log.read_text(errors="replace").splitlines()[-5:]
        raise SystemExit("\n".join([str(exc), "its last output:", *tail])) from None
    return proc, f"http://127.0.0.1:{port}/v1"


def _start_script(name: str, script: str, *args: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    path = Path(__file__).with_name(script)
    proc = subprocess.Popen(
        [sys.executable, str(path), *args, str(port)], preexec_fn=_on_server_cpus
    )
    wait_http(name, proc, port)
    return proc, f"http://127.0.0.1:{port}/v1"


def start_bare_proxy(sim_base: str) -> tuple[subprocess.Popen[bytes], str]:
    """The bare ASGI proxy of benchmarks/_bench_http.py in front of the fake provider."""
    return _start_script("bare proxy", "_bench_http.py", sim_base, "sim-model", SIM_KEY)


def start_raw_floor(sim_base: str) -> tuple[subprocess.Popen[bytes], str]:
    """The raw-socket proxy of benchmarks/_bench_floor.py in front of the fake provider."""
    return _start_script("raw-socket floor", "_bench_floor.py", sim_base)


def start_lean(
    sim_base: str, workdir: Path, record: bool = True
) -> tuple[subprocess.Popen[bytes], str]:
    """The gateway's chat door behind benchmarks/_bench_lean.py's minimal server."""
    return _start_script(
        "lean server", "_bench_lean.py", str(gateway_config(sim_base, workdir, record))
    )


def stop(proc: Process) -> None:
    if proc.stdin is not None:
        proc.stdin.close()
    else:
        proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
