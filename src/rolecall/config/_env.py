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


def parse_dotenv(text: str) -> tuple[dict[str, str], list[int]]:
    """``KEY=VALUE`` lines (``export`` prefix, quotes, comments) and the numbers of bad lines."""
    values: dict[str, str] = {}
    bad_lines: list[int] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = _DOTENV_LINE.match(raw)
        value = _dotenv_value(match.group(2)) if match else None
        if match is None or value is None:
            bad_lines.append(number)
            continue
        values[match.group(1)] = value
    return values, bad_lines


def _dotenv_value(raw: str) -> str | None:
    if not raw:
        return ""
    quote = raw[0]
    if quote == "'":
        end = raw.find("'", 1)
        return raw[1:end] if end > 0 and _only_comment(raw[end + 1 :]) else None
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
                return "".join(out) if _only_comment(raw[index + 1 :]) else None
            out.append(char)
            index += 1
        return None
    # Unquoted: " #" starts a comment, as in shells.
    return re.split(r"\s#", raw, maxsplit=1)[0].strip()


def _only_comment(rest: str) -> bool:
    rest = rest.strip()
    return not rest or rest.startswith("#")


def read_dotenv(path: Path) -> tuple[dict[str, str], list[ConfigIssue]]:
    """The variables of ``path`` (absent file: none) and a warning per line that was skipped."""
    try:
        # Bounded, regular files only: a FIFO or device named .env must not hang loading.
        text = read_regular_file(path).decode("utf-8-sig")
    except FileNotFoundError:
        return {}, []
    except FileRefused as exc:
        issue = ConfigIssue(
            location=path.name,
            problem=exc.problem,
            fix="make it a regular file of KEY=VALUE lines, or remove it",
        )
        return {}, [issue]
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        issue = ConfigIssue(
            location=path.name,
            problem=f"cannot read {path}: {reason}",
            fix="fix the file's permissions or encoding (UTF-8), or remove it",
        )
        return {}, [issue]
    values, bad_lines = parse_dotenv(text)
    warnings = [
        ConfigIssue(
            location=path.name,
            problem="line skipped: not KEY=VALUE",
            fix="write KEY=VALUE (optionally 'export KEY=VALUE'; quote values with spaces)",
            line=number,
        )
        for number in bad_lines
    ]
    return values, warnings
