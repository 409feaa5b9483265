"""Files the workflow writes: modes kept or private, and a failed write is one clear line."""

from __future__ import annotations

import os
import resource
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from workflow_helpers import ROLES, Team, plan_files, write_config

from rolecall.sim import SimServer
from rolecall.workflow import Workflow

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX modes and file size limits")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


async def test_rewritten_files_keep_their_mode_and_the_run_state_is_private(
    tmp_path: Path, sims: dict[str, SimServer], spec_file: Path, umask_022: None
) -> None:
    team = Team(plan_files("secret.py", "tool.sh"))
    for server in sims.values():
        server.responder = team
    config = write_config(tmp_path, sims, ROLES)
    out = tmp_path / "out"
    out.mkdir()
    (out / "secret.py").write_text("old\n")
    (out / "tool.sh").write_text("old\n")
    (out / "secret.py").chmod(0o600)
    (out / "tool.sh").chmod(0o755)

    result = await Workflow(config_path=config, output_dir=out, force=True).run(spec_file)

    assert result.status == "ok", [(r.name, r.status, r.error) for r in result.records]
    assert (out / "secret.py").read_text() != "old\n"  # rewritten...
    assert mode(out / "secret.py") == 0o600  # ...and still private
    assert mode(out / "tool.sh") == 0o755  # ...and still executable
    # The run's own files hold the spec and every answer: this user's only.
    assert mode(result.run_dir) == 0o700
    for name in ("state.json", "plan.json", "clarified-spec.md", "review.md"):
        assert mode(result.run_dir / name) == 0o600, name


def run_limited(max_bytes: int, *args: str | Path) -> subprocess.CompletedProcess[str]:
    """``rolecall run ARGS`` in a process that cannot write a file past ``max_bytes``."""

    def limit_file_size() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, max_bytes))

    return subprocess.run(
        [sys.executable, "-m", "rolecall", "run", *map(str, args), "--yes", "--offline"],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=limit_file_size,
        env={**os.environ, "NO_COLOR": "1"},
    )


class BigFile(Team):
    """A team whose coder answers ``big.py`` with more than the file size limit."""

    def __call__(self, body: dict[str, Any]) -> str:
        answer = super().__call__(body)
        if "File to write: `big.py`" in str(body):
            return "```python\n" + "# filler\n" * 40_000 + "```"
        return answer


def test_a_file_that_cannot_be_written_is_one_line_naming_it_and_the_old_one_is_kept(
    tmp_path: Path, sims: dict[str, SimServer], spec_file: Path
) -> None:
    team = BigFile(plan_files("big.py", "small.py"))
    for server in sims.values():
        server.responder = team
    config = write_config(tmp_path, sims, ROLES)
    out = tmp_path / "out"
    out.mkdir()
    (out / "big.py").write_text("# the user's own version\n")

    # As a full disk would, the write fails part way.
    done = run_limited(300_000, spec_file, "-c", str(config), "-o", str(out), "--force")

    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    lines = [line.strip() for line in done.stderr.splitlines() if "big.py" in line]
    assert f"cannot write {out / 'big.py'}: File too large; raise the file size limit" in (
        "\n".join(lines)
    )
    assert (out / "big.py").read_text() == "# the user's own version\n"  # not half a file
    assert (out / "small.py").read_text().startswith("# small.py")
    assert sorted(p.name for p in out.iterdir()) == ["REVIEW.md", "big.py", "small.py"]
    assert "resume with: rolecall run --resume" in done.stdout + done.stderr


def test_a_review_report_that_cannot_be_written_is_a_warning_not_a_traceback(
    tmp_path: Path, sims: dict[str, SimServer], spec_file: Path
) -> None:
    for server in sims.values():
        server.responder = Team(plan_files("a.py"))
    config = write_config(tmp_path, sims, ROLES)
    text = config.read_text().replace("metrics:\n", "metrics:\n  enabled: false\n")
    config.write_text(text)
    out = tmp_path / "out"

    # Room for the small generated file, not for the report.
    done = run_limited(200, spec_file, "-c", str(config), "-o", str(out))

    assert "Traceback" not in done.stderr
    assert done.returncode == 0, done.stderr
    assert f"warning: cannot write {out / 'REVIEW.md'}: File too large" in done.stderr
    assert (out / "a.py").read_text().startswith("# a.py")
    assert sorted(p.name for p in out.iterdir()) == ["a.py"]  # no half-written report
