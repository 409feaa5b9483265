"""The public API: what users import. A change here must be deliberate."""

from __future__ import annotations

import ast
import asyncio
import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

import rolecall

EXPORTED = {
    "AllProvidersFailed",
    "Attempt",
    "ChatRequest",
    "Chunk",
    "Completion",
    "ConfigError",
    "ConfigIssue",
    "CredentialsError",
    "ErrorKind",
    "Message",
    "MissingExtra",
    "NoProviderForRole",
    "Provider",
    "ProviderError",
    "Reply",
    "ReplyStream",
    "RolecallError",
    "Router",
    "RouterClosed",
    "StreamInterrupted",
    "UnknownParameter",
    "Usage",
    "__version__",
    "load_config",
}

# Import paths the README, docs/ and examples/ show users.
DOCUMENTED_PATHS = [
    ("rolecall", "Router"),
    ("rolecall.router", "Router"),
    ("rolecall.router", "ReplyStream"),
    ("rolecall.router", "complete_sync"),
    ("rolecall.routing.router", "Router"),
    ("rolecall.config", "load_config"),
    ("rolecall.errors", "ErrorKind"),
    ("rolecall.types", "Reply"),
    ("rolecall.providers.base", "Provider"),
    ("rolecall.workflow", "Pipeline"),
    ("rolecall.workflow", "Task"),
    ("rolecall.workflow", "TaskContext"),
    ("rolecall.events", "new_run_id"),
    ("rolecall.recorder", "Recorder"),
    ("rolecall.recording.recorder", "Recorder"),
    ("rolecall.health", "ProviderHealth"),
]


def test_all_lists_exactly_the_public_names() -> None:
    assert set(rolecall.__all__) == EXPORTED


@pytest.mark.parametrize("name", sorted(EXPORTED))
def test_every_exported_name_resolves(name: str) -> None:
    assert getattr(rolecall, name) is not None


@pytest.mark.parametrize(("module", "name"), DOCUMENTED_PATHS)
def test_documented_import_paths_work(module: str, name: str) -> None:
    assert hasattr(importlib.import_module(module), name)


def test_version_is_the_installed_distributions() -> None:
    from importlib.metadata import version

    assert rolecall.__version__ == version("rolecall")


def test_import_rolecall_stays_light() -> None:
    code = (
        "import sys, rolecall\n"
        "heavy = [m for m in ('aiohttp', 'pydantic', 'yaml', 'click', 'rich',"
        " 'rolecall.routing.router') if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_readme_python_example_runs_as_printed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The README's Python block, run as a notebook cell would (top-level await) on a sim."""
    from rolecall.sim import SimServer

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    (source,) = re.findall(r"^```python\n(.*?)^```", readme, re.DOTALL | re.MULTILINE)
    code = compile(source, "README.md", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    with SimServer("openai", api_key="readme-key-0001", reply="sim answer") as sim:
        (tmp_path / "rolecall.yaml").write_text(
            "providers:\n"
            f"  gpt: {{type: openai, model: sim-model, api_key: readme-key-0001,"
            f" base_url: '{sim.base_url}'}}\n"
            "default_provider: gpt\n"
        )
        monkeypatch.chdir(tmp_path)
        asyncio.run(eval(code, {}))  # a coroutine: the block awaits at top level
    assert capsys.readouterr().out.count("sim answer") == 2  # the answer, then the stream
