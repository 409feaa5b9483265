"""Reviewing on another vendor than the one that wrote the file.

A vendor is a provider's type plus the host it talks to: two ``openai``
providers on api.openai.com are one vendor, an ``openai-compatible`` server
on localhost is another. The reviewer chain (as the router orders it) is
reordered so providers of other vendors come first, then other providers of
the writer's vendor, then the writer itself; the review is asked of each in
turn (``provider=``), so a failing candidate still hands over to the next.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from rolecall.config.provider_models import LocalProviderConfig
from rolecall.config.registry import provider_types
from rolecall.config.schema import ProviderConfig

__all__ = ["ReviewerChoice", "order_reviewers", "vendor_of", "vendors"]


def vendor_of(config: ProviderConfig) -> str:
    """``type@host`` (``local`` for the embedded model)."""
    if isinstance(config, LocalProviderConfig):
        return config.type
    row = provider_types().get(config.type)
    url = config.base_url or (row.default_base_url if row is not None else None)
    host = urlsplit(url).hostname if url else None
    return f"{config.type}@{host or '?'}"


def vendors(providers: Mapping[str, ProviderConfig]) -> dict[str, str]:
    return {provider_id: vendor_of(cfg) for provider_id, cfg in providers.items()}


@dataclass(frozen=True, slots=True)
class ReviewerChoice:
    """The reviewer candidates in order, and a note when none is of another vendor."""

    candidates: tuple[str, ...]
    note: str | None = None


def order_reviewers(
    chain: Sequence[str], writer: str | None, vendor: Mapping[str, str]
) -> ReviewerChoice:
    """``chain`` with other vendors than ``writer``'s first, the writer itself last."""
    if writer is None:
        return ReviewerChoice(tuple(chain))
    own = vendor.get(writer, writer)
    other = [p for p in chain if vendor.get(p, p) != own]
    same = [p for p in chain if vendor.get(p, p) == own and p != writer]
    last = [p for p in chain if p == writer]
    note = None
    if not other:
        note = (
            f"reviewed on the writer's vendor ({own}): the reviewer chain has no other "
            "vendor; add one to roles.reviewer"
        )
    return ReviewerChoice(tuple(other + same + last), note)
