"""Parsing the YAML and JSON a user hands the workflow (specs, answers files).

A syntax error becomes :class:`SyntaxProblem`: the language, where (line and
column) and what, in a few words, for a one-line error that names the file.
"""

from __future__ import annotations

import json
from typing import Any, Literal

__all__ = ["SyntaxProblem", "load_structured"]


class SyntaxProblem(ValueError):
    """``text`` is not valid ``language``: ``where`` is `` (line L, column C)`` or ""."""

    def __init__(self, language: str, where: str, what: str) -> None:
        super().__init__(f"not valid {language}{where}: {what}")
        self.language = language
        self.where = where
        self.what = what


def load_structured(text: str, language: Literal["json", "yaml"]) -> Any:
    """The value ``text`` holds; :class:`SyntaxProblem` when it does not parse."""
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
