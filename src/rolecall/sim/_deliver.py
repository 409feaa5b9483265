"""Writing an answer: one JSON body, or the vendor's event stream with its scripted failures."""

from __future__ import annotations

import asyncio

from rolecall.sim._common import Answer, Ctx, Dialect, dumps, split_pieces
from rolecall.sim._http import Exchange

__all__ = ["deliver"]


async def deliver(
    ex: Exchange,
    dialect: Dialect,
    ctx: Ctx,
    answer: Answer,
    *,
    chunk_delay: float = 0.0,
    malformed: bool = False,
    fail_after: int | None = None,
    stall_after: int | None = None,
    stall: float = 0.0,
    keepalive: bytes | None = None,
) -> None:
    """Send ``answer``; a stream stops after ``fail_after`` pieces (error event or cut
    connection) or sends no content for ``stall`` seconds after ``stall_after`` pieces
    (silent, or with ``keepalive`` sent now and then)."""
    if not ctx.stream:
        if chunk_delay > 0:  # a whole answer takes as long to write as its stream
            await asyncio.sleep(chunk_delay * len(split_pieces(answer.text)))
        body = dialect.malformed_body(ctx) if malformed else dumps(dialect.answer(ctx, answer))
        headers = [("content-type", "application/json"), *dialect.headers(ctx)]
        await ex.respond(200, headers, body)
        return
    headers = [
        ("content-type", dialect.stream_content_type),
        ("cache-control", "no-cache"),
        *dialect.headers(ctx),
    ]
    ex.start(200, headers)
    if malformed:
        ex.send(dialect.malformed_event(ctx))
        await ex.end()
        return
    for event in dialect.stream_head(ctx, answer):
        ex.send(event)
    pieces = [] if answer.filtered else split_pieces(answer.text)
    for sent, piece in enumerate(pieces):
        if fail_after is not None and sent >= fail_after:
            break
        if sent == stall_after and await ex.keep_quiet(stall, keepalive):
            return
        if chunk_delay > 0:
            await ex.flush()
            await asyncio.sleep(chunk_delay)
        await ex.stream(dialect.stream_piece(ctx, answer, piece, sent))
    if fail_after is not None:
        error_event = dialect.stream_error_event(ctx)
        if error_event is None:
            await ex.cut()
            return
        ex.send(error_event)
        await ex.end()
        return
    stalled = stall_after is not None and stall_after >= len(pieces)
    if stalled and await ex.keep_quiet(stall, keepalive):
        return
    for event in dialect.stream_tail(ctx, answer):
        ex.send(event)
    await ex.end()
