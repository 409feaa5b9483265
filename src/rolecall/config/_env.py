"""``${VAR}`` interpolation in config strings, and the ``.env`` file read beside the config."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from rolecall.config._read import FileRefused, read_regular_file
from rolecall.errors import ConfigIssue

# "$${" is a literal "${"; "${...}" a reference; a lone "${" is unterminated.
_REFERENCE = re.compile(r"\$\$\{|\$\{([^}]*)\}|\$\{")
_BODY = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)(.*))?$", re.DOTALL)
_DOTENV_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")
_DOTENV_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "$": "$"}
# Names (of variables, headers) whose values are credentials, masked wherever they are shown.
SECRET_NAME = re.compile(r"auth|key|token|secret|passw|credential|cookie", re.IGNORECASE)

_DOTENV_FIX = "write KEY=VALUE (optionally 'export KEY=VALUE'; quote values with spaces)"
_NO_CLOSING = "has no closing quote"
_NO_CLOSING_FIX = r"close the quote on the same line (write a line break as \n)"
_AFTER_QUOTE = "has text after its closing quote"
_AFTER_QUOTE_FIX = "put the whole value inside the quotes (a comment starts with ' #')"

REFERENCE_FIX = "write ${NAME} or ${NAME:-default}; write $${ for a literal ${"


@dataclass
class Substitution:
    """The result of interpolating one string."""

    text: str
    variables: list[str] = field(default_factory=list)  # every name referenced, in order
    values: dict[str, str] = field(default_factory=dict)  # name -> value used
    unset: list[str] = field(default_factory=list)  # referenced, unset, no default
    malformed: list[str] = field(default_factory=list)  # references as written
    whole: bool = False  # the string was nothing but one reference
    too_long: bool = False  # the result would pass the limit: ``text`` is unusable


def interpolate(text: str, env: Mapping[str, str], limit: int | None = None) -> Substitution:
    """Replace ``${VAR}``, ``${VAR:-default}`` (unset or empty) and ``${VAR-default}`` (unset).

    With ``limit``, stops (``too_long``) once the result would be longer: a short string
    repeating a long variable must not fill the memory.
    """
    result = Substitution(text)
    pieces: list[str] = []
    length = 0
    position = 0
    for match in _REFERENCE.finditer(text):
        pieces.append(text[position : match.start()])
        position = match.end()
        pieces.append(_replace(match, env, result))
        length += len(pieces[-2]) + len(pieces[-1])
        if limit is not None and length > limit:
            result.too_long = True
            return result
        if match.start() == 0 and match.end() == len(text) and result.variables:
            result.whole = True
    pieces.append(text[position:])
    result.text = "".join(pieces)
    return result


def _replace(match: re.Match[str], env: Mapping[str, str], result: Substitution) -> str:
    whole = match.group(0)
    if whole == "$${":
        return "${"
    body = match.group(1)
    parsed = _BODY.match(body) if body is not None else None
    if parsed is None or "${" in (parsed.group(3) or ""):
        result.malformed.append(whole)
        return whole
    name, operator, default = parsed.groups()
    result.variables.append(name)
    value = env.get(name)
    if operator is None:
        if value is None:
            result.unset.append(name)
            return ""
    elif value is None or (operator == ":-" and value == ""):
        value = default
    result.values[name] = value
    return value


@dataclass
class BadLine:
    """A ``.env`` line that was skipped."""

    number: int
    problem: str
    fix: str
    name: str | None = None  # the variable it would have set, when that much was readable


def parse_dotenv(text: str) -> tuple[dict[str, str], list[BadLine]]:
    """``KEY=VALUE`` lines (``export`` prefix, quotes, comments) and the lines skipped."""
    values: dict[str, str] = {}
    bad_lines: list[BadLine] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = _DOTENV_LINE.match(raw)
        if match is None:
            bad_lines.append(BadLine(number, "not KEY=VALUE", _DOTENV_FIX))
            continue
        name, raw_value = match.groups()
        value, problem = _dotenv_value(raw_value)
        if value is None:
            fix = _NO_CLOSING_FIX if problem == _NO_CLOSING else _AFTER_QUOTE_FIX
            bad_lines.append(BadLine(number, f"{name} not set: its value {problem}", fix, name))
            continue
        values[name] = value
    return values, bad_lines


def _dotenv_value(raw: str) -> tuple[str | None, str]:
    """The value, or None and what is wrong with it."""
    if not raw:
        return "", ""
    quote = raw[0]
    if quote == "'":
        end = raw.find("'", 1)
        if end < 0:
            return None, _NO_CLOSING
        return (raw[1:end], "") if _only_comment(raw[end + 1 :]) else (None, _AFTER_QUOTE)
    if quote == '"':
        out: list[str] = []
        index = 1
        while index < len(raw):
            char = raw[index]
            if char == "\\" and index + 1 < len(raw):
                following = raw[index + 1]
                out.append(_DOTENV_ESCAPES.get(following, "\\" + following))
                index += 2
                continue
            if char == '"':
                return (
                    ("".join(out), "") if _only_comment(raw[index + 1 :]) else (None, _AFTER_QUOTE)
                )
            out.append(char)
            index += 1
        return None, _NO_CLOSING
    # Unquoted: " #" starts a comment, as in shells.
    return re.split(r"\s#", raw, maxsplit=1)[0].strip(), ""


def _only_comment(rest: str) -> bool:
    rest = rest.strip()
    return not rest or rest.startswith("#")


@dataclass
class DotEnv:
    """What a ``.env`` file gave: its variables, a warning per line skipped, and the
    variables of skipped lines with their line."""

    values: dict[str, str] = field(default_factory=dict)
    warnings: list[ConfigIssue] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)


def read_dotenv(path: Path) -> DotEnv:
    """The ``.env`` at ``path`` (an absent file gives nothing)."""
    try:
        # Bounded, regular files only: a FIFO or device named .env must not hang loading.
        text = read_regular_file(path).decode("utf-8-sig")
    except FileNotFoundError:
        return DotEnv()
    except FileRefused as exc:
        issue = ConfigIssue(
            location=path.name,
            problem=exc.problem,
            fix="make it a regular file of KEY=VALUE lines, or remove it",
        )
        return DotEnv(warnings=[issue])
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        issue = ConfigIssue(
            location=path.name,
            problem=f"cannot read {path}: {reason}",
            fix="fix the file's permissions or encoding (UTF-8), or remove it",
        )
        return DotEnv(warnings=[issue])
    values, bad_lines = parse_dotenv(text)
    warnings = [
        ConfigIssue(path.name, f"line skipped: {bad.problem}", bad.fix, bad.number)
        for bad in bad_lines
    ]
    skipped = {bad.name: bad.number for bad in bad_lines if bad.name and bad.name not in values}
    return DotEnv(values, warnings, skipped)
