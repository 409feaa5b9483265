"""Structured answers: pull JSON out of a model's text, check it, and repair it once.

The router owns retries and hand-overs for failed calls. An answer that arrives
but does not have the required shape is the workflow's business: it asks the
same provider once to repair it, then makes one more normally routed call.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from rolecall.types import Reply
from rolecall.workflow.errors import TaskFailed

__all__ = ["Asker", "InvalidAnswer", "ask_structured", "extract_json", "strip_fence"]

T = TypeVar("T")

_FENCE = re.compile(r"^\s*```[^\n`]*\n(.*?)\n?```\s*$", re.DOTALL)
_OPENING = re.compile(r"^```[\w+.-]*\s*$")


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
    """The JSON value in a model's answer: bare, fenced, or the outermost {...} in prose."""
    candidate = strip_fence(text).strip()
    try:
        return json.loads(candidate)
    except json.JSONDecodeError as first:
        start, end = candidate.find("{"), candidate.rfind("}")
        if 0 <= start < end:
            try:
                return json.loads(candidate[start : end + 1])
            except json.JSONDecodeError:
                pass
        raise InvalidAnswer(
            [f"not valid JSON ({first.msg} at line {first.lineno}, column {first.colno})"]
        ) from None


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


def _repair_prompt(what: str, problems: Sequence[str], schema: Mapping[str, Any]) -> str:
    listed = "\n".join(f"- {problem}" for problem in problems[:20])
    return (
        f"Your {what} is invalid:\n{listed}\n\n"
        "Answer again with only the corrected JSON, no prose and no code fence. "
        f"It must match this JSON Schema:\n{json.dumps(schema, indent=1)}"
    )
