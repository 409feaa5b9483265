"""Config text -> plain data, keeping what PyYAML's loader throws away.

``yaml.safe_load`` silently keeps the last of two duplicate keys and forgets
where each value was written. Walking the composed node tree instead gives
every key's line, the duplicates, and one place to expand ``${VAR}``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from rolecall._secrets import redact, register_secret
from rolecall.config._env import REFERENCE_FIX, SECRET_NAME, interpolate
from rolecall.config._locations import ConfigPath, LineMap, format_location, make_issue
from rolecall.config._read import MAX_CONFIG_BYTES
from rolecall.errors import ConfigIssue

_TAG = "tag:yaml.org,2002:"
_STR = _TAG + "str"
_MERGE = _TAG + "merge"
_TYPED = frozenset(_TAG + name for name in ("null", "bool", "int", "float"))
# Core tags whose values stay text as written (dates, base64).
# "<<" is a merge only as a key; as a value it is the text written.
_AS_TEXT = frozenset(
    _TAG + name for name in ("timestamp", "binary", "value", "set", "omap", "merge")
)
# Tags a list or mapping may carry: the implicit ones and YAML's own ordered forms.
_COLLECTIONS = frozenset(_TAG + name for name in ("map", "seq", "omap", "pairs", "set"))
_SURROGATE = re.compile("[\ud800-\udfff]")
# Aliases can multiply a small file into a huge tree ("billion laughs"), and a long
# string or ${VAR} into gigabytes of text: both are counted as the tree is built.
_MAX_NODES = 100_000
_MAX_TEXT = 10 * MAX_CONFIG_BYTES
_ALIAS_FIX = "use fewer aliases (*name) to long values, or shorter values"
# No setting takes a larger whole number; far larger ones cannot even be turned into a
# float (durations, ranges) or, past 4300 digits, into text.
_MAX_INT = 2**63 - 1
_INT_FIX = f"use a number no larger than {_MAX_INT}"

EMPTY_FIX = "add a providers: section (see examples/ for complete files) or run `rolecall init`"


@dataclass
class Document:
    """What the reader found: data (None if unusable), lines, and the problems met on the way."""

    data: dict[str, Any] | None
    lines: LineMap = field(default_factory=LineMap)
    errors: list[ConfigIssue] = field(default_factory=list)
    key_env_vars: dict[str, str] = field(default_factory=dict)
    # Locations of values that could not be read: their issue is in ``errors`` already.
    unreadable: set[str] = field(default_factory=set)


def parse_document(
    text: str,
    *,
    env: Mapping[str, str],
    is_json: bool = False,
    skipped_dotenv: Mapping[str, int] | None = None,
) -> Document:
    """Parse YAML (or JSON, with JSON's own error messages) and expand ``${VAR}``.

    ``skipped_dotenv`` maps the variables of ``.env`` lines that could not be read to their
    line, so that a reference to one points there.
    """
    if "\x00" in text:
        return Document(data=None, errors=[binary_issue()])
    if not text.strip():
        return _fatal("the file is empty", EMPTY_FIX)
    lines_known = True
    if is_json:
        problem = _json_problem(text)
        if problem is not None:
            return Document(data=None, errors=[problem])
        # Valid JSON is YAML except for tab indentation; tabs elsewhere are invalid JSON.
        text = text.replace("\t", " ")
    try:
        root = _compose(text)
    except (yaml.YAMLError, RecursionError) as exc:
        if not is_json:
            return Document(data=None, errors=[_yaml_problem(exc, text)])
        # A JSON corner PyYAML rejects: keep the data, lose the line numbers.
        text = json.dumps(json.loads(text, parse_int=_json_int))
        try:
            root = _compose(text)
        except (yaml.YAMLError, RecursionError) as again:
            return Document(data=None, errors=[_yaml_problem(again, text)])
        lines_known = False
    if root is None:
        return _fatal("the file holds only comments", EMPTY_FIX)
    if isinstance(root, ScalarNode) and root.tag == _TAG + "null" and not root.value:
        return _fatal("the file is empty (a '---' or '...' line and nothing else)", EMPTY_FIX)
    if not isinstance(root, MappingNode):
        kind = "a list" if isinstance(root, SequenceNode) else "a single value"
        return _fatal(
            f"the top level is {kind}, but it must be a mapping (providers:, roles:, ...)",
            "start the file with 'providers:' at column 1",
            line=root.start_mark.line + 1,
        )
    builder = _Builder(text, env, is_json=is_json, skipped_dotenv=skipped_dotenv or {})
    try:
        data = builder.mapping(root, ())
    except RecursionError:
        return _fatal("the file is nested too deeply", "flatten the structure")
    except _TooLarge as exc:
        return _fatal(exc.problem, exc.fix)
    return Document(
        data=data,
        lines=builder.lines if lines_known else LineMap(),
        errors=builder.finish(),
        key_env_vars=builder.key_env_vars,
        unreadable=builder.unreadable,
    )


def binary_issue() -> ConfigIssue:
    return ConfigIssue(
        "",
        "the file looks binary (it contains NUL bytes), not YAML or JSON",
        "point -c at the YAML config file",
    )


def _compose(text: str) -> Node | None:
    # libyaml is ~10x faster; the pure-Python parser names the problem better
    # ("found character '\\t'", "undefined alias 'x'"), so errors come from it.
    fast = getattr(yaml, "CSafeLoader", None)
    if fast is not None:
        try:
            return yaml.compose(text, Loader=fast)
        except yaml.YAMLError:
            pass
    return yaml.compose(text, Loader=yaml.SafeLoader)


def _fatal(problem: str, fix: str, line: int | None = None) -> Document:
    return Document(data=None, errors=[ConfigIssue("", problem, fix, line)])


class _HugeNumber(str):
    """A JSON whole number too long to read, kept as written."""


def _json_int(digits: str) -> int | str:
    return _HugeNumber(digits) if len(digits.lstrip("-")) > len(str(_MAX_INT)) else int(digits)


def _json_problem(text: str) -> ConfigIssue | None:
    try:
        json.loads(text, parse_int=_json_int)
    except json.JSONDecodeError as exc:
        return ConfigIssue(
            "",
            f"invalid JSON: {exc.msg} (column {exc.colno})",
            "JSON allows no comments, no trailing commas and only double quotes "
            "(or rename the file to .yaml to write YAML)",
            exc.lineno,
        )
    except (ValueError, RecursionError) as exc:
        return ConfigIssue("", f"invalid JSON: {exc}", "simplify the file")
    return None


def _yaml_problem(exc: BaseException, text: str) -> ConfigIssue:
    if isinstance(exc, RecursionError):
        return ConfigIssue("", "the file is nested too deeply", "flatten the structure")
    if isinstance(exc, yaml.reader.ReaderError):
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        code = ord(exc.character) if isinstance(exc.character, str) else exc.character
        return ConfigIssue(
            "",
            f"invalid YAML: control character #x{code:02x} at column {column} is not allowed",
            "remove it (is this a binary file?)",
            line,
        )
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "cannot be parsed"
        text_problem = f"invalid YAML: {problem}"
        if mark is not None:
            text_problem += f" (column {mark.column + 1})"
        if exc.context and exc.context_mark is not None and exc.problem:
            text_problem += f", {exc.context} at line {exc.context_mark.line + 1}"
        at_line = mark.line + 1 if mark is not None else None
        rows = text.splitlines()
        source_line = rows[mark.line] if mark is not None and mark.line < len(rows) else ""
        return ConfigIssue("", text_problem, _yaml_fix(problem, source_line), at_line)
    return ConfigIssue("", f"invalid YAML: {exc}", _yaml_fix(""))


def _yaml_fix(problem: str, source_line: str = "") -> str:
    if "${" in source_line and ("{" in problem or "flow" in problem):
        return 'quote ${VAR} references inside { } or [ ]: write "${VAR}"'
    if "\t" in source_line or "'\\t'" in problem:
        return "indent with spaces; YAML does not allow tabs there"
    if "mapping values are not allowed" in problem:
        return "quote a value that contains ': ', or fix this key's indentation"
    if "undefined alias" in problem:
        return "define the anchor (&name) before using it (*name)"
    if "document" in problem:
        return "keep one document per file: remove the extra '---'"
    return "check the indentation, quotes and brackets at that spot"


class _TooLarge(Exception):
    def __init__(self, problem: str, fix: str) -> None:
        self.problem = problem
        self.fix = fix
        super().__init__(problem)


class _Builder:
    """Walks the node tree once, building data and recording lines and problems."""

    def __init__(
        self,
        text: str,
        env: Mapping[str, str],
        *,
        is_json: bool,
        skipped_dotenv: Mapping[str, int],
    ) -> None:
        self.text = text
        self.env = env
        self.skipped_dotenv = skipped_dotenv
        self.is_json = is_json
        self.lines = LineMap()
        self.key_env_vars: dict[str, str] = {}
        self._errors: list[ConfigIssue] = []
        self.unreadable: set[str] = set()
        self._unset: dict[str, list[ConfigPath]] = {}
        self._constructor = yaml.constructor.SafeConstructor()
        self._resolver = yaml.resolver.Resolver()
        self._active: set[int] = set()
        self._count = 0
        self._text = 0

    def finish(self) -> list[ConfigIssue]:
        for name, paths in self._unset.items():
            problem = f"environment variable {name} is not set"
            others = [format_location(path) for path in paths[1:]]
            if others:
                shown = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
                problem += f" (also used at {shown})"
            fix = f"export {name}=... or add it to .env beside the config"
            if name in self.skipped_dotenv:
                fix = f"fix line {self.skipped_dotenv[name]} of .env, which was skipped"
            self._errors.append(make_issue(paths[0], problem, fix, self.lines))
        return self._errors

    def _error(self, path: ConfigPath, problem: str, fix: str | None) -> None:
        self._errors.append(make_issue(path, problem, fix, self.lines))

    def _spend(self, characters: int) -> None:
        """Count text read or made; past the budget the whole file is refused."""
        self._text += characters
        if self._text > _MAX_TEXT:
            raise _TooLarge(
                f"the file expands to more than {_MAX_TEXT} characters of text", _ALIAS_FIX
            )

    def value(self, node: Node, path: ConfigPath) -> Any:
        self._count += 1
        if self._count > _MAX_NODES:
            raise _TooLarge(
                f"the file expands to more than {_MAX_NODES} values", "use fewer aliases (*name)"
            )
        if isinstance(node, ScalarNode):
            self._spend(len(node.value))
            return self.scalar(node, path)
        if id(node) in self._active:
            self._error(path, "an alias refers to a value that contains it", "remove the loop")
            return None
        if node.tag not in _COLLECTIONS:
            self._error(path, f"unsupported YAML tag '{node.tag}'", "remove the tag")
        self._active.add(id(node))
        try:
            if isinstance(node, MappingNode):
                return self.mapping(node, path)
            items = []
            for index, item in enumerate(node.value):
                self.lines.record((*path, index), item.start_mark.line + 1)
                items.append(self.value(item, (*path, index)))
            return items
        finally:
            self._active.discard(id(node))

    def mapping(self, node: MappingNode, path: ConfigPath) -> dict[str, Any]:
        result: dict[str, Any] = {}
        # Merged keys ("<<: *defaults") first, so that explicit keys override them.
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                for source in self._merge_sources(value_node, path):
                    for key, value in source.items():
                        result.setdefault(key, value)
        first_line: dict[str, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                continue
            if not isinstance(key_node, ScalarNode):
                self._error(path, "a key must be a plain name, not a list or mapping", None)
                continue
            self._spend(len(key_node.value))
            key = self._key(key_node)
            key_path = (*path, key)
            line = key_node.start_mark.line + 1
            if key in first_line:
                what = "provider id" if path == ("providers",) else "key"
                self._errors.append(
                    ConfigIssue(
                        format_location(key_path),
                        f"duplicate {what} '{key}' (first at line {first_line[key]}); "
                        "YAML keeps only the last one",
                        "rename or remove one of them",
                        line,
                    )
                )
                self.lines.forget(key_path)
            first_line.setdefault(key, line)
            self.lines.record(key_path, line)
            result[key] = self.value(value_node, key_path)
        return result

    def _merge_sources(self, node: Node, path: ConfigPath) -> list[dict[str, Any]]:
        nodes = node.value if isinstance(node, SequenceNode) else [node]
        sources: list[dict[str, Any]] = []
        for item in nodes:
            if isinstance(item, MappingNode):
                sources.append(self.value(item, path) or {})
            else:
                self._error(path, "'<<' must be followed by a mapping or *alias", None)
        return sources

    def _key(self, node: ScalarNode) -> str:
        key = self._json(node) if self.is_json else node.value
        return _whole_characters(key if isinstance(key, str) else node.value)

    def _json(self, node: ScalarNode) -> Any:
        return json.loads(
            self.text[node.start_mark.index : node.end_mark.index], parse_int=_json_int
        )

    def scalar(self, node: ScalarNode, path: ConfigPath) -> Any:
        value: Any
        if self.is_json:
            value = self._json(node)
        elif node.tag == _STR or node.tag in _AS_TEXT:
            value = node.value
        elif node.tag in _TYPED:
            value = self._construct(node, path)
        else:
            self._error(
                path,
                f"unsupported YAML tag '{node.tag}'",
                "remove the tag (write ${VAR} to read the environment)",
            )
            return node.value
        if isinstance(value, _HugeNumber) or _too_large(value):
            return self._too_large(node.value, path)
        if isinstance(value, str):
            value = _whole_characters(value)
            if "${" in value:
                return self._interpolate(value, node, path)
        return value

    def _construct(self, node: ScalarNode, path: ConfigPath) -> Any:
        if node.tag == _TAG + "int" and len(node.value) > 2 * len(str(_MAX_INT)):
            # Python refuses to read more than 4300 decimal digits (and hex is not limited).
            return self._too_large(node.value, path)
        try:
            value = self._constructor.construct_object(node)
        except (yaml.YAMLError, ValueError, OverflowError) as exc:
            return self._unreadable(
                path, f"cannot read '{_shorten(node.value)}' ({exc})", "quote it as text"
            )
        return self._too_large(node.value, path) if _too_large(value) else value

    def _too_large(self, written: str, path: ConfigPath) -> str:
        return self._unreadable(path, f"the number {_shorten(written)} is too large", _INT_FIX)

    def _unreadable(self, path: ConfigPath, problem: str, fix: str) -> str:
        """Report a value that cannot be read; the schema's issue about it would repeat this."""
        self._error(path, problem, fix)
        self.unreadable.add(format_location(path))
        return ""

    def _interpolate(self, text: str, node: ScalarNode, path: ConfigPath) -> Any:
        result = interpolate(text, self.env, limit=_MAX_TEXT - self._text)
        if result.too_long:
            raise _TooLarge(
                f"the file expands to more than {_MAX_TEXT} characters of text "
                f"(${{...}} at {format_location(path)})",
                _ALIAS_FIX,
            )
        self._spend(len(result.text))
        result.text = _whole_characters(result.text)  # undecodable bytes in the environment
        for reference in result.malformed:
            self._error(path, f"malformed reference {reference}", REFERENCE_FIX)
        for name in result.unset:
            self._unset.setdefault(name, [])
            if path not in self._unset[name]:
                self._unset[name].append(path)
        secret_place = _holds_secret(path)
        for name, value in result.values.items():
            if secret_place or SECRET_NAME.search(name):
                register_secret(value)
        if result.variables and len(path) == 3 and path[::2] == ("providers", "api_key"):
            self.key_env_vars[str(path[1])] = result.variables[0]
        if result.whole and _in_params(path):
            # ${T:-0.2} alone in params takes the value's YAML type (a number here).
            return self._typed(result.text, path)
        return result.text

    def _typed(self, text: str, path: ConfigPath) -> Any:
        tag = self._resolver.resolve(ScalarNode, text, (True, False))  # type: ignore[no-untyped-call]
        if tag not in _TYPED:
            return text
        return self._construct(ScalarNode(tag, text), path)


def _too_large(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) > _MAX_INT


def _shorten(text: str) -> str:
    text = redact(text)  # before shortening: a cut-off key would no longer be masked
    return text if len(text) <= 24 else f"{text[:20]}... ({len(text)} characters)"


def _whole_characters(text: str) -> str:
    """Join escaped surrogate pairs ("\\ud83d\\ude00") and replace lone halves, which
    cannot be printed or encoded."""
    if not _SURROGATE.search(text):
        return text
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _holds_secret(path: ConfigPath) -> bool:
    return (
        (bool(path) and path[-1] == "api_key")
        or path[:2] == ("gateway", "keys")
        or (len(path) >= 2 and path[-2] == "headers" and bool(SECRET_NAME.search(str(path[-1]))))
    )


def _in_params(path: ConfigPath) -> bool:
    return (
        len(path) >= 4 and path[0] in ("providers", "roles") and path[2] in ("params", "parameters")
    )
