"""The import path the README and examples show; see :mod:`rolecall.routing.router`."""

from rolecall.routing.router import ReplyStream, Router, complete_sync

__all__ = ["ReplyStream", "Router", "complete_sync"]
