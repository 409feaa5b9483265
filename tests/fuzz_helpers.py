"""Shared pieces of the property tests that mutate JSON-like trees."""

from __future__ import annotations

from typing import Any


def places(node: Any) -> list[tuple[Any, Any]]:
    """Every (container, key or index) in the tree, for a mutation to pick one."""
    found: list[tuple[Any, Any]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            found.append((node, key))
            found.extend(places(value))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found.append((node, index))
            found.extend(places(value))
    return found
