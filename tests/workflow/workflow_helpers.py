"""Fake vendor servers playing the four roles, and configs that point at them."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from rolecall.sim import SimServer

_ROLE_MARK = re.compile(r"You are the (clarifier|planner|coder|reviewer)")
_PATH = re.compile(r"File to (write|fix|review): `([^`]+)`")


class Team:
    """A responder that answers each role's prompt like a model would.

    Counts calls per role and per (role, path); ``findings`` maps a path to the
    findings of each review round (missing rounds: no findings).
    """

    def __init__(
        self,
        files: list[dict[str, Any]],
        *,
        questions: list[dict[str, str]] | None = None,
        findings: Mapping[str, list[list[dict[str, Any]]]] | None = None,
        plans: list[str] | None = None,
    ) -> None:
        self.files = files
        self.questions = questions or []
        self.findings = dict(findings or {})
        self.plans = list(plans or [])  # raw planner answers to give first, in order
        self.calls: Counter[str] = Counter()
        self.by_path: Counter[tuple[str, str]] = Counter()
        self.prompts: list[tuple[str, str]] = []

    def __call__(self, body: dict[str, Any]) -> str:
        text = json.dumps(body)
        match = _ROLE_MARK.search(text)
        role = match.group(1) if match else "unknown"
        self.calls[role] += 1
        self.prompts.append((role, text))
        if role == "clarifier":
            return json.dumps({"questions": self.questions})
        if role == "planner":
            if self.plans:
                return self.plans.pop(0)
            return json.dumps({"files": self.files})
        found = _PATH.search(text)
        path = found.group(2) if found else "?"
        self.by_path[(role, path)] += 1
        if role == "coder":
            return f"```python\n# {path}\nVALUE = {self.by_path[(role, path)]}\n```"
        rounds = self.findings.get(path, [])
        index = self.by_path[(role, path)] - 1
        return json.dumps({"findings": rounds[index] if index < len(rounds) else []})


def plan_files(*paths: str, deps: Mapping[str, list[str]] | None = None) -> list[dict[str, Any]]:
    deps = deps or {}
    return [{"path": p, "purpose": f"the {p} module", "depends_on": deps.get(p, [])} for p in paths]


# One provider per role: Gemini clarifies, Claude plans and reviews, GPT writes the code.
ROLES = {
    "clarifier": {"provider": "gem"},
    "planner": {"provider": "claude"},
    "reviewer": {"provider": "claude"},
    "coder": {"provider": "gpt"},
}


def write_config(
    directory: Path,
    servers: Mapping[str, SimServer],
    roles: Mapping[str, Any],
    *,
    max_concurrency: int = 8,
    name: str = "rolecall.yaml",
    **extra: Any,
) -> Path:
    """A config with one provider per sim server (id -> server) and ``roles``."""
    providers = {
        pid: {
            "type": server.protocol,
            "model": "sim-model",
            "api_key": "test-key",
            "base_url": server.base_url,
            "max_concurrency": max_concurrency,
            "timeout": "10s",
        }
        for pid, server in servers.items()
    }
    config = {
        "schema_version": 1,
        "providers": providers,
        "roles": dict(roles),
        "retry": {
            "max_attempts": 2,
            "initial_backoff": "10ms",
            "max_backoff": "50ms",
            "jitter": False,
        },
        "failover_within": "2s",
        "metrics": {
            "url": f"sqlite:///{directory / 'metrics.db'}",
            "runs_dir": str(directory / "runs"),
            "flush_interval": "50ms",
        },
        **extra,
    }
    path = directory / name
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


SPEC = "# tiny tool\n\nA tiny Python command-line tool that greets the user.\n"


@contextmanager
def started_servers(
    protocols: Mapping[str, str], responder: Team | None = None
) -> Iterator[dict[str, SimServer]]:
    """A running sim per id (``{"claude": "anthropic", ...}``), answering as ``responder``
    when given; stopped on the way out."""
    servers = {pid: SimServer(protocol) for pid, protocol in protocols.items()}  # type: ignore[arg-type]
    for server in servers.values():
        if responder is not None:
            server.responder = responder
        server.start()
    try:
        yield servers
    finally:
        for server in servers.values():
            server.stop()
