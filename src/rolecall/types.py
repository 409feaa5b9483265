"""Value types shared by every layer: messages, requests, replies, usage, attempts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypedDict

from rolecall.errors import ErrorKind

__all__ = [
    "Attempt",
    "ChatRequest",
    "Chunk",
    "Completion",
    "Message",
    "MessageDict",
    "Outcome",
    "Reply",
    "Usage",
    "normalize_messages",
]

MessageRole = Literal["system", "user", "assistant"]
Outcome = Literal["ok", "retry", "handover", "cancelled"]


class MessageDict(TypedDict):
    role: str
    content: str


@dataclass(frozen=True, slots=True)
class Message:
    role: MessageRole
    content: str


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0

    def to_dict(self) -> dict[str, int]:
        return {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens}


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """What an adapter sends: messages plus merged parameters (temperature, max_tokens...)."""

    messages: tuple[Message, ...]
    params: Mapping[str, Any] = field(default_factory=dict)
    # A JSON Schema the answer must match (structured output), or None for free text.
    response_schema: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Completion:
    """An adapter's answer to one call."""

    text: str
    model: str
    usage: Usage = Usage()
    finish_reason: str | None = None


@dataclass(frozen=True, slots=True)
class Chunk:
    """One piece of a stream; the last chunk carries usage and finish reason."""

    text: str = ""
    usage: Usage | None = None
    finish_reason: str | None = None
    model: str | None = None


@dataclass(frozen=True, slots=True)
class Attempt:
    """One call to one provider, as recorded in replies, events and the run log."""

    provider: str
    attempt: int
    outcome: Outcome
    error_kind: ErrorKind | None
    latency_ms: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "attempt": self.attempt,
            "outcome": self.outcome,
            "error_kind": self.error_kind.value if self.error_kind else None,
            "latency_ms": round(self.latency_ms, 3),
        }


@dataclass(frozen=True, slots=True)
class Reply:
    """The router's answer: text plus who produced it and how."""

    text: str
    role: str
    provider: str
    model: str
    usage: Usage
    latency_ms: float
    attempts: tuple[Attempt, ...]
    finish_reason: str | None = None
    cost_usd: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "role": self.role,
            "provider": self.provider,
            "model": self.model,
            "usage": self.usage.to_dict(),
            "latency_ms": round(self.latency_ms, 3),
            "attempts": [a.to_dict() for a in self.attempts],
            "finish_reason": self.finish_reason,
            "cost_usd": self.cost_usd,
        }


_ROLES = frozenset({"system", "user", "assistant"})


def normalize_messages(
    messages: Sequence[Message | Mapping[str, Any]] | str,
) -> tuple[Message, ...]:
    """Accept a prompt string, dicts in OpenAI shape, or :class:`Message` objects."""
    if isinstance(messages, str):
        return (Message("user", messages),)
    out: list[Message] = []
    for index, item in enumerate(messages):
        if isinstance(item, Message):
            out.append(item)
            continue
        role = item.get("role")
        content = item.get("content")
        if role not in _ROLES:
            raise ValueError(f"messages[{index}].role must be system, user or assistant")
        if isinstance(content, list):  # OpenAI content parts: keep the text parts
            content = "".join(
                str(part.get("text", "")) for part in content if isinstance(part, Mapping)
            )
        if not isinstance(content, str):
            raise ValueError(f"messages[{index}].content must be a string")
        out.append(Message(role, content))
    return tuple(out)
