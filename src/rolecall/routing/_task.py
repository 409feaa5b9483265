"""The state of one routed task while the router walks its chain."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rolecall._secrets import redact
from rolecall.errors import ErrorKind, ProviderError
from rolecall.types import Attempt, Completion, ImagePart, Message, normalize_messages

__all__ = [
    "TaskRun",
    "check_encodable",
    "checked_messages",
    "refused",
    "short_id",
    "unexpected_error",
]

log = logging.getLogger("rolecall.router")


def short_id() -> str:
    """12 random hex digits (a uuid4's randomness, without the cost of building a UUID)."""
    return os.urandom(6).hex()


@dataclass(slots=True)
class TaskRun:
    role: str
    run_id: str
    task_id: str
    stage: str | None
    started: float
    dialect: str | None = None
    # The caller's own params (checked, without config params): what a provider must take.
    params: Mapping[str, Any] | None = None
    attempts: list[Attempt] = field(default_factory=list)
    # provider id -> why it did not answer (its last error, or why it was skipped), chain order.
    failed: dict[str, ProviderError] = field(default_factory=dict)
    # Skipped while cooling down; tried once more after the chain if the reset is near.
    deferred: list[str] = field(default_factory=list)
    handovers: int = 0
    answer: tuple[str, Completion] | None = None
    answer_cost: float | None = None  # the answer's cost, worked out once for both records

    def take_deferred(self) -> list[str]:
        deferred, self.deferred = self.deferred, []
        return deferred


def unexpected_error(pid: str, exc: Exception) -> ProviderError:
    """A non-ProviderError from an adapter, classified as well as its type allows.

    A ``UnicodeEncodeError`` is the request's fault (a lone surrogate in a parameter, a
    tool or a schema, which no encoder can write): a bad request, neither retried nor
    counted against the provider, so one client's bad text cannot open its circuit.
    """
    if isinstance(exc, UnicodeEncodeError):
        return ProviderError(
            f"the request holds text that cannot be encoded as UTF-8 (a lone surrogate, "
            f"{exc.object[exc.start : exc.end]!a}): replace or remove it before sending",
            kind=ErrorKind.BAD_REQUEST,
            provider=pid,
            retryable=False,
        )
    if isinstance(exc, TimeoutError):
        kind = ErrorKind.TIMEOUT
    elif isinstance(exc, OSError):
        kind = ErrorKind.NETWORK
    else:
        kind = ErrorKind.BAD_RESPONSE
    log.warning("provider %s raised %s: %s", pid, type(exc).__name__, redact(str(exc)))
    return ProviderError(f"unexpected {type(exc).__name__}: {exc}", kind=kind, provider=pid)


def refused(problem: str) -> ProviderError:
    """A request the router refuses before calling any provider (the caller's fault)."""
    return ProviderError(problem, kind=ErrorKind.BAD_REQUEST, retryable=False)


def checked_messages(messages: Any) -> tuple[Message, ...]:
    """``messages`` as :class:`Message` objects, or a bad_request error naming the message
    and field at fault (raised before any provider is called)."""
    try:
        normalized = normalize_messages(messages)
    except ValueError as exc:
        raise refused(str(exc)) from None
    if not normalized:  # every vendor refuses a call without a message
        raise refused("messages is empty: pass a prompt string or at least one message")
    return _check_images(check_encodable(normalized))


def _check_images(messages: tuple[Message, ...]) -> tuple[Message, ...]:
    """``messages`` unchanged, or a bad_request error naming the first inline image no
    vendor could read (every one would answer 400: the chain would be wasted on it)."""
    for index, message in enumerate(messages):
        if not message.parts:
            continue
        for number, part in enumerate(message.parts):
            problem = part.inline_problem if isinstance(part, ImagePart) else None
            if problem is not None:
                raise refused(
                    f"messages[{index}].content[{number}] {problem}: send the image's bytes "
                    "base64-encoded, as data:image/png;base64,<data>"
                )
    return messages


def check_encodable(messages: tuple[Message, ...]) -> tuple[Message, ...]:
    """``messages`` unchanged, or a bad_request error if any text cannot be sent as UTF-8.

    A lone surrogate (``"\\ud800"``) fails in every adapter's encoder; refusing it
    here means no provider is called and none is blamed for the request's fault.
    """
    for index, message in enumerate(messages):
        if message.content.isascii() and not message.tool_calls:
            continue  # ASCII holds no surrogate
        texts = [message.content, *(call.arguments for call in message.tool_calls)]
        try:
            for text in texts:
                text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise refused(
                f"messages[{index}].content cannot be encoded as UTF-8 (a lone surrogate "
                f"at character {exc.start}): replace or remove it before sending"
            ) from None
    return messages
