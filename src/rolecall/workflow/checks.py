"""Which checks the verify stage runs: from the spec, the config, or the plan.

A spec names its own checks in a section headed ``Verify`` (or ``Checks``),
one command per line of a code block or per bullet, which is also what a
``verify:`` list in a YAML spec renders to::

    ## Verify

    - `python -m pytest -q`
    - `ruff check .`

Failing that, ``workflow.verify`` in the config; failing that (not set at all),
checks detected from the planned files: byte-compile every ``.py`` file, and
run pytest on the planned test files when pytest is importable here.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal

__all__ = ["CheckPlan", "choose_checks", "detected_checks", "is_test_file", "spec_checks"]

Source = Literal["spec", "config", "detected"]

_SECTION = re.compile(r"^#{2,6}\s*(verify|verification|checks)\s*#*\s*$", re.IGNORECASE)
_HEADING = re.compile(r"^#{1,6}\s")
_BULLET = re.compile(r"^\s*[-*+]\s+(.+?)\s*$")


@dataclass(frozen=True, slots=True)
class CheckPlan:
    commands: tuple[str, ...]
    source: Source


def spec_checks(spec_text: str) -> list[str] | None:
    """The commands in the spec's Verify section, or None when it has none."""
    lines = spec_text.splitlines()
    start = next((i for i, line in enumerate(lines) if _SECTION.match(line.strip())), None)
    if start is None:
        return None
    commands: list[str] = []
    fenced = False
    for line in lines[start + 1 :]:
        stripped = line.strip()
        if stripped.startswith("```"):
            fenced = not fenced
            continue
        if fenced:
            if stripped and not stripped.startswith("#"):
                commands.append(stripped.removeprefix("$ "))
            continue
        if _HEADING.match(stripped):
            break
        bullet = _BULLET.match(line)
        if bullet:
            commands.append(bullet.group(1).strip().strip("`").strip())
    return [c for c in commands if c]


def is_test_file(path: str) -> bool:
    name = PurePosixPath(path).name
    parts = PurePosixPath(path).parts[:-1]
    return name.endswith(".py") and (
        name.startswith("test_") or name.endswith("_test.py") or "tests" in parts
    )


def _python() -> str:
    """``python`` when this interpreter's directory has one (it is first on the checks'
    PATH), else this interpreter's full path."""
    here = Path(sys.executable)
    return "python" if (here.parent / "python").exists() else str(here)


def detected_checks(paths: Sequence[str]) -> list[str]:
    """Byte-compile the ``.py`` files; pytest on the test files when pytest is here."""
    python_files = [p for p in paths if p.endswith(".py")]
    if not python_files:
        return []
    python = _python()
    commands = [shlex.join([python, "-m", "py_compile", *map(_operand, python_files)])]
    tests = [p for p in python_files if is_test_file(p) and PurePosixPath(p).name != "__init__.py"]
    if tests and importlib.util.find_spec("pytest") is not None:
        operands = map(_operand, tests)
        commands.append(
            shlex.join([python, "-m", "pytest", "-q", "-p", "no:cacheprovider", *operands])
        )
    return commands


def _operand(path: str) -> str:
    """``path`` as a file operand: ``-q.py`` would be read as an option."""
    return f"./{path}" if path.startswith("-") else path


def choose_checks(
    spec_text: str, configured: Sequence[str] | None, present: Sequence[str]
) -> CheckPlan:
    """The spec's checks, else the config's, else those detected from ``present`` files."""
    from_spec = spec_checks(spec_text)
    if from_spec is not None:
        return CheckPlan(tuple(from_spec), "spec")
    if configured is not None:
        return CheckPlan(tuple(configured), "config")
    return CheckPlan(tuple(detected_checks(present)), "detected")
