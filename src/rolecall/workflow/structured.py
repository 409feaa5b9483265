"""Structured answers: pull JSON out of a model's text, check it, and repair it once.

The router owns retries and hand-overs for failed calls. An answer that arrives
but does not have the required shape is the workflow's business: it asks the
same provider once to repair it, then makes one more normally routed call.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from rolecall.errors import AllProvidersFailed, ErrorKind
from rolecall.types import Reply
from rolecall.workflow.errors import TaskFailed

__all__ = [
    "Asker",
    "InvalidAnswer",
    "ask_structured",
    "extract_json",
    "schema_or_text",
    "strip_fence",
]

T = TypeVar("T")

_FENCE = re.compile(r"^\s*```[^\n`]*\n(.*?)\n?```\s*$", re.DOTALL)
_OPENING = re.compile(r"^```[\w+.-]*\s*$")
# Every fenced block of an answer: its opening line (with any language tag), its body.
_FENCED_BLOCK = re.compile(r"^[ \t]*```[^\n`]*\n(.*?)^[ \t]*```", re.DOTALL | re.MULTILINE)
# A JSON string (kept whole), else what is dropped outside strings.
_COMMENT = re.compile(r'"(?:[^"\\\n]|\\.)*"|//[^\n]*|/\*.*?\*/', re.DOTALL)
_TRAILING_COMMA = re.compile(r'"(?:[^"\\\n]|\\.)*"|,(?=\s*[\]}])')


class InvalidAnswer(ValueError):
    """The answer does not have the required shape; ``problems`` lists each issue."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


class Asker(Protocol):
    async def __call__(
        self,
        messages: Sequence[Mapping[str, str]],
        *,
        response_schema: Mapping[str, Any] | None = None,
        provider: str | None = None,
    ) -> Reply: ...


def strip_fence(text: str) -> str:
    """The text inside one Markdown code fence wrapping the whole answer, else the text.

    An answer that opens with a fence keeps what comes before the first closing one: a
    model may write prose after its code (or echo the request to continue), and an answer
    cut off at the token limit never closes its fence. Either way the file does not start
    with ```python.
    """
    match = _FENCE.match(text)
    if match:
        return match.group(1)
    opening, _, rest = text.lstrip().partition("\n")
    if _OPENING.match(opening):
        # An answer that is only the opening fence (```python) holds no content at all.
        end = rest.find("```")
        return rest if end < 0 else rest[:end]
    return text


def extract_json(text: str) -> Any:
    """The one JSON value in a model's answer: bare, fenced, or embedded in prose.

    Trailing commas and ``//`` or ``/* */`` comments are forgiven. Prose around the value
    may hold braces of its own; fenced blocks that parse win over objects in the prose.
    Two different values (two plans, a plan and an example) are ambiguous: an
    :class:`InvalidAnswer`, as is text with no JSON value at all.
    """
    candidate = strip_fence(text).strip()
    try:
        return _loads(candidate)
    except json.JSONDecodeError as exc:
        first = exc
    values = _distinct(_fenced_values(text)) or _distinct(_embedded_objects(_tidied(text)))
    if len(values) == 1:
        return values[0]
    if values:
        raise InvalidAnswer(["the answer holds different JSON values: give exactly one"])
    raise InvalidAnswer(
        [f"not valid JSON ({first.msg} at line {first.lineno}, column {first.colno})"]
    )


def _loads(text: str) -> Any:
    """``text`` as JSON, else without its comments and trailing commas."""
    try:
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            tidied = _tidied(text)
            if tidied == text:
                raise
            try:
                return json.loads(tidied)
            except json.JSONDecodeError:
                raise exc from None
    except RecursionError:
        raise InvalidAnswer(["JSON nested too deeply to read"]) from None


def _tidied(text: str) -> str:
    """``text`` without comments and trailing commas outside its strings."""
    return _TRAILING_COMMA.sub(_string_or_nothing, _COMMENT.sub(_string_or_nothing, text))


def _string_or_nothing(match: re.Match[str]) -> str:
    found = match.group()
    return found if found.startswith('"') else ""


def _fenced_values(text: str) -> list[Any]:
    values = []
    for block in _FENCED_BLOCK.findall(text):
        with contextlib.suppress(json.JSONDecodeError):
            values.append(_loads(block.strip()))
    return values


def _embedded_objects(text: str) -> list[Any]:
    """The JSON objects in prose, each read from its opening brace; outermost only."""
    decoder = json.JSONDecoder()
    values: list[Any] = []
    start = text.find("{")
    try:
        while start >= 0:
            try:
                value, end = decoder.raw_decode(text, start)
            except json.JSONDecodeError:
                start = text.find("{", start + 1)
                continue
            values.append(value)
            start = text.find("{", end)
    except RecursionError:
        raise InvalidAnswer(["JSON nested too deeply to read"]) from None
    return values


def _distinct(values: list[Any]) -> list[Any]:
    """The first value and, if any, the first one that differs from it."""
    for value in values[1:]:
        if value != values[0]:
            return [values[0], value]
    return values[:1]


async def ask_structured(
    ask: Asker,
    messages: Sequence[Mapping[str, str]],
    schema: Mapping[str, Any],
    parse: Callable[[Any], T],
    *,
    what: str,
) -> tuple[T, Reply]:
    """Ask for JSON matching ``schema``; ``parse`` checks it (raising InvalidAnswer).

    Invalid answer: one repair request to the provider that gave it, then one normally
    routed call. Still invalid: :class:`TaskFailed` naming every problem.
    """
    ask = schema_or_text(ask)
    reply = await ask(messages, response_schema=schema)
    try:
        return parse(extract_json(reply.text)), reply
    except InvalidAnswer as exc:
        problems = exc.problems
    repair = [
        *messages,
        {"role": "assistant", "content": reply.text},
        {"role": "user", "content": _repair_prompt(what, problems, schema)},
    ]
    bad_provider = reply.provider
    reply = await ask(repair, response_schema=schema, provider=bad_provider)
    try:
        return parse(extract_json(reply.text)), reply
    except InvalidAnswer as exc:
        problems = exc.problems
    reply = await ask(messages, response_schema=schema)
    try:
        return parse(extract_json(reply.text)), reply
    except InvalidAnswer as exc:
        raise TaskFailed(
            f"the {what} from provider '{reply.provider}' is still invalid after a repair "
            f"request: {'; '.join(exc.problems[:5])}"
        ) from None


def schema_or_text(ask: Asker) -> Asker:
    """``ask`` that asks again without the schema when a provider was skipped for lacking
    one (``unsupported``: a server that cannot constrain its output). The prompts name the
    shape in words and the answer is checked all the same, so such a provider can answer.
    """

    async def ask_in_text_if_needed(
        messages: Sequence[Mapping[str, str]],
        *,
        response_schema: Mapping[str, Any] | None = None,
        provider: str | None = None,
    ) -> Reply:
        try:
            return await ask(messages, response_schema=response_schema, provider=provider)
        except AllProvidersFailed as exc:
            skipped = any(e.kind is ErrorKind.UNSUPPORTED for e in exc.errors)
            if response_schema is None or not skipped:
                raise
        return await ask(messages, provider=provider)

    return ask_in_text_if_needed


def _repair_prompt(what: str, problems: Sequence[str], schema: Mapping[str, Any]) -> str:
    listed = "\n".join(f"- {problem}" for problem in problems[:20])
    return (
        f"Your {what} is invalid:\n{listed}\n\n"
        "Answer again with only the corrected JSON, no prose and no code fence. "
        f"It must match this JSON Schema:\n{json.dumps(schema, indent=1)}"
    )
