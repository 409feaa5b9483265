"""Reading a spec: Markdown, or a YAML/JSON mapping (GoCreator's spec format and similar).

A structured spec is accepted as a free-form mapping and rendered to Markdown,
so every key the author wrote reaches the models, whatever the schema. Two
things are checked: ``description`` (what to build) must be non-empty text, or
``requirements`` given instead, and ``verify`` (or ``checks``), run as shell
commands, must be a list of strings.
"""

from __future__ import annotations

import codecs
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from rolecall.workflow._structured import SyntaxProblem, load_structured
from rolecall.workflow.errors import SpecError

__all__ = ["MAX_SPEC_BYTES", "Spec", "load_spec", "render_mapping"]

MAX_SPEC_BYTES = 1_000_000
SpecFormat = Literal["markdown", "yaml", "json"]
_STRUCTURED = {".yaml": "yaml", ".yml": "yaml", ".json": "json"}
_HEADING = re.compile(r"^\s*#\s+(.+?)\s*#*\s*$", re.MULTILINE)
# Keys whose section the verify stage runs as shell commands (see checks.py).
_CHECK_KEYS = frozenset({"verify", "verification", "checks"})


@dataclass(frozen=True, slots=True)
class Spec:
    """What to build: the spec as Markdown text, plus where it came from."""

    name: str
    text: str
    format: SpecFormat = "markdown"
    path: str | None = None

    @classmethod
    def from_text(cls, text: str, *, name: str | None = None) -> Spec:
        """A Markdown spec given as a string (Python API)."""
        if not text.strip():
            raise SpecError("the spec is empty: describe what to build")
        return cls(name=name or _markdown_title(text) or "spec", text=text.strip() + "\n")

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "text": self.text, "format": self.format, "path": self.path}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Spec:
        fmt = data.get("format", "markdown")
        return cls(
            name=str(data["name"]),
            text=str(data["text"]),
            format=fmt if fmt in ("markdown", "yaml", "json") else "markdown",
            path=data.get("path"),
        )


def load_spec(path: str | Path) -> Spec:
    """Read and check a spec file; every problem is a :class:`SpecError` with one clear line."""
    file = Path(path)
    shown = str(path)
    if not file.exists():
        raise SpecError(f"spec file not found: {shown}")
    if not file.is_file():
        raise SpecError(f"spec {shown} is not a file: pass a Markdown or YAML file")
    try:
        with file.open("rb") as handle:  # no more than the limit is read, whatever the size
            data = handle.read(MAX_SPEC_BYTES + 1)
            size = max(os.fstat(handle.fileno()).st_size, len(data))
    except OSError as exc:
        raise SpecError(f"cannot read spec {shown}: {exc.strerror or exc}") from None
    if len(data) > MAX_SPEC_BYTES:
        raise SpecError(
            f"spec {shown} is {size} bytes, over the {MAX_SPEC_BYTES}-byte limit: "
            "shorten it to what the program must do"
        )
    if b"\x00" in data and _utf16(data):
        raise SpecError(f"spec {shown} is UTF-16 text: save it as UTF-8")
    if b"\x00" in data:
        raise SpecError(f"spec {shown} looks like a binary file: pass a Markdown or YAML text file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SpecError(
            f"spec {shown} is not UTF-8 text (invalid byte at offset {exc.start}): save it as UTF-8"
        ) from None
    if not text.strip():
        raise SpecError(f"spec {shown} is empty: describe what to build in Markdown or YAML")
    fmt = _STRUCTURED.get(file.suffix.lower())
    if fmt is None:
        title = _markdown_title(text) or file.stem
        return Spec(name=title, text=text.strip() + "\n", format="markdown", path=str(file))
    mapping = _parse_structured(text, fmt, shown)
    _check_fields(mapping, shown)
    name = str(mapping.get("name") or mapping.get("title") or file.stem)
    return Spec(name=name, text=render_mapping(mapping), format=fmt, path=str(file))  # type: ignore[arg-type]


def _utf16(data: bytes) -> bool:
    """Whether ``data`` is UTF-16 text with its byte-order mark (Windows tools write it)."""
    if not data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return False
    try:
        data.decode("utf-16")
    except UnicodeDecodeError:
        return False
    return True


