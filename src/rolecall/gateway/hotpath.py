"""The front doors served straight from the HTTP protocol, without the ASGI app in between.

A ``POST`` to a door (chat completions, Messages, Responses) is most of what the
gateway serves, and on it the ASGI layers (the app's dispatch, the response's
``__call__``, two ``send`` messages, headers and body written as two socket
writes) cost time on every call. :class:`DoorCycle` is uvicorn's request cycle
(same body delivery, disconnect, flow control, keep-alive, pipelining and 100
Continue) that calls the door's handler itself (a ``DoorRequest`` in, a
``Reply`` out: ``gateway._exchange``) and writes the whole response (status
line, the server's and the reply's header lines, body) with one
``transport.write``: on loopback each write wakes the peer, so one write
instead of two is one wake-up less. A streamed response (SSE) is still sent
through the cycle's ASGI ``send``.

The protocol (:mod:`rolecall.gateway.protocol`) picks this cycle when the
request's method and path (a query string aside) name a door, after every header limit has
been checked; the door's handler reads the body with the same budget, size and
depth limits as under the ASGI app. Every other request goes to the ASGI app.

A door waits for its answer watching for the client to leave; under the ASGI app
that is a task awaiting the next ``receive`` (the disconnect) per request. A
door cycle offers instead, in its scope under :data:`WATCH_DISCONNECT`, a
function that registers a callback the protocol calls when the connection is lost.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import (
    HEADER_VALUE_RE,
    STATUS_LINE,
    RequestResponseCycle,
)
from uvicorn.protocols.utils import get_client_addr

from rolecall.gateway._door import WATCH_DISCONNECT, ClientStalled, DoorHandler
from rolecall.gateway._exchange import DoorRequest, Reply

__all__ = ["DoorCycle", "DoorHandler", "header_lines"]


def header_lines(headers: Iterable[tuple[bytes, bytes]]) -> bytes:
    lines: list[bytes] = []
    for name, value in headers:
        if HEADER_VALUE_RE.search(value):
            raise RuntimeError("Invalid HTTP header value.")
        lines += (name, b": ", value, b"\r\n")
    return b"".join(lines)


class DoorCycle(RequestResponseCycle):
    """uvicorn's cycle running a door handler (see the module doc)."""

    # The server's default header lines (date, server) for the list uvicorn made last (a new
    # one each second, as the date changes): checked and joined once, not per response.
    _defaults: ClassVar[tuple[object, bytes]] = (None, b"")

    def __init__(
        self,
        handler: DoorHandler,
        extra_headers: Sequence[tuple[bytes, bytes]],
        extra_head: bytes,
        headers: dict[bytes, bytes],
        *args: Any,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.handler = handler
        self.extra_headers = extra_headers
        self.extra_head = extra_head  # extra_headers as header lines
        self.headers = headers  # by name, the first of repeated names (the protocol's)
        self._on_gone: Callable[[], None] | None = None
        self.scope[WATCH_DISCONNECT] = self.watch_disconnect  # type: ignore[literal-required]

    def watch_disconnect(self, on_gone: Callable[[], None] | None) -> None:
        """Call ``on_gone`` (at once if it has already happened) when the client leaves before
        the response is complete; None stops watching. What a ``receive`` after the body does,
        without a task awaiting it."""
        self._on_gone = on_gone
        if on_gone is None or self.response_complete:
            return
        if self.disconnected:
            self.client_gone()
        else:
            self.flow.resume_reading()  # as ``receive`` does: a paused read sees no close

    def client_gone(self) -> None:
        """The protocol's news that the connection was lost mid-request."""
        on_gone, self._on_gone = self._on_gone, None
        if on_gone is not None:
            on_gone()

    async def run_asgi(self, app: Any) -> None:
        """Run the door's handler (``app``, the ASGI app, is not called: see the module doc)."""
        try:
            scope: Any = self.scope  # uvicorn's TypedDict for Starlette's mapping
            receive: Any = self.receive
            reply = await self.handler(DoorRequest(scope, receive, self.headers))
            if isinstance(reply, Reply):
                await self._send_whole(reply)
            else:  # a stream
                if self.extra_headers:
                    reply.raw_headers.extend(self.extra_headers)
                await reply(scope, receive, self.send)  # type: ignore[arg-type]
        except ClientStalled:  # logged by the stream: close the connection it stalls
            self.transport.close()
        except asyncio.CancelledError:
            # The server stopped with this request still reading its body or sending its
            # answer (a forced stop; one waiting for a provider was answered 503 already):
            # its connection closes, which clients retry; no traceback, no plain-text 500.
            self.logger.warning("a request was still in flight when the gateway stopped")
            self.transport.close()
            raise
        except BaseException as exc:
            self.logger.error("Exception in a gateway door", exc_info=exc)
            if not self.response_started:
                await self.send_500_response()
            else:
                self.transport.close()
        else:
            if not self.response_complete and not self.disconnected:
                self.logger.error("a gateway door returned without completing its response")
                self.transport.close()
        finally:
            self.on_response = lambda: None

    async def _send_whole(self, reply: Reply) -> None:
        """Status line, headers and body in one write, then the cycle's completion."""
        if self.flow.write_paused and not self.disconnected:
            await self.flow.drain()
        if self.disconnected:
            return
        status = reply.status
        if self.access_log:
            self.access_logger.info(
                '%s - "%s %s HTTP/%s" %d',
                get_client_addr(self.scope),
                self.scope["method"],
                self.scope["path"],
                self.scope["http_version"],
                status,
            )
        defaults = self.default_headers
        seen, block = DoorCycle._defaults
        if seen is not defaults:
            block = header_lines(defaults)
            DoorCycle._defaults = (defaults, block)
        content = [STATUS_LINE[status], block, reply.head, self.extra_head]
        if not self.keep_alive:
            content.append(b"connection: close\r\n")
        content += (b"\r\n", reply.body)
        self.response_started = True
        self.waiting_for_100_continue = False
        self.transport.write(b"".join(content))
        self.response_complete = True
        self.message_event.set()
        if not self.keep_alive:
            self.transport.close()
        self.on_response()
