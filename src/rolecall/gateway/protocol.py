"""uvicorn's httptools protocol with bounds on what a client may make the gateway hold or wait for.

uvicorn's httptools protocol accepts a header block of any size (it is
buffered whole before the app sees it) and waits forever for headers or a
body that never finish, so a few slow or huge requests could hold memory and
connections for every other client. This subclass, per connection:

- counts the bytes of the request line and headers; past ``max_header_bytes``
  it answers ``431 Request Header Fields Too Large`` and closes;
- closes (with ``408 Request Timeout`` when nothing was answered yet) a
  connection whose headers are not complete ``header_timeout`` after it opened
  or after a request's first byte, or whose body is not complete
  ``body_timeout`` after its headers;
- serves a request that asks to switch protocols (``Upgrade: h2c``, as
  ``curl --http2`` sends; ``websocket``) as the plain HTTP/1.1 request it also
  is, as a server may (RFC 9110, 7.8): the gateway speaks nothing else. The
  parser takes an upgrade request as bodiless and stops there, so its
  ``Content-Length`` body is read here, and a new parser reads what follows;
- refuses what RFC 9112 requires of a request's head and the parser lets through
  (two Host lines, no Host, a transfer coding but chunked) and serves a target in
  absolute form as its path under its authority as Host
  (:mod:`rolecall.gateway._request_head`): checked once per request, on the
  header list, never per header;
- holds at most ``max_connections`` connections (derived from the process's open file
  limit by :func:`rolecall.gateway.server.connection_bound`): one more closes the
  kept-alive connection idle the longest, or, with none idle, is answered ``503`` with
  ``Retry-After`` and closed without its request being read. A connection being served
  is never cut. One count at accept (uvicorn's own set of connections); a request costs
  nothing more.

It all happens before the app runs, so before any key is checked. The limits
are read from the serving config each time a connection opens, so a reload
applies them to new connections.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import httptools
from uvicorn.protocols.http.flow_control import HIGH_WATER_LIMIT
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from rolecall.gateway._request_head import BAD_TARGET, absolute_target, head_fault
from rolecall.gateway.hotpath import DoorCycle, DoorHandler, header_lines
from rolecall.gateway.openai_format import error_body

if TYPE_CHECKING:
    from rolecall.config.schema import GatewayConfig

__all__ = ["limited_protocol"]

LINGER_SECONDS = 1.0  # after a 431: read and drop what the client still sends, then close
_SLASH = ord("/")  # the first byte of a target in origin form


def _error(
    status: bytes, message: str, code: str, kind: str = "invalid_request_error", extra: bytes = b""
) -> bytes:
    body = json.dumps(error_body(message, kind, code)).encode()
    head = (
        b"HTTP/1.1 "
        + status
        + b"\r\ncontent-type: application/json\r\n"
        + extra
        + b"content-length: "
        + str(len(body)).encode()
        + b"\r\nconnection: close\r\n\r\n"
    )
    return head + body


def _no_room(most: int) -> bytes:
    """The answer to a connection past ``most``: try again shortly (the SDKs retry it)."""
    message = (
        f"the gateway holds {most} connections (per worker, from its open file limit) and "
        "has no room for another; retry shortly"
    )
    extra = b"retry-after: 1\r\nx-should-retry: true\r\n"
    return _error(b"503 Service Unavailable", message, "server_busy", "server_error", extra)


class _LimitedHttpTools(HttpToolsProtocol):
    """HttpToolsProtocol plus a header-size limit and header/body deadlines (see module doc)."""

    limits: Callable[[], GatewayConfig]
    doors: Mapping[bytes, DoorHandler]  # exact request targets served by a DoorCycle
    extra_headers: Sequence[tuple[bytes, bytes]]  # on every door response
    extra_head: bytes  # the same as header lines
    max_connections: int | None  # open at once in this process; None: no bound

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        limits = self.limits()
        self._max_header = limits.max_header_bytes
        self._header_timeout = limits.header_timeout
        self._body_timeout = limits.body_timeout
        self._head_parsed = 0  # header lines seen by the parser (the URL: self.url)
        self._head_received = 0  # bytes received while the header block is unfinished
        self._in_head = True  # reading a request line and headers (or waiting for them)
        self._rejected = False
        self._deadline: float | None = None  # loop time the pending deadline falls due
        self._timer: asyncio.TimerHandle | None = None  # fires at or before the deadline
        self._idle = False  # between requests: the deadline is the keep-alive's
        self._upgrade_body: int | None = None  # body bytes still due of an ignored Upgrade

    # ---- deadlines -------------------------------------------------------------------------
    # Each request moves the deadline three times (headers, body, done). Rather than a new
    # timer each time, one timer per connection stays scheduled: moving the deadline later
    # or clearing it only writes ``_deadline``, and the timer, when it fires early, re-arms
    # itself for what is then due. A keep-alive connection thus costs no timer per request;
    # the wait for its next request (uvicorn's keep-alive timeout, a new timer per response
    # in uvicorn) is one more deadline on the same timer.

    def _arm(self, seconds: float) -> None:
        due = self.loop.time() + seconds
        self._deadline = due
        timer = self._timer
        if timer is None or timer.when() > due:
            if timer is not None:
                timer.cancel()
            self._timer = self.loop.call_at(due, self._expired)

    def _disarm(self) -> None:
        self._deadline = None  # a timer still scheduled finds nothing due and stops

    def _expired(self) -> None:
        self._timer = None
        due = self._deadline
        if due is None:
            return
        if due > self.loop.time():  # the deadline moved on since this timer was set
            self._timer = self.loop.call_at(due, self._expired)
            return
        self._deadline = None
        if self.transport.is_closing():
            return
        if self._idle:  # no next request within the keep-alive time: close, as uvicorn does
            self.transport.close()
            return
        if self._can_answer():
            part = "headers" if self._in_head else "body"
            setting = "gateway.header_timeout" if self._in_head else "gateway.body_timeout"
            message = f"request {part} not received in time ({setting})"
            self.transport.write(_error(b"408 Request Timeout", message, "request_timeout"))
        self.transport.close()

    def _can_answer(self) -> bool:
        """Whether an error response may be written now (no other response is under way)."""
        cycle = self.cycle
        if self._in_head or self._rejected:  # the request being read has no cycle yet
            return cycle is None or cycle.response_complete
        return cycle is not None and not cycle.response_started

    # ---- uvicorn's protocol hooks ----------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        most = self.max_connections
        if most is not None and len(self.connections) > most and not self._close_idle():
            # Each one turned away lingers (see _refuse) while they are few; past half the
            # bound more, closing at once frees its descriptor for those being served.
            self._refuse(_no_room(most), linger=len(self.connections) <= most + most // 2)
            return
        self._arm(self._header_timeout)

    def _close_idle(self) -> bool:
        """Close the kept-alive connection idle the longest (its keep-alive deadline falls
        first: the wait is the same for all), as nginx reuses one when out of connections;
        False when none is idle. Walks the connections only when they are past the bound."""
        idle = [
            c
            for c in self.connections
            if isinstance(c, _LimitedHttpTools)
            and c._idle
            and c._deadline is not None
            and not c.transport.is_closing()
        ]
        if not idle:
            return False
        min(idle, key=lambda c: c._deadline or 0.0).transport.close()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        super().connection_lost(exc)
        cycle = self.cycle
        if isinstance(cycle, DoorCycle) and cycle.disconnected:
            cycle.client_gone()

    def data_received(self, data: bytes) -> None:
        if self._rejected:
            return  # lingering after a 431: drop the rest of the request
        if self._upgrade_body is not None:
            self._read_upgrade_body(data)
            return
        # uvicorn's, but for an Upgrade (no other protocol is spoken here: see the module doc).
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            message = "Invalid HTTP request received."
            self.logger.warning(message)
            self.send_400_response(message)
            return
        except httptools.HttpParserUpgrade as exc:
            if not self._rejected:
                self._ignore_upgrade(data[exc.args[0] :])
            return
        if self._in_head and not self._rejected and self.parser is not None:
            # The whole chunk belongs to a header block still unfinished: the parser holds it.
            self._head_received += len(data)
            if self._head_received > self._max_header:
                self._reject()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._head_parsed = self._head_received = 0
        if self._deadline is None or self._idle:
            self._idle = False
            self._arm(self._header_timeout)

    def on_header(self, name: bytes, value: bytes) -> None:
        # uvicorn's on_header (inlined: this runs for every header of every request), counted;
        # its Expect check is made once per request, in on_headers_complete.
        self._head_parsed += len(name) + len(value) + 4  # ": " and CRLF
        # Trailing whitespace is not part of the value (RFC 9110).
        self.headers.append((name.lower(), value.rstrip(b" \t")))

    def on_headers_complete(self) -> None:
        if self._rejected:  # a request pipelined after a refused one: never served
            return
        self._in_head = False
        url = self.url
        if self._head_parsed + len(url) > self._max_header:
            self._reject()
            return
        headers = self.headers
        named = dict(reversed(headers))  # the first of repeated names wins, as in Starlette
        if (
            len(named) != len(headers)
            or b"host" not in named
            or b"transfer-encoding" in named
            or url[0] != _SLASH
        ) and not self._head_allowed(named):
            return
        expect = named.get(b"expect")
        if expect is not None and expect.lower() == b"100-continue":
            self.expect_100_continue = True
        self._arm(self._body_timeout)
        # A query string keeps the door (Claude Code posts to /v1/messages?beta=true).
        path, _, query = self.url.partition(b"?")
        door = self.doors.get(path)
        if door is None or self.parser.get_method() != b"POST" or self.parser.should_upgrade():
            super().on_headers_complete()
        else:
            self._start_door(door, path, query, named)

    def _head_allowed(self, named: dict[bytes, bytes]) -> bool:
        """RFC 9112's rules on the request's head (see the module doc): False once refused.
        A target in absolute form becomes its path, its authority the Host."""
        fault = head_fault(self.headers, self.parser.get_http_version())
        url = self.url
        if fault is None and url[0] != _SLASH and url != b"*":
            target = absolute_target(url)
            if target is None:
                fault = BAD_TARGET
            else:
                self.url, authority = target
                named[b"host"] = authority
                self.headers[:] = [(n, v) for n, v in self.headers if n != b"host"]
                self.headers.insert(0, (b"host", authority))
        if fault is None:
            return True
        self._refuse(_error(*fault))
        return False

    def _start_door(
        self, door: DoorHandler, path: bytes, query: bytes, headers: dict[bytes, bytes]
    ) -> None:
        """What uvicorn's ``on_headers_complete`` does, with a :class:`DoorCycle` (exact path)."""
        http_version = self.parser.get_http_version()
        scope = self.scope
        scope["method"] = "POST"
        if http_version != "1.1":
            scope["http_version"] = http_version
        scope["path"] = self.root_path + path.decode("ascii")
        scope["raw_path"] = self.root_path.encode("ascii") + path
        scope["query_string"] = query
        existing = self.cycle
        self.cycle = DoorCycle(
            door,
            self.extra_headers,
            self.extra_head,
            headers,
            scope=scope,
            transport=self.transport,
            flow=self.flow,
            logger=self.logger,
            access_logger=self.access_logger,
            access_log=self.access_log,
            default_headers=self.server_state.default_headers,
            message_event=asyncio.Event(),
            expect_100_continue=self.expect_100_continue,
            keep_alive=http_version != "1.0" and self.parser.should_keep_alive(),
            on_response=self.on_response_complete,
        )
        if existing is None or existing.response_complete:
            self._start_asgi_task(self.cycle, self.app)
        else:  # pipelined: runs when the response before it is complete
            self.flow.pause_reading()
            self.pipeline.appendleft((self.cycle, self.app))

    def on_body(self, body: bytes) -> None:
        if not self._rejected:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self._rejected:
            return
        self._body_read()
        super().on_message_complete()

    def _body_read(self) -> None:
        """The request's body is in: no deadline until the response is written, or, if it
        was answered before its body was complete, the wait for the next request's."""
        if self._idle:
            self._arm(self.timeout_keep_alive)
        else:
            self._disarm()

    def on_response_complete(self) -> None:
        """uvicorn's, with its keep-alive wait as a deadline (see the deadlines above)."""
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self.flow.resume_reading()
        if self.pipeline:  # a pipelined request was waiting for this response
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
        else:
            self._idle = True
            self._arm(self.timeout_keep_alive)

    # ---- an Upgrade, ignored ---------------------------------------------------------------

    def _ignore_upgrade(self, rest: bytes) -> None:
        """The parser ended an upgrade request at its headers: read its body (``rest`` and
        what follows) into the request's cycle, then parse what comes after anew."""
        self.parser = httptools.HttpRequestParser(self)  # the old one stays in upgrade mode
        names = {name for name, _ in self.headers}
        declared = dict(self.headers).get(b"content-length", b"0")
        if b"transfer-encoding" in names or not declared.isdigit():
            self.send_400_response("An Upgrade request's body needs a Content-Length.")
            return
        if int(declared):
            self.cycle.more_body = True
            self._upgrade_body = int(declared)
            self._arm(self._body_timeout)
        if rest:
            self.data_received(rest)

    def _read_upgrade_body(self, data: bytes) -> None:
        due = self._upgrade_body
        assert due is not None
        body, rest = data[:due], data[due:]
        cycle = self.cycle
        due -= len(body)
        if not cycle.response_complete:  # else answered already (a 413...): dropped
            cycle.body += body
            if len(cycle.body) > HIGH_WATER_LIMIT:
                self.flow.pause_reading()  # the cycle's receive resumes it
        if due:
            self._upgrade_body = due
        else:
            self._upgrade_body = None
            cycle.more_body = False
            self._body_read()
        cycle.message_event.set()
        if rest:
            self.data_received(rest)

    # ---- the header limit ------------------------------------------------------------------

    def _reject(self) -> None:
        """Answer 431, stop reading requests, and close after a short linger."""
        message = (
            f"request headers are larger than {self._max_header} bytes (gateway.max_header_bytes)"
        )
        self._refuse(_error(b"431 Request Header Fields Too Large", message, "headers_too_large"))

    def _refuse(self, answer: bytes, *, linger: bool = True) -> None:
        """Write ``answer`` (a whole response), stop reading requests, and close after a
        short linger (at once without ``linger``)."""
        self._rejected = True
        self._disarm()
        if self._can_answer():
            self.transport.write(answer)
        if not linger:
            self.transport.close()
            return
        # Closing at once would reset the connection under a client still sending, and it
        # would never read the answer; so half-close, drop what comes, and close soon (or
        # when the client closes).
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER_SECONDS, self.transport.close)


def limited_protocol(
    limits: Callable[[], GatewayConfig],
    doors: Mapping[str, DoorHandler] | None = None,
    extra_headers: Sequence[tuple[bytes, bytes]] = (),
    max_connections: int | None = None,
) -> type[asyncio.Protocol]:
    """The protocol class for uvicorn's ``http=`` setting, reading limits from ``limits()``.

    ``doors`` maps paths to the handlers that serve a ``POST`` there directly
    (:mod:`rolecall.gateway.hotpath`); ``extra_headers`` go on their responses;
    ``max_connections`` bounds the connections open at once (None: no bound).
    """
    attributes = {
        "max_connections": max_connections,
        "limits": staticmethod(limits),
        "doors": {path.encode("ascii"): handler for path, handler in (doors or {}).items()},
        "extra_headers": tuple(extra_headers),
        "extra_head": header_lines(extra_headers),
    }
    return type("LimitedHttpToolsProtocol", (_LimitedHttpTools,), attributes)
