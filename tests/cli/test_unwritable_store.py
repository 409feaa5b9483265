"""A store in a directory this user cannot write: reading it says why it fails, and the fix."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from factories import attempt_event
from rolecall.recording.store import open_store

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
NOBODY = 65534


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory every user can reach (root's test runs read it as ``nobody``)."""
    path = Path(tempfile.mkdtemp(prefix="rolecall-store-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        (path / "store").chmod(0o755)
        shutil.rmtree(path)


def test_a_store_whose_directory_this_user_cannot_write_names_the_directory_and_fix(
    shared_dir: Path,
) -> None:
    store_dir = shared_dir / "store"
    db = store_dir / "rolecall.db"
    with open_store(f"sqlite:///{db}") as store:  # a WAL store, as the recorder leaves it
        store.record([attempt_event(ts=time.time())])
    store_dir.chmod(0o555)
    config = shared_dir / "rolecall.yaml"
    config.write_text(f"schema_version: 1\nmetrics:\n  url: sqlite:///{db}\n")
    config.chmod(0o644)
    command = [sys.executable, "-m", "rolecall", "runs", "list", "-c", str(config)]
    if os.geteuid() == 0:  # root writes anywhere: read as nobody instead
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root, and no setpriv to read as another user")
        command = [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *command]

    done = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=shared_dir)

    assert done.returncode == 1
    [line] = done.stderr.splitlines()
    assert line.startswith(f"error: cannot open the metrics store {db}: ")  # SQLite's words...
    assert line.endswith(  # ...then which directory, and what to do
        f": this user cannot write to {store_dir}, where SQLite keeps the store's lock and "
        "journal files (even to read it); make that directory writable, or copy the "
        "store to one that is and point metrics.url at the copy"
    )
