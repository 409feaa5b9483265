"""The OpenAI-compatible gateway (``rolecall serve``); needs the ``gateway`` extra.

Import :mod:`rolecall.gateway.app` for the ASGI app; this package stays light so
``import rolecall`` never pulls in Starlette.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rolecall.gateway.app import Gateway, create_app

__all__ = ["Gateway", "create_app"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from rolecall.gateway import app

        return getattr(app, name)
    raise AttributeError(f"module 'rolecall.gateway' has no attribute {name!r}")
