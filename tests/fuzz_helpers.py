"""Shared pieces of the property tests that mutate JSON-like trees."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import strategies as st


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


def mutated(
    data: st.DataObject,
    original: Any,
    values: st.SearchStrategy[Any],
    keys: st.SearchStrategy[str],
    edits: tuple[int, int],
) -> Any:
    """``original`` with between ``edits[0]`` and ``edits[1]`` random edits (a value deleted,
    replaced, wrapped in a list, or one inserted); ``original`` is left as it was."""
    root = {"tree": copy.deepcopy(original)}
    for _ in range(data.draw(st.integers(min_value=edits[0], max_value=edits[1]))):
        container, key = data.draw(st.sampled_from(places(root)))
        action = data.draw(st.sampled_from(["delete", "replace", "insert", "wrap"]))
        if action == "delete" and container is not root:
            del container[key]
        elif action == "replace":
            container[key] = data.draw(values)
        elif action == "wrap":
            container[key] = [container[key]]
        elif isinstance(container, dict):
            container[data.draw(keys)] = data.draw(values)
        elif isinstance(container, list):
            container.insert(key, data.draw(values))
    return root["tree"]
