"""The plan: which files to write, what each is for, and what each depends on.

The planner's JSON is checked against a fixed shape (:data:`PLAN_SCHEMA`) and
then across entries: unique paths, dependencies that exist, no cycles.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rolecall.workflow.files import UnsafePath, normalize_relative
from rolecall.workflow.structured import InvalidAnswer

__all__ = ["MAX_PLAN_FILES", "PLAN_SCHEMA", "Plan", "PlannedFile", "parse_plan"]

MAX_PLAN_FILES = 200

PLAN_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "files": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "properties": {
                    # minLength: under constrained decoding a small model otherwise
                    # closes every string at once (SmolLM2-135M planned four "" paths).
                    "path": {
                        "type": "string",
                        "minLength": 1,
                        "description": "relative path, / separators",
                    },
                    "purpose": {"type": "string", "minLength": 1},
                    "depends_on": {"type": "array", "items": {"type": "string"}},
                },
                "required": ["path", "purpose", "depends_on"],
            },
        }
    },
    "required": ["files"],
}


@dataclass(frozen=True, slots=True)
class PlannedFile:
    path: str
    purpose: str
    depends_on: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "purpose": self.purpose, "depends_on": list(self.depends_on)}


@dataclass(frozen=True, slots=True)
class Plan:
    files: tuple[PlannedFile, ...]
    fixes: tuple[str, ...] = ()  # what parse_plan repaired in the planner's answer

    def to_dict(self) -> dict[str, Any]:
        return {"files": [f.to_dict() for f in self.files]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Plan:
        return parse_plan(data)

    def get(self, path: str) -> PlannedFile | None:
        return next((f for f in self.files if f.path == path), None)


def _key(path: str) -> str:
    """The path as compared across entries; unsafe paths stay as written (refused later)."""
    try:
        return normalize_relative(path)
    except UnsafePath:
        return path.strip()


def parse_plan(data: Any) -> Plan:
    """A checked :class:`Plan`, or :class:`InvalidAnswer` listing every shape problem.

    Cross-entry mistakes (repeated paths, self or unknown dependencies, cycles)
    are repaired, not refused; :attr:`Plan.fixes` says what changed.
    """
    if not isinstance(data, Mapping):
        raise InvalidAnswer([f"the plan must be a JSON object, got {type(data).__name__}"])
    files = data.get("files")
    if not isinstance(files, list) or not files:
        raise InvalidAnswer(["'files' must be a non-empty array"])
    if len(files) > MAX_PLAN_FILES:
        raise InvalidAnswer([f"'files' has {len(files)} entries; at most {MAX_PLAN_FILES}"])
    problems: list[str] = []
    entries: list[PlannedFile] = []
    for index, item in enumerate(files):
        where = f"files[{index}]"
        if not isinstance(item, Mapping):
            problems.append(f"{where} must be an object with path, purpose, depends_on")
            continue
        path, purpose, deps = item.get("path"), item.get("purpose", ""), item.get("depends_on", [])
        if not isinstance(path, str) or not path.strip():
            problems.append(f"{where}.path must be a non-empty string")
            continue
        if not isinstance(purpose, str):
            problems.append(f"{where}.purpose must be a string")
            purpose = ""
        if deps is None:
            deps = []
        if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
            problems.append(f"{where}.depends_on must be an array of paths")
            deps = []
        entries.append(PlannedFile(_key(path), purpose.strip(), tuple(_key(d) for d in deps)))
    if problems:
        raise InvalidAnswer(problems)
    return _repaired(entries)


def _same_file(path: str) -> str:
    """``path`` as a case- and normalisation-insensitive file system sees it (macOS,
    Windows): two paths with the same key are one file there."""
    return unicodedata.normalize("NFC", path).casefold()


def _repaired(entries: list[PlannedFile]) -> Plan:
    """The plan with the mistakes that have one obvious fix fixed, each fix listed.

    A repeated path keeps its first entry (dependencies merged), and so does one that
    differs from an earlier path only in case (on macOS and Windows the second write
    would overwrite the first); a file does not depend on itself or on files outside
    the plan; a dependency that closes a cycle is dropped, the planner's order deciding
    which. Cheaper than a repair round trip, and small models make these mistakes often.
    """
    fixes: list[str] = []
    merged: dict[str, PlannedFile] = {}  # by _same_file(path)
    for entry in entries:
        key = _same_file(entry.path)
        first = merged.get(key)
        if first is None:
            merged[key] = entry
            continue
        if first.path == entry.path:
            fixes.append(f"'{entry.path}' was listed more than once: kept the first entry")
        else:
            fixes.append(
                f"'{entry.path}' differs from '{first.path}' only in case, so on macOS and "
                "Windows it is the same file: kept the first entry"
            )
        merged[key] = PlannedFile(first.path, first.purpose, first.depends_on + entry.depends_on)
    cleaned: dict[str, PlannedFile] = {}
    for entry in merged.values():
        path = entry.path
        deps: list[str] = []
        named = (merged[k].path if (k := _same_file(d)) in merged else d for d in entry.depends_on)
        for dep in dict.fromkeys(named):  # repeated dependencies: once, in order
            if dep == path:
                fixes.append(f"'{path}' depended on itself: dropped")
            elif _same_file(dep) not in merged:
                fixes.append(f"'{path}' depended on '{dep}', which is not in the plan: dropped")
            else:
                deps.append(dep)
        cleaned[path] = PlannedFile(path, entry.purpose, tuple(deps))
    while cycle := _find_cycle(list(cleaned.values())):
        # Drop the edge that closes the cycle, found walking the files in plan order.
        source, target = cycle[-2], cycle[-1]
        entry = cleaned[source]
        cleaned[source] = PlannedFile(
            source, entry.purpose, tuple(d for d in entry.depends_on if d != target)
        )
        fixes.append(f"dependency cycle {' -> '.join(cycle)}: dropped '{source}' -> '{target}'")
    return Plan(tuple(cleaned.values()), tuple(fixes))


def _find_cycle(entries: list[PlannedFile]) -> list[str] | None:
    graph = {e.path: e.depends_on for e in entries}
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in graph.get(node, ()):
            if state.get(dep) == 1:
                return [*stack[stack.index(dep) :], dep]
            if dep not in state and (found := visit(dep)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in graph:
        if node not in state and (found := visit(node)):
            return found
    return None
