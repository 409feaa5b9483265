"""The provider protocol and helpers shared by the HTTP adapters.

An adapter turns one :class:`ChatRequest` into one vendor call and the vendor's
answer (or failure) into a :class:`Completion`, :class:`Chunk` stream or
:class:`ProviderError`. Adapters never retry and never choose another
provider: that is the router's job.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol, runtime_checkable

from rolecall.types import ChatRequest, Chunk, Completion

__all__ = ["MAX_TOKEN_COUNT", "Provider", "optional_text", "token_count"]

# More tokens than any call reads or writes: a count beyond it is a broken answer.
MAX_TOKEN_COUNT = 1_000_000_000


def token_count(value: object) -> int:
    """A vendor's token count: a JSON integer in 0..MAX_TOKEN_COUNT, else 0 (unreported).

    A negative or absurd count (``1e30`` as an integer) would corrupt the usage totals
    and costs, and no metrics store column holds an integer past 2**63.
    """
    if type(value) is int and 0 <= value <= MAX_TOKEN_COUNT:  # not a bool, not a float
        return value
    return 0


def optional_text(value: object) -> str | None:
    """A vendor's name or id (a tool call's): a non-empty JSON string, else None (unsent)."""
    return value if isinstance(value, str) and value else None


@runtime_checkable
class Provider(Protocol):
    """One configured provider (vendor + model + key)."""

    id: str
    model: str

    async def complete(self, request: ChatRequest) -> Completion:
        """One call; raises :class:`rolecall.errors.ProviderError` on any failure."""
        ...

    def stream(self, request: ChatRequest) -> AsyncIterator[Chunk]:
        """Text chunks as they arrive; the last carries usage. Raises ProviderError."""
        ...

    async def check_credentials(self) -> None:
        """Confirm the key (and model where possible) without spending tokens."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...
