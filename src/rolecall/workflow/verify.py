"""Running a run's checks (the verify stage) on the code it wrote.

Generated code is untrusted, and so is whatever its tests do. Each command
runs in the output directory, through ``/bin/sh -c``, with:

- a time limit: at the limit its whole process group is killed, so a hanging
  test or a server it started does not outlive the check. Whatever it left
  running when it ends is killed too. Where the OS allows it the check has its
  own PID namespace (``unshare -pf --kill-child``), so a process that left the
  group (``setsid``, a daemon's double fork) dies with it as well, and
  ``setpriv --pdeathsig KILL`` ends it all if rolecall itself is killed;
- an environment built from nothing (never the parent's, which holds provider
  keys and ``ROLECALL_*`` settings): ``PATH`` with this interpreter's directory
  first (so ``python`` is the venv's), ``HOME`` and ``TMPDIR`` in a private
  temporary directory, ``LANG``, and a bytecode cache outside the output;
- no network where the OS allows it: a new network namespace (``unshare -n``,
  or ``unshare -rn`` for a normal user), in which nothing is reachable, not
  even loopback. Where it does not work the checks run with the network and
  :func:`network_isolation` says why.

stdout and stderr are captured together, the last :data:`MAX_OUTPUT` bytes kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "MAX_OUTPUT",
    "CommandResult",
    "Isolation",
    "files_named",
    "network_isolation",
    "run_checks",
    "run_command",
]

MAX_OUTPUT = 8192
# After the command ends, how long a descendant may keep its output open before the
# group is killed (a background server started by a test, say).
_DRAIN_GRACE = 2.0

CheckStatus = Literal["passed", "failed", "timeout", "error"]


@dataclass(frozen=True, slots=True)
class CommandResult:
    """One command's outcome; ``output`` is the tail of stdout and stderr together."""

    command: str
    status: CheckStatus
    exit_code: int | None
    seconds: float
    output: str
    truncated: bool = False

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CommandResult:
        return cls(
            command=str(data.get("command", "")),
            status=data.get("status", "error"),
            exit_code=data.get("exit_code"),
            seconds=float(data.get("seconds", 0.0)),
            output=str(data.get("output", "")),
            truncated=bool(data.get("truncated", False)),
        )

    def summary(self) -> str:
        """``passed``, ``failed (exit 1)``, ``stopped at the 120 s limit``, ..."""
        if self.status == "passed":
            return "passed"
        if self.status == "timeout":
            return f"stopped at the time limit ({self.seconds:.0f} s)"
        if self.status == "error":
            return "could not start"
        return f"failed (exit {self.exit_code})"


@dataclass(frozen=True, slots=True)
class Isolation:
    """The command prefix that cuts the network off, or why there is none."""

    prefix: tuple[str, ...]
    note: str | None = None

    @property
    def isolated(self) -> bool:
        return bool(self.prefix)

    def describe(self) -> str:
        if self.isolated:
            return f"no network ({' '.join(self.prefix)})"
        return f"network NOT isolated: {self.note}"


_isolation: Isolation | None = None


def network_isolation() -> Isolation:
    """How checks are cut off from the network here; probed once per process (blocks)."""
    global _isolation
    if _isolation is None:
        _isolation = _probe_isolation()
    return _isolation


# Its own PID namespace: when the check's shell ends, everything it started ends.
_PID_NAMESPACE = ("-p", "-f", "--kill-child")
# Killed when rolecall is (the time limit dies with rolecall).
_PARENT_DEATH = ("setpriv", "--pdeathsig", "KILL")


def _candidates() -> Iterator[tuple[str, ...]]:
    """The prefixes to try, the most contained first."""
    for unshare in (("unshare", "-n"), ("unshare", "-rn")):
        yield (*_PARENT_DEATH, *unshare, *_PID_NAMESPACE)
        yield (*unshare, *_PID_NAMESPACE)
        yield unshare


