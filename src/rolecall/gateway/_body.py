"""Reading a chat request's body: size, bytes held across requests, and JSON nesting.

A request holds a few times its body in memory while it runs (bytes, parsed
JSON, the provider's request), so besides the per-request cap
(``gateway.max_body_bytes``) the bytes of all bodies in flight are bounded
(``gateway.max_inflight_bytes``): past it a request is answered 503 with
``Retry-After`` instead of being read. A body is counted from the start of its
read until its request finishes; one request alone is always admitted, so a
small budget never locks every request out.

A body with a ``Content-Encoding`` (gzip...) is not inflated, so no small body can
expand past the limits; it is refused with a 415 saying so.

JSON nested deeper than :data:`MAX_DEPTH` is refused with a 400: Python's
decoder and every recursive walk after it (schemas, messages) would otherwise
fail with a RecursionError.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import ClientDisconnect

from rolecall._json import loads
from rolecall.gateway import openai_format as fmt
from rolecall.gateway._responses import HTTPError

if TYPE_CHECKING:
    from rolecall.config.schema import GatewayConfig
    from rolecall.gateway._exchange import DoorRequest

__all__ = ["MAX_DEPTH", "BodyBudget", "BodyReader", "read_json"]

MAX_DEPTH = 100


class BodyBudget:
    """Bytes of request bodies held now, across all requests of this process.

    ``workers``: the processes of one ``rolecall serve`` serving the port; each holds its
    share of ``gateway.max_inflight_bytes``, so that the limit bounds the whole gateway's
    memory, as it says, not each worker's.
    """

    def __init__(self, workers: int = 1) -> None:
        self.held = 0
        self.workers = workers

    def take(self, size: int, limit: int) -> None:
        """Hold ``size`` more bytes, or raise the 503 that says the gateway is full."""
        share = limit // self.workers
        if self.held and self.held + size > share:
            whose = (
                f"this worker of {self.workers} holds its share, {share}"
                if self.workers > 1
                else f"the gateway holds {limit}"
            )
            raise HTTPError(
                503,
                fmt.error_body(
                    f"{whose} bytes of request bodies already "
                    "(gateway.max_inflight_bytes); retry shortly",
                    "server_error",
                    "server_busy",
                ),
                # What the SDKs read: retry (whatever the status), after a second.
                {"retry-after": "1", "x-should-retry": "true"},
            )
        self.held += size

    def give(self, size: int) -> None:
        self.held -= size


class BodyReader:
    """One request's read: what it holds of the budget, given back by :meth:`release`."""

    __slots__ = ("budget", "held")

    def __init__(self, budget: BodyBudget) -> None:
        self.budget = budget
        self.held = 0

    def hold(self, size: int, limit: int) -> None:
        self.budget.take(size, limit)
        self.held += size

    def release(self) -> None:
        held, self.held = self.held, 0
        if held:
            self.budget.give(held)


async def read_json(request: DoorRequest, limits: GatewayConfig, reader: BodyReader) -> Any:
    """The body as JSON; 413 past ``max_body_bytes``, 503 when the budget is full, 400 if bad;
    ``ClientDisconnect`` when the client leaves before sending it all."""
    limit = limits.max_body_bytes
    declared = request.header(b"content-length") or ""
    expected = int(declared) if declared.isdigit() else None
    if expected is not None:
        if expected > limit:
            raise _too_large(limit)
        reader.hold(expected, limits.max_inflight_bytes)
    chunks: list[bytes] = []
    size = 0
    receive = request.receive
    while True:  # ASGI's body messages (a chunked body's too), as Starlette's stream() reads them
        message = await receive()
        kind = message["type"]
        if kind == "http.disconnect":
            raise ClientDisconnect()
        if kind != "http.request":
            continue
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            if expected is None:
                reader.hold(len(chunk), limits.max_inflight_bytes)
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    try:
        return _parse(chunks[0] if len(chunks) == 1 else b"".join(chunks))
    except HTTPError:
        # Read only when the body is refused: a compressed body is never valid JSON.
        encoding = request.header(b"content-encoding")
        if encoding and encoding.strip().lower() != "identity":
            raise _encoded(encoding) from None
        raise


def _parse(body: bytes) -> Any:
    try:
        value = loads(body)
    except RecursionError:
        raise _too_deep() from None
    except ValueError as exc:
        message = f"request body is not valid JSON: {exc}"
        raise HTTPError(400, fmt.error_body(message, "invalid_request_error")) from None
    # Only a body with more brackets than the limit can nest past it: most skip the walk.
    if body.count(b"[") + body.count(b"{") > MAX_DEPTH and _deeper_than(value, MAX_DEPTH):
        raise _too_deep()
    return value


def _deeper_than(value: Any, limit: int) -> bool:
    """True when lists and objects in ``value`` nest more than ``limit`` levels (no recursion)."""
    if not isinstance(value, dict | list):
        return False
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def _too_deep() -> HTTPError:
    message = (
        f"request body nests JSON deeper than {MAX_DEPTH} levels; flatten it "
        "(response_format schemas and tool parameters included)"
    )
    return HTTPError(400, fmt.error_body(message, "invalid_request_error", "too_deeply_nested"))


def _encoded(encoding: str) -> HTTPError:
    message = (
        f"request body has Content-Encoding {encoding!r}: the gateway reads request bodies "
        "as sent, uncompressed; send the JSON without Content-Encoding"
    )
    return HTTPError(415, fmt.error_body(message, "invalid_request_error", "unsupported_encoding"))


def _too_large(limit: int) -> HTTPError:
    return HTTPError(
        413,
        fmt.error_body(
            f"request body is larger than {limit} bytes (gateway.max_body_bytes)",
            "invalid_request_error",
            "request_too_large",
        ),
    )
