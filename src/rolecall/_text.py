"""Text from providers, models and stores made safe to show on a terminal.

A name, model id or error message can hold what a terminal acts on instead of
showing: C0 and C1 controls and DEL (colours, cursor moves, window titles, a
carriage return over the line) and the bidirectional overrides and isolates that
show the text after them reversed. Every front end that prints such text (the
CLI, the workflow's progress and summary) passes it through :func:`visible`.
"""

from __future__ import annotations

import re

__all__ = ["UNSHOWN_IN_JSON", "visible"]

_BIDI = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_UNSHOWN = re.compile(f"[\x00-\x1f\x7f-\x9f{_BIDI}]")
_UNSHOWN_BUT_NEWLINE = re.compile(f"[\x00-\x09\x0b-\x1f\x7f-\x9f{_BIDI}]")
# The rest of them in JSON text (which escapes C0 itself), to write as \u escapes: they
# can only stand inside its strings.
UNSHOWN_IN_JSON = re.compile(f"[\x7f-\x9f{_BIDI}]")


def visible(text: str, *, newlines: bool = False) -> str:
    """``text`` safe to print on a terminal: each control character (and, unless
    ``newlines``, each line break) as its escape, e.g. ``\\x1b``, ``\\n``, ``\\u202e``."""
    pattern = _UNSHOWN_BUT_NEWLINE if newlines else _UNSHOWN
    return pattern.sub(lambda match: match.group().encode("unicode_escape").decode(), text)