def _probe_isolation() -> Isolation:
    if not sys.platform.startswith("linux"):
        return Isolation((), f"network namespaces are Linux-only (this is {sys.platform})")
    reasons: list[str] = []
    for prefix in _candidates():
        try:
            done = subprocess.run(
                [*prefix, "true"],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=10,
                env={"PATH": os.environ.get("PATH", os.defpath)},
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            reasons.append(f"{' '.join(prefix)}: {exc}")
            continue
        if done.returncode == 0:
            return Isolation(prefix)
        error = done.stderr.decode(errors="replace").strip().splitlines()
        reasons.append(f"{' '.join(prefix)}: {error[-1] if error else done.returncode}")
    return Isolation((), "; ".join(reasons))


def clean_env(home: Path) -> dict[str, str]:
    """The whole environment a check sees: nothing inherited but PATH and LANG."""
    bin_dir = str(Path(sys.executable).parent)
    inherited = os.environ.get("PATH", os.defpath).split(os.pathsep)
    env = {
        "PATH": os.pathsep.join(dict.fromkeys([bin_dir, *filter(None, inherited)])),
        "HOME": str(home),
        "TMPDIR": str(home / "tmp"),
        "LANG": os.environ.get("LANG") or "C.UTF-8",
        "PYTHONPYCACHEPREFIX": str(home / "pycache"),
    }
    if sys.prefix != sys.base_prefix:
        env["VIRTUAL_ENV"] = sys.prefix
    return env


class _Tail:
    """The last ``limit`` bytes written, and whether anything was dropped."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.data = bytearray()
        self.dropped = False

    def add(self, chunk: bytes) -> None:
        self.data += chunk
        if len(self.data) > self.limit:
            del self.data[: len(self.data) - self.limit]
            self.dropped = True

    def text(self) -> str:
        return bytes(self.data).decode("utf-8", errors="replace")


async def _read(stream: asyncio.StreamReader, tail: _Tail) -> None:
    while chunk := await stream.read(65536):
        tail.add(chunk)


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


async def run_command(
    command: str,
    cwd: Path,
    *,
    limit: float,
    env: Mapping[str, str],
    isolation: Isolation,
) -> CommandResult:
    """Run one check; never raises for the command's own failures."""
    started = time.monotonic()
    try:
        proc = await asyncio.create_subprocess_exec(
            *isolation.prefix,
            "/bin/sh",
            "-c",
            command,
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: killed as one at the limit
        )
    except OSError as exc:
        return CommandResult(command, "error", None, 0.0, f"cannot start: {exc}")
    assert proc.stdout is not None
    tail = _Tail(MAX_OUTPUT)
    reader = asyncio.ensure_future(_read(proc.stdout, tail))
    timed_out = False
    try:
        await asyncio.wait_for(proc.wait(), limit)
    except TimeoutError:
        timed_out = True
        _kill_group(proc.pid)
        await proc.wait()
    except BaseException:  # cancelled (Ctrl-C): leave nothing running
        _kill_group(proc.pid)
        reader.cancel()
        raise
    with contextlib.suppress(TimeoutError):  # a descendant may still hold the output open
        await asyncio.wait_for(asyncio.shield(reader), _DRAIN_GRACE)
    # Nothing a check started outlives it, whether or not it still holds the output.
    _kill_group(proc.pid)
    try:
        await asyncio.wait_for(reader, _DRAIN_GRACE)
    except TimeoutError:
        reader.cancel()
    seconds = time.monotonic() - started
    output = tail.text()
    if timed_out:
        note = f"\n[rolecall: stopped after {limit:g} s, the time limit (workflow.verify_timeout)]"
        return CommandResult(command, "timeout", None, seconds, output + note, tail.dropped)
    code = proc.returncode
    status: CheckStatus = "passed" if code == 0 else "failed"
    return CommandResult(command, status, code, seconds, output, tail.dropped)


async def run_checks(
    commands: Sequence[str], cwd: Path, *, limit: float
) -> tuple[list[CommandResult], Isolation]:
    """Run ``commands`` one after another (all of them, so every failure is seen)."""
    isolation = await asyncio.to_thread(network_isolation)
    results: list[CommandResult] = []
    with tempfile.TemporaryDirectory(prefix="rolecall-verify-") as home:
        (Path(home) / "tmp").mkdir()
        env = clean_env(Path(home))
        for command in commands:
            results.append(
                await run_command(command, cwd, limit=limit, env=env, isolation=isolation)
            )
    return results, isolation


def files_named(output: str, paths: Iterable[str]) -> list[str]:
    """The ``paths`` (relative, ``/``-separated) that ``output`` mentions, in order given.

    A path counts when it stands alone or ends a longer path (tracebacks show
    absolute paths), so ``core.py`` is not found inside ``mycore.py``.
    """
    found: list[str] = []
    for path in paths:
        pattern = r"(?:^|(?<=[\s\"'(/:=,\[]))" + re.escape(path) + r"(?!\w|-|\.\w)"
        if re.search(pattern, output, re.MULTILINE):
            found.append(path)
    return found