def _parse_structured(text: str, fmt: str, shown: str) -> Mapping[str, Any]:
    try:
        loaded = load_structured(text, "json" if fmt == "json" else "yaml")
    except SyntaxProblem as exc:
        raise SpecError(
            f"spec {shown} is {exc}; fix the syntax or write the spec in Markdown"
        ) from None
    if loaded is None or loaded == {}:
        raise SpecError(f"spec {shown} is empty: describe what to build (name, description, ...)")
    if not isinstance(loaded, Mapping):
        kind = type(loaded).__name__
        raise SpecError(
            f"spec {shown} must be a mapping with keys such as name, description, requirements "
            f"(found {kind})"
        )
    return loaded


def _check_fields(mapping: Mapping[str, Any], shown: str) -> None:
    """Refuse a mapping that does not say what to build, or whose checks are not commands.

    Other keys are free-form: they reach the models as written.
    """
    description = mapping.get("description")
    described = isinstance(description, str) and description.strip()
    if not described and not mapping.get("requirements"):  # either says what to build
        keys = [str(key).replace("\n", " ") for key in mapping]
        found = ", ".join(keys[:10]) + (", ..." if len(keys) > 10 else "")
        problem = "has an empty description" if "description" in mapping else "has no description"
        if description is not None and not isinstance(description, str):
            problem = f"has a description that is {_kind(description)}, not text"
        raise SpecError(
            f"spec {shown} {problem} (keys: {found}): add description: <what to build> "
            "(or a requirements list; other keys such as name and verify are optional)"
        )
    for raw_key, value in mapping.items():
        if str(raw_key).replace("_", " ").strip().lower() not in _CHECK_KEYS or value is None:
            continue
        key = str(raw_key).replace("\n", " ")
        example = f'{key}: ["python -m pytest -q"]'
        if isinstance(value, str):
            command = value.strip()
            if command and "\n" not in command and len(command) <= 60:
                example = f"{key}: [{json.dumps(command, ensure_ascii=False)}]"
            raise SpecError(
                f"spec {shown}: {key} is a single string, not a list of commands: "
                f"write one command per item, e.g. {example}"
            )
        if not isinstance(value, list):
            raise SpecError(
                f"spec {shown}: {key} is {_kind(value)}, not a list of commands: "
                f"write e.g. {example}"
            )
        for index, item in enumerate(value):
            if not isinstance(item, str):
                raise SpecError(
                    f"spec {shown}: {key}[{index}] is {_kind(item)}, not a command: "
                    f"write each check as a quoted string, e.g. {example}"
                )


def _kind(value: Any) -> str:
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return f"a number ({value})"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    return f"a {type(value).__name__}"


def render_mapping(mapping: Mapping[str, Any]) -> str:
    """A structured spec as Markdown: title, description, then one section per key."""
    lines: list[str] = []
    title = mapping.get("name") or mapping.get("title")
    if title:
        lines += [f"# {title}", ""]
    description = mapping.get("description")
    if description:
        lines += [str(description).strip(), ""]
    for key, value in mapping.items():
        if key in ("name", "title", "description") or value in (None, "", [], {}):
            continue
        lines += [f"## {_label(key)}", ""]
        lines += _render_value(value, 0)
        lines.append("")
    return "\n".join(lines).strip() + "\n"


def _render_value(value: Any, depth: int) -> list[str]:
    indent = "  " * depth
    if isinstance(value, Mapping):
        out: list[str] = []
        for key, item in value.items():
            if isinstance(item, Mapping | list):
                out.append(f"{indent}- {_label(key)}:")
                out += _render_value(item, depth + 1)
            else:
                out.append(f"{indent}- {_label(key)}: {_scalar(item)}")
        return out
    if isinstance(value, list):
        out = []
        for item in value:
            if isinstance(item, Mapping | list):
                nested = _render_value(item, depth + 1)
                if not nested:  # an empty list or mapping says nothing
                    continue
                # The first key of a mapping item heads its bullet, like YAML's "- name: x".
                out.append(f"{indent}- " + nested[0].strip().removeprefix("- "))
                out += nested[1:]
            else:
                out.append(f"{indent}- {_scalar(item)}")
        return out
    return [f"{indent}{_scalar(value)}"]


def _label(key: Any) -> str:
    return str(key).replace("_", " ").strip().capitalize()


def _scalar(value: Any) -> str:
    text = str(value).strip()
    return text.replace("\n", " ") if len(text) < 400 else text


def _markdown_title(text: str) -> str | None:
    match = _HEADING.search(text)
    return match.group(1) if match else None
