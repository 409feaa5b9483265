"""pydantic's validation errors as config issues: real location, readable problem, a fix."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from typing import Any

from pydantic_core import ErrorDetails

from rolecall._secrets import redact
from rolecall.config._fields import key_names, model_at
from rolecall.config._locations import ConfigPath, LineMap, make_issue
from rolecall.config.provider_models import config_model_for, type_names
from rolecall.config.schema import CRITICAL_ROLE_KEYS, STRATEGIES
from rolecall.errors import ConfigIssue

_EXPECTED = {
    "string_type": "text",
    "string_unicode": "text",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "finite_number": "a finite number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "dict_type": "a mapping (key: value lines)",
    "model_type": "a mapping (key: value lines)",
    "model_attributes_type": "a mapping (key: value lines)",
    "list_type": "a list, e.g. [a, b]",
}
_BOUNDS = {
    "greater_than_equal": ("ge", "at least {}", "use {} or more"),
    "greater_than": ("gt", "greater than {}", "use a value above {}"),
    "less_than_equal": ("le", "at most {}", "use {} or less"),
    "less_than": ("lt", "less than {}", "use a value below {}"),
}


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    """The candidate closest to ``word``, if any is close enough to be a likely typo."""
    options = [c for c in candidates if isinstance(c, str)]
    for option in options:
        if option.lower() == word.lower():
            return option
    matches = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return matches[0] if matches else None


def describe(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        value = redact(value)  # before shortening: a cut-off key would no longer be masked
        return repr(value if len(value) <= 40 else value[:37] + "...")
    return str(value)


def role_key_issue(path: ConfigPath, key: str, lines: LineMap) -> ConfigIssue:
    """A role (or its params) naming a key that picks the provider itself."""
    return make_issue(
        path,
        f"a role cannot set '{key}'",
        "set it on the provider and point the role at it",
        lines,
    )


def _secret_path(path: ConfigPath) -> bool:
    return any(part in ("api_key", "keys", "headers") for part in path)


def _child(node: Any, part: str | int) -> tuple[bool, Any]:
    if isinstance(node, dict) and part in node:
        return True, node[part]
    if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
        return True, node[part]
    return False, None


def schema_issues(
    errors: Iterable[ErrorDetails], data: dict[str, Any], lines: LineMap
) -> list[ConfigIssue]:
    """One issue per pydantic error, located in the file as the user wrote it."""
    translator = _Translator(data, lines)
    for error in errors:
        translator.schema_error(error)
    return translator.issues


def _example_fix(type_name: str, model: type[Any], name: str) -> str:
    """``add model: gpt-4.1``: an example from the type's row or the field's own examples."""
    from rolecall.config.registry import provider_type

    if name == "model":
        return f"add model: {provider_type(type_name).example_model}"
    info = model.model_fields.get(name)
    if info is not None and info.examples:
        what = f"{info.description}, " if info.description else ""
        return f"add {name}: {what}e.g. {info.examples[0]}"
    return f"add {name}: ..."


def _types_taking(key: str) -> list[str]:
    """The registered types whose model takes ``key``."""
    from rolecall.config.registry import provider_types

    return [name for name, row in provider_types().items() if key in key_names(row.config_model)]


class _Translator:
    def __init__(self, data: dict[str, Any], lines: LineMap) -> None:
        self.data = data
        self.lines = lines
        self.issues: list[ConfigIssue] = []

    def error(self, path: ConfigPath, problem: str, fix: str | None = None) -> None:
        self.issues.append(make_issue(path, problem, fix, self.lines))

    def _real_path(self, loc: tuple[str | int, ...]) -> ConfigPath:
        """pydantic's location, cut to keys that exist in the file (or a missing field)."""
        path: list[str | int] = []
        node: Any = self.data
        for part in loc:
            found, node = _child(node, part)
            if not found:
                model = model_at(tuple(path), data=self.data)
                names = key_names(model) if model is not None else {}
                if str(part) in names:
                    path.append(names[str(part)])  # a missing key by its name, not its alias
                break
            path.append(part)
        return tuple(path)

    def schema_error(self, error: ErrorDetails) -> None:
        path = self._real_path(tuple(error["loc"]))
        kind = error["type"]
        name = str(path[-1]) if path and isinstance(path[-1], str) else "it"
        value = error.get("input")
        got = "" if _secret_path(path) else f" (got {describe(value)})"
        ctx = error.get("ctx") or {}
        if kind == "extra_forbidden":
            self._unknown_key(path)
        elif self._provider_needs(path, kind, value):
            return
        elif kind == "missing":
            self.error(path, f"missing required key '{name}'", self._missing_fix(path))
        elif kind == "literal_error":
            self._bad_choice(path, value, str(ctx.get("expected", "")))
        elif kind == "value_error":
            message = str(ctx.get("error", error["msg"]))
            problem, _, fix = message.partition(": use ")
            self.error(path, problem, f"use {fix}" if fix else None)
        elif kind in _EXPECTED:
            expected = _EXPECTED[kind]
            self.error(path, f"should be {expected}{got}", f"write {name} as {expected}")
        elif kind in _BOUNDS:
            key, problem, fix = _BOUNDS[kind]
            bound = ctx.get(key)
            self.error(path, f"should be {problem.format(bound)}{got}", fix.format(bound))
        else:
            message = error["msg"].replace("Input should", "should")
            self.error(path, f"{message[:1].lower()}{message[1:]}{got}")

    def _missing_fix(self, path: ConfigPath) -> str:
        name = path[-1] if path else ""
        if path == ("providers",):
            return "add a providers: section with at least one provider, e.g. local: {type: local}"
        if name == "type":
            return f"add type: one of {', '.join(type_names())}"
        return f"add {name}: ..."

    def _provider_needs(self, path: ConfigPath, kind: str, value: Any) -> bool:
        """A key the provider's type requires is missing or empty: say so in its terms."""
        empty = kind == "string_too_short" or (kind == "string_type" and value is None)
        if not (len(path) == 3 and path[0] == "providers" and (kind == "missing" or empty)):
            return False
        entry = self._node(path[:2])
        type_name = entry.get("type") if isinstance(entry, dict) else None
        model = config_model_for(type_name)
        if model is None or path[2] == "type":
            return False
        name = str(path[2])
        article = "an" if str(type_name)[:1] in "aeiou" else "a"
        problem = f"{article} {type_name} provider needs a {name}"
        self.error(path, problem, _example_fix(str(type_name), model, name))
        return True

    def _bad_choice(self, path: ConfigPath, value: Any, expected: str) -> None:
        name = path[-1] if path else ""
        choices: tuple[str, ...]
        if name == "type" and path[:1] == ("providers",):
            what, choices = "provider type", type_names()
        elif name == "strategy":
            what, choices = "strategy", STRATEGIES
        elif name == "schema_version":
            self.error(
                path, f"unsupported schema_version {describe(value)}", "use schema_version: 1"
            )
            return
        else:
            what, choices = "value", tuple(re.findall(r"'([^']*)'", expected))
        suggestion = did_you_mean(value, choices) if isinstance(value, str) else None
        fix = f"did you mean '{suggestion}'?" if suggestion else f"use one of: {', '.join(choices)}"
        if isinstance(value, dict | list) or value is None:
            self.error(path, f"expected a {what} name (got {describe(value)})", fix)
        else:
            self.error(path, f"unknown {what} {describe(value)}", fix)

    def _unknown_key(self, path: ConfigPath) -> None:
        key = str(path[-1])
        parent = path[:-1]
        if len(parent) == 2 and parent[0] == "roles" and key in CRITICAL_ROLE_KEYS:
            self.issues.append(role_key_issue(path, key, self.lines))
            return
        model = model_at(parent, data=self.data)
        names = key_names(model) if model is not None else {}
        siblings = self._node(parent)
        siblings = siblings if isinstance(siblings, dict) else {}
        twin = next(
            (
                other
                for other, field in names.items()
                if field == names.get(key) and other != key and other in siblings
            ),
            None,
        )
        if twin is not None:
            self.error(
                path,
                f"both '{key}' and '{twin}' are set; they are the same setting",
                "keep one of them",
            )
            return
        type_name = siblings.get("type") if len(parent) == 2 and parent[0] == "providers" else None
        owners = _types_taking(key) if isinstance(type_name, str) else []
        suggestion = did_you_mean(key, names)
        if owners:
            fix = f"'{key}' is for type {' or '.join(owners)}: remove it here"
        elif suggestion:
            fix = f"did you mean '{suggestion}'?"
        elif model is not None:
            fix = f"allowed keys here: {', '.join(model.model_fields)}"
        else:
            fix = "remove it"
        if isinstance(type_name, str) and config_model_for(type_name) is not None:
            self.error(path, f"unknown key '{key}' for type {type_name}", fix)
        else:
            self.error(path, f"unknown key '{key}'", fix)

    def _node(self, path: ConfigPath) -> Any:
        node: Any = self.data
        for part in path:
            found, node = _child(node, part)
            if not found:
                return None
        return node
