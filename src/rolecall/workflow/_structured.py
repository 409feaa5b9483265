"""Parsing the YAML and JSON a user hands the workflow (specs, answers files).

A syntax error becomes :class:`SyntaxProblem`: the language, where (line and
column) and what, in a few words, for a one-line error that names the file.

So does a value that cannot be used, whatever its syntax: nesting deeper than
:data:`MAX_DEPTH` (the parsers and everything after them recurse), YAML aliases
that refer to themselves or expand past :data:`MAX_VALUES` values (a few hundred
bytes can stand for billions), and half of a UTF-16 pair (``"\\ud800"``), which
no UTF-8 text can hold. Escaped pairs (``"\\ud83d\\ude00"``, which YAML keeps as
two halves) are joined into their character.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

__all__ = ["MAX_DEPTH", "MAX_VALUES", "SyntaxProblem", "load_structured"]

MAX_DEPTH = 100
MAX_VALUES = 100_000
_SURROGATE = re.compile("[\ud800-\udfff]")


class SyntaxProblem(ValueError):
    """``text`` is not valid ``language``: ``where`` is `` (line L, column C)`` or ""."""

    def __init__(self, language: str, where: str, what: str) -> None:
        super().__init__(f"not valid {language}{where}: {what}")
        self.language = language
        self.where = where
        self.what = what


def load_structured(text: str, language: Literal["json", "yaml"]) -> Any:
    """The value ``text`` holds; :class:`SyntaxProblem` when it does not parse."""
    name = "JSON" if language == "json" else "YAML"
    try:
        value = _parse(text, language)
    except RecursionError:
        raise SyntaxProblem(name, "", f"nested more than {MAX_DEPTH} levels deep") from None
    return _Checker(name).value(value, 0)


def _parse(text: str, language: Literal["json", "yaml"]) -> Any:
    if language == "json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise SyntaxProblem(
                "JSON", f" (line {exc.lineno}, column {exc.colno})", exc.msg
            ) from None
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SyntaxProblem("YAML", _yaml_where(exc, text), _yaml_what(exc)) from None


class _Checker:
    """Walks a parsed value: a copy with whole characters, or :class:`SyntaxProblem`."""

    def __init__(self, language: str) -> None:
        self.language = language
        self.count = 0
        self.open: set[int] = set()  # the containers being walked: one met again holds itself

    def value(self, item: Any, depth: int) -> Any:
        self.count += 1
        if self.count > MAX_VALUES:
            what = f"more than {MAX_VALUES} values (do aliases (*name) expand that far?)"
            raise SyntaxProblem(self.language, "", what)
        if isinstance(item, str):
            return self.text(item)
        if not isinstance(item, dict | list):
            return item
        if depth >= MAX_DEPTH:
            raise SyntaxProblem(self.language, "", f"nested more than {MAX_DEPTH} levels deep")
        if id(item) in self.open:
            raise SyntaxProblem(self.language, "", "an alias (*name) inside what it names")
        self.open.add(id(item))
        try:
            if isinstance(item, list):
                return [self.value(entry, depth + 1) for entry in item]
            return {self.value(k, depth + 1): self.value(v, depth + 1) for k, v in item.items()}
        finally:
            self.open.discard(id(item))

    def text(self, text: str) -> str:
        if not _SURROGATE.search(text):
            return text
        joined = text.encode("utf-16", "surrogatepass").decode("utf-16", "surrogatepass")
        lone = _SURROGATE.search(joined)
        if lone is not None:
            escape = f"\\u{ord(lone.group()):04x}"
            what = f"{escape} is half of a UTF-16 pair, not a character"
            raise SyntaxProblem(self.language, "", what)
        return joined


def _yaml_where(exc: Exception, text: str) -> str:
    import yaml

    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        if mark is not None:
            return f" (line {mark.line + 1}, column {mark.column + 1})"
    if isinstance(exc, yaml.reader.ReaderError):
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        return f" (line {line}, column {column})"
    return ""


def _yaml_what(exc: Exception) -> str:
    """PyYAML's problem in a few words (its own text spans several lines)."""
    import yaml

    if isinstance(exc, yaml.MarkedYAMLError):
        problem = exc.problem or exc.context or "syntax error"
        if exc.context and exc.problem and exc.context_mark is not None:
            problem += f", {exc.context} at line {exc.context_mark.line + 1}"
        return " ".join(problem.split())
    if isinstance(exc, yaml.reader.ReaderError):
        return "a control character YAML does not allow (is this a binary file?)"
    return "syntax error"
