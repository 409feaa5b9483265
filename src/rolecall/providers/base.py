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

__all__ = ["Provider"]


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
