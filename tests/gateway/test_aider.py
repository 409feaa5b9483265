"""aider-chat, a real coding agent, edits a file through the gateway (chat completions).

aider pins its own dependencies, so it lives in a virtual environment of its own
(``.ci/setup-aider`` prints ``ROLECALL_AIDER``); without one, or an ``aider`` on
PATH, the test skips. aider runs as the README's recipe says, with HOME in a temp
directory and every outbound connection refused: it reaches nothing but the gateway.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from gateway_helpers import GATEWAY_KEY, PRIMARY_KEY, RunningGateway

from rolecall.sim import SimServer

AIDER = os.environ.get("ROLECALL_AIDER") or shutil.which("aider")
pytestmark = pytest.mark.skipif(
    not AIDER, reason="aider-chat not installed: run `eval $(.ci/setup-aider)`"
)

ORIGINAL = 'def greet():\n    return "hello"\n'
EDITED = 'def greet():\n    return "hello, world"\n'
# Model facts for "openai/coder" so aider looks nothing up over the network.
METADATA = (
    '{"openai/coder": {"max_input_tokens": 128000, "max_output_tokens": 4096,'
    ' "input_cost_per_token": 0, "output_cost_per_token": 0,'
    ' "litellm_provider": "openai", "mode": "chat"}}'
)


def _whole_file(body: dict[str, Any]) -> str:
    """aider's "whole" edit format (its default for a model it does not know): the file again."""
    return f"Here is the change.\n\ngreet.py\n```python\n{EDITED}```\n"


def _search_replace(body: dict[str, Any]) -> str:
    """aider's "diff" edit format: a SEARCH/REPLACE block."""
    return (
        "Here is the change.\n\ngreet.py\n```python\n<<<<<<< SEARCH\n"
        '    return "hello"\n=======\n    return "hello, world"\n>>>>>>> REPLACE\n```\n'
    )


@pytest.fixture
def coder_gateway(
    tmp_path: Path, start_gateway: Callable[..., RunningGateway]
) -> Iterator[tuple[RunningGateway, SimServer]]:
    sim = SimServer("openai", api_key=PRIMARY_KEY, models=("model-a",)).start()
    (tmp_path / ".env").write_text(f"PRIMARY_KEY={PRIMARY_KEY}\nGATEWAY_KEY={GATEWAY_KEY}\n")
    config = tmp_path / "rolecall.yaml"
    config.write_text(
        textwrap.dedent(
            f"""\
            providers:
              a:
                type: openai-compatible
                model: model-a
                base_url: {sim.base_url}
                api_key: ${{PRIMARY_KEY}}
            roles:
              coder: {{provider: a}}
            metrics:
              url: sqlite:///{tmp_path}/rolecall.db
              runs_dir: {tmp_path}/runs
            gateway:
              keys: ["${{GATEWAY_KEY}}"]
            """
        )
    )
    try:
        yield start_gateway(config), sim
    finally:
        sim.stop()


def _run_aider(gateway: RunningGateway, home: Path, repo: Path, *options: str) -> str:
    home.mkdir()
    repo.mkdir()
    (repo / "greet.py").write_text(ORIGINAL)
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    (home / "coder.metadata.json").write_text(METADATA)
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home),
        "TERM": "dumb",
        # Anything but the gateway goes to a closed port: nothing leaves the machine.
        "HTTP_PROXY": "http://127.0.0.1:9",
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "NO_PROXY": "127.0.0.1,localhost",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    }
    command = [
        str(AIDER),
        "--model",
        "openai/coder",
        "--openai-api-base",
        gateway.url,
        "--openai-api-key",
        GATEWAY_KEY,
        "--model-metadata-file",
        str(home / "coder.metadata.json"),
        "--yes-always",
        "--no-auto-commits",
        "--no-gitignore",
        "--no-check-update",
        "--analytics-disable",
        "--no-show-model-warnings",
        "--no-show-release-notes",
        "--no-pretty",
        "--map-tokens",
        "0",
        *options,
        "--message",
        'Make greet() return "hello, world".',
        "greet.py",
    ]
    done = subprocess.run(
        command, cwd=repo, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    return output


@pytest.mark.parametrize(
    ("responder", "options"),
    [(_whole_file, ()), (_search_replace, ("--edit-format", "diff"))],
    ids=["whole", "search-replace"],
)
def test_aider_edits_a_file_through_the_gateway(
    coder_gateway: tuple[RunningGateway, SimServer],
    tmp_path: Path,
    responder: Callable[[dict[str, Any]], str],
    options: tuple[str, ...],
) -> None:
    gateway, sim = coder_gateway
    sim.responder = responder
    started = time.monotonic()
    output = _run_aider(gateway, tmp_path / "home", tmp_path / "repo", *options)
    took = time.monotonic() - started
    assert (tmp_path / "repo" / "greet.py").read_text() == EDITED, output
    assert sim.calls >= 1
    sent = sim.requests[-1].json
    assert sent["model"] == "model-a"
    assert any(ORIGINAL.strip() in str(m.get("content")) for m in sent["messages"])
    assert took < 60
