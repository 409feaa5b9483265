"""AWS settings for the credential tests: an environment that holds nothing but the files
of one folder, and a profile whose ``credential_process`` notes each of its runs."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

AWS_VARIABLES = (
    "AWS_PROFILE",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_BEARER_TOKEN_BEDROCK",
    "AWS_REGION",
)


def isolated_aws(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """No AWS credentials but the ``config`` and ``credentials`` files under ``folder``."""
    for name in AWS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(folder / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(folder / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def counting_process(folder: Path, body: str, profile: str = "temp") -> Path:
    """Write ``folder/config`` with a profile whose ``credential_process`` runs ``body``
    (Python) after adding a line to ``folder/runs``, which is returned."""
    runs, script = folder / "runs", folder / "creds.py"
    note = f"with open({str(runs)!r}, 'a') as out:\n    out.write('run\\n')\n"
    script.write_text(note + textwrap.dedent(body))
    (folder / "config").write_text(
        f"[profile {profile}]\ncredential_process = {sys.executable} {script}\n"
    )
    return runs
