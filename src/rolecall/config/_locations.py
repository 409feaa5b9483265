"""Where a value sits in the config file: paths, their dotted form, and file lines."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping

from rolecall.errors import ConfigIssue

PathPart = str | int
ConfigPath = tuple[PathPart, ...]

# Keys that read naturally after a dot; anything else is quoted in brackets.
_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


def format_location(path: Iterable[PathPart]) -> str:
    """``('roles', 'coder', 'fallback', 1)`` -> ``roles.coder.fallback[1]``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _PLAIN_KEY.match(part):
            text += f".{part}" if text else part
        else:
            text += f"[{json.dumps(part, ensure_ascii=False)}]"
    return text


class LineMap:
    """1-based file line of every key and list item; a missing path takes its parent's line."""

    __slots__ = ("_lines",)

    def __init__(self, lines: Mapping[ConfigPath, int] | None = None) -> None:
        self._lines: dict[ConfigPath, int] = dict(lines or {})

    def record(self, path: ConfigPath, line: int) -> None:
        self._lines[path] = line

    def forget(self, prefix: ConfigPath) -> None:
        """Drop ``prefix`` and everything under it (a duplicate key's first value)."""
        size = len(prefix)
        for path in [p for p in self._lines if p[:size] == prefix]:
            del self._lines[path]

    def line(self, path: ConfigPath) -> int | None:
        for end in range(len(path), 0, -1):
            line = self._lines.get(path[:end])
            if line is not None:
                return line
        return None

    def __len__(self) -> int:
        return len(self._lines)


def make_issue(
    path: ConfigPath, problem: str, fix: str | None = None, lines: LineMap | None = None
) -> ConfigIssue:
    return ConfigIssue(
        location=format_location(path),
        problem=problem,
        fix=fix,
        line=lines.line(path) if lines is not None else None,
    )


def sort_issues(issues: Iterable[ConfigIssue]) -> list[ConfigIssue]:
    """File order; issues without a line (whole-file ones) first. Stable otherwise."""
    return sorted(issues, key=lambda issue: issue.line or 0)


def drop_covered(
    warnings: Iterable[ConfigIssue], errors: Iterable[ConfigIssue]
) -> list[ConfigIssue]:
    """Warnings about a place that already has an error say nothing new."""
    failed = {issue.location for issue in errors}
    return [warning for warning in warnings if warning.location not in failed]
