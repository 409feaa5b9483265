"""The ``/ui`` dashboard: providers by role, trends, live health, advice and recent runs.

One static page (``static/``: HTML, CSS and plain JS that draws its charts as inline
SVG; no build step, nothing fetched from elsewhere, so it works offline) over the
JSON endpoints of :mod:`rolecall.dashboard.api`. ``rolecall serve`` mounts both
beside the API (:mod:`rolecall.dashboard.routes`); ``rolecall dashboard`` serves them
from the metrics store alone with the standard library (:mod:`rolecall.dashboard.server`).
"""

from __future__ import annotations

from importlib.resources import files

__all__ = ["ASSETS", "PAGE_HEADERS", "asset"]

# name under /ui/ -> (file in static/, content type)
ASSETS = {
    "": ("index.html", "text/html; charset=utf-8"),
    "app.js": ("app.js", "text/javascript; charset=utf-8"),
    "style.css": ("style.css", "text/css; charset=utf-8"),
}

# Sent with the page and its assets: only this server's own script, styles and data may
# load (a recorded name that slipped past the page's escaping could run nothing), no
# other site may frame the page, and no type is guessed from the content.
PAGE_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; "
        "style-src-attr 'unsafe-inline'; connect-src 'self'; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}


def asset(name: str) -> tuple[bytes, str] | None:
    """(body, content type) of the page asset served at ``/ui/<name>``, or None."""
    entry = ASSETS.get(name)
    if entry is None:
        return None
    filename, content_type = entry
    return files("rolecall.dashboard").joinpath("static", filename).read_bytes(), content_type
