"""OpenAI Responses wire shapes: a router reply as a response object, or as its SSE events.

Pure functions and one event builder over dicts: no I/O, no routing. A reply's
output is items, in the order a vendor produced them: reasoning (as
``reasoning_text`` content, the vendor's own thinking), the assistant message
(``output_text``) and one ``function_call`` item per tool call.

A request that asks for a reasoning summary (``reasoning.summary``: auto, concise or
detailed) gets the thinking as each reasoning item's ``summary`` instead
(``summary_text``, streamed with the ``reasoning_summary_*`` events), as OpenAI's
reasoning models answer, with no ``reasoning_text`` content: Codex CLI shows a summary
and not raw reasoning by default. The summary is the provider's thinking text itself,
not a shorter text written from it: Claude 4 models' thinking (Anthropic's API and
Bedrock) and Gemini's thought parts are summaries of the model's reasoning already, and
an OpenAI-compatible server's ``reasoning_content`` is passed on as it came. A reply cut by
the token limit is ``incomplete`` (``incomplete_details.reason``
``max_output_tokens``), not ``completed``.

A stream is the event sequence OpenAI's SDK assembles (its ``responses.stream``
helper checks it): ``response.created``, ``response.in_progress``, then per item
``output_item.added``, its content events and ``output_item.done``, and
``response.completed`` (``response.incomplete`` when cut short) with the whole
response; every event carries a ``sequence_number``. A failure after content
ends the stream with ``response.failed``, whose ``error`` names what happened.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from rolecall.gateway._responses_items import (
    call_item,
    carrying,
    fill_reasoning,
    in_namespace,
    message_item,
    reasoning_item,
    summary_part,
    text_part,
)
from rolecall.gateway._stream_hold import HeldBlock, HeldText, Holding
from rolecall.types import Chunk, ReasoningBlock, Reply, ToolCallDelta, Usage

__all__ = [
    "ResponseEvents",
    "response_body",
    "response_id",
    "usage_body",
]

# Vendor stop reasons that cut an answer short -> incomplete_details.reason.
_INCOMPLETE = {
    "length": "max_output_tokens",
    "max_tokens": "max_output_tokens",
    "MAX_TOKENS": "max_output_tokens",
    "content_filter": "content_filter",
    "SAFETY": "content_filter",
    "refusal": "content_filter",
}


def response_id(task_id: str) -> str:
    """A response's id names its task, so ``rolecall runs show`` finds it."""
    return f"resp_{task_id}"


def usage_body(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.input_tokens,
        "input_tokens_details": {
            "cached_tokens": usage.cached_input_tokens,
            "cache_write_tokens": usage.cache_creation_input_tokens,
        },
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.input_tokens + usage.output_tokens,
    }


def _envelope(
    rid: str,
    created_at: int,
    model: str,
    echo: Mapping[str, Any],
    status: str,
    output: list[dict[str, Any]],
) -> dict[str, Any]:
    """A response object with no usage yet: what every lifecycle event carries."""
    return {
        "id": rid,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": echo.get("instructions"),
        "max_output_tokens": echo.get("max_output_tokens"),
        "metadata": echo.get("metadata", {}),
        "model": model,
        "output": output,
        "parallel_tool_calls": echo.get("parallel_tool_calls", True),
        "previous_response_id": None,
        "reasoning": echo.get("reasoning", {"effort": None, "summary": None}),
        "store": False,  # the gateway keeps no response for later retrieval
        "temperature": echo.get("temperature"),
        "text": echo.get("text", {"format": {"type": "text"}}),
        "tool_choice": echo.get("tool_choice", "auto"),
        "tools": echo.get("tools", []),
        "top_p": echo.get("top_p"),
        "truncation": echo.get("truncation", "disabled"),
        "usage": None,
        "user": echo.get("user"),
    }


def _finished(body: dict[str, Any], reply: Reply) -> dict[str, Any]:
    reason = _INCOMPLETE.get(reply.finish_reason or "")
    body["status"] = "incomplete" if reason else "completed"
    body["incomplete_details"] = {"reason": reason} if reason else None
    body["model"] = reply.model
    body["usage"] = usage_body(reply.usage)
    return body


def response_body(
    reply: Reply,
    rid: str,
    created_at: int,
    echo: Mapping[str, Any],
    namespaced: Mapping[str, tuple[str, str]] | None = None,
    *,
    carry: bool = False,
    summarize: bool = False,
) -> dict[str, Any]:
    """The whole response object for a router reply.

    ``namespaced``: provider function names that stand for a namespace tool's
    functions, each a call's ``(namespace, name)`` for the client. ``carry``: the client
    asked for ``reasoning.encrypted_content``, which then carries the signed reasoning.
    ``summarize``: the client asked for a reasoning summary, which the thinking then is.
    """
    cut = reply.finish_reason in _INCOMPLETE
    output: list[dict[str, Any]] = []
    blocks = reply.reasoning_blocks if carry else ()
    if reply.reasoning or blocks:
        item = reasoning_item(f"rs_{rid[5:]}_0", reply.reasoning, "completed", summarize)
        output.append(carrying(item, blocks))
    if reply.text or not reply.tool_calls:
        status = "incomplete" if cut else "completed"
        output.append(message_item(f"msg_{rid[5:]}_{len(output)}", reply.text, status))
    for call in reply.tool_calls:
        item_id = f"fc_{rid[5:]}_{len(output)}"
        item = call_item(item_id, call.id, call.name, call.arguments, "completed")
        output.append(in_namespace(item, namespaced or {}))
    body = _envelope(rid, created_at, reply.model, echo, "completed", output)
    return _finished(body, reply)


class ResponseEvents:
    """Router chunks in, Responses stream events out (dicts, each with its sequence number).

    Items are opened as their content arrives and closed when another kind of
    content begins, or at the end. A tool call's item stays open to the end (its
    arguments still stream): an OpenAI-compatible server may interleave two calls'
    pieces, so what comes after the call began (later calls, text, reasoning) is
    held and sent once it is closed, each item whole, in the order it began
    (:class:`~rolecall.gateway._stream_hold.Holding`). The finished items are the
    ``output`` of the final event, so it matches every ``output_item.done``.

    With ``summarize``, a reasoning item's text is its summary, streamed with OpenAI's
    summary events (``reasoning_summary_part.added``, ``reasoning_summary_text.delta``,
    ``reasoning_summary_text.done``, ``reasoning_summary_part.done``) in place of the
    ``reasoning_text`` content events.

    With ``carry``, each reasoning item's ``encrypted_content`` carries the signed
    blocks that ended while it was open; a block that ends with no reasoning item open
    (a redacted block, a signed function call) gets an item of its own, and one that
    ended while a tool call was held, an item after the rest.
    """

    def __init__(
        self,
        rid: str,
        created_at: int,
        model: str,
        echo: Mapping[str, Any],
        namespaced: Mapping[str, tuple[str, str]] | None = None,
        *,
        carry: bool = False,
        summarize: bool = False,
    ) -> None:
        self.rid = rid
        self.created_at = created_at
        self.model = model
        self.echo = echo
        self.namespaced = namespaced or {}
        self.output: list[dict[str, Any]] = []
        self._sequence = 0
        self._open: int | None = None  # output index of the item receiving content
        self._pieces: list[str] = []  # the open item's text (or arguments) so far
        self._calls: dict[int, int] = {}  # a tool call's index in the chunks -> output index
        self._holding: Holding | None = None  # set once a tool call's item is open
        self._carry = carry
        self._summarize = summarize  # reasoning goes out as each item's summary
        self._signed: list[ReasoningBlock] = []  # ended since a reasoning item last closed
        self._thought: list[str] = []  # reasoning streamed since the last signed block ended

    def _event(self, kind: str, **fields: Any) -> dict[str, Any]:
        event = {"type": kind, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        return event

    def _lifecycle(self, kind: str, status: str) -> dict[str, Any]:
        body = _envelope(self.rid, self.created_at, self.model, self.echo, status, [])
        return self._event(kind, response=body)

    def start(self) -> list[dict[str, Any]]:
        return [
            self._lifecycle("response.created", "in_progress"),
            self._lifecycle("response.in_progress", "in_progress"),
        ]

    def add(self, chunk: Chunk) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        if self._holding is not None:  # the open call's pieces still stream as they come
            self._sign(chunk)
            for delta in self._holding.add(chunk):
                events += self._call(delta)
            return events
        if chunk.reasoning:
            events += self._text("reasoning", chunk.reasoning)
        if self._sign(chunk) and (
            self._open is None or self.output[self._open]["type"] != "reasoning"
        ):
            events += self._bare_reasoning()
        if chunk.text:
            events += self._text("message", chunk.text)
        if chunk.tool_calls:
            first, *rest = chunk.tool_calls
            events += self._call(first)
            self._holding = Holding(first)
            for delta in self._holding.add(Chunk(tool_calls=tuple(rest))):
                events += self._call(delta)
        return events

    def _sign(self, chunk: Chunk) -> bool:
        """Keep the signed block ``chunk`` ends, with the text it signs (streamed since the
        block before); whether it ended one."""
        if not self._carry:
            return False
        if chunk.reasoning:
            self._thought.append(chunk.reasoning)
        block = chunk.reasoning_block
        if block is None:
            return False
        if not block.redacted:
            block = replace(block, text="".join(self._thought))
            self._thought = []
        self._signed.append(block)
        return True

    def _bare_reasoning(self) -> list[dict[str, Any]]:
        """An item of no text for the signed blocks no reasoning item took."""
        events = self._close("completed")
        index = len(self.output)
        item = reasoning_item(self._item_id("rs"), None, "in_progress", self._summarize)
        self.output.append(item)
        events.append(
            self._event("response.output_item.added", output_index=index, item=dict(item))
        )
        item["status"] = "completed"
        carrying(item, self._signed)
        self._signed = []
        done = self._event("response.output_item.done", output_index=index, item=dict(item))
        return [*events, done]

    def _item_id(self, prefix: str) -> str:
        return f"{prefix}_{self.rid[5:]}_{len(self.output)}"

    def _opened(self, item: dict[str, Any]) -> list[dict[str, Any]]:
        events = self._close("completed")
        self._open = len(self.output)
        self.output.append(item)
        # A copy: the item changes as content arrives, maybe before this event is sent.
        added = self._event("response.output_item.added", output_index=self._open, item=dict(item))
        return [*events, added]

    def _text(self, kind: str, text: str) -> list[dict[str, Any]]:
        events = self._open_text(kind)
        self._pieces.append(text)
        where = self._where()
        if kind == "message":
            events.append(
                self._event("response.output_text.delta", **where, delta=text, logprobs=[])
            )
        elif self._summarize:
            events.append(
                self._event(
                    "response.reasoning_summary_text.delta", **self._summary_where(), delta=text
                )
            )
        else:
            events.append(self._event("response.reasoning_text.delta", **where, delta=text))
        return events

    def _open_text(self, kind: str) -> list[dict[str, Any]]:
        """A message or reasoning item receiving text, opened unless it is the open one."""
        if self._open is not None and self.output[self._open]["type"] == kind:
            return []
        if kind == "message":
            item, part = message_item(self._item_id("msg"), None, "in_progress"), text_part("")
        else:
            item = reasoning_item(self._item_id("rs"), None, "in_progress", self._summarize)
            part = {"type": "reasoning_text", "text": ""}
        events = self._opened(item)
        if kind == "reasoning" and self._summarize:
            events.append(self._summary_part_event("added", ""))
        else:
            events.append(self._part_event("response.content_part.added", part))
        return events

    def _where(self) -> dict[str, Any]:
        assert self._open is not None
        item = self.output[self._open]
        return {"item_id": item["id"], "output_index": self._open, "content_index": 0}

    def _part_event(self, kind: str, part: dict[str, Any]) -> dict[str, Any]:
        return self._event(kind, **self._where(), part=part)

    def _summary_where(self) -> dict[str, Any]:
        """Where a summary event points: the open reasoning item's one summary part."""
        assert self._open is not None
        item = self.output[self._open]
        return {"item_id": item["id"], "output_index": self._open, "summary_index": 0}

    def _summary_part_event(self, stage: str, text: str) -> dict[str, Any]:
        kind = f"response.reasoning_summary_part.{stage}"
        return self._event(kind, **self._summary_where(), part=summary_part(text))

    def _call(self, delta: ToolCallDelta) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        index = self._calls.get(delta.index)
        if index is None:  # a new call (its id and name come with its first piece)
            call_id = delta.id or f"call_{delta.index}"  # as the router's reply names it
            item = call_item(self._item_id("fc"), call_id, delta.name or "", "", "in_progress")
            events += self._opened(in_namespace(item, self.namespaced))
            index = self._calls[delta.index] = len(self.output) - 1
        elif delta.name:  # a name in pieces: whole once they are joined
            item = self.output[index]
            item["name"] += delta.name
            in_namespace(item, self.namespaced)
        item = self.output[index]
        if delta.arguments:  # the open call's (no other call's item opens before it closes)
            self._pieces.append(delta.arguments)
            events.append(
                self._event(
                    "response.function_call_arguments.delta",
                    item_id=item["id"],
                    output_index=index,
                    delta=delta.arguments,
                )
            )
        return events

    def _close(self, status: str) -> list[dict[str, Any]]:
        """Events that finish the open item, which then holds its whole content."""
        if self._open is None:
            return []
        index, item = self._open, self.output[self._open]
        text, self._pieces = "".join(self._pieces), []
        item["status"] = status
        events: list[dict[str, Any]] = []
        if item["type"] == "function_call":
            item["arguments"] = text
            events.append(
                self._event(
                    "response.function_call_arguments.done",
                    item_id=item["id"],
                    output_index=index,
                    name=item["name"],
                    arguments=text,
                )
            )
        elif item["type"] == "message":
            part = text_part(text)
            events.append(
                self._event("response.output_text.done", **self._where(), text=text, logprobs=[])
            )
            events.append(self._part_event("response.content_part.done", part))
            item["content"] = [part]
        elif self._summarize:
            where = self._summary_where()
            events.append(self._event("response.reasoning_summary_text.done", **where, text=text))
            events.append(self._summary_part_event("done", text))
            fill_reasoning(item, text, summarize=True)
            carrying(item, self._signed)
            self._signed = []
        else:
            part = {"type": "reasoning_text", "text": text}
            events.append(self._event("response.reasoning_text.done", **self._where(), text=text))
            events.append(self._part_event("response.content_part.done", part))
            item["content"] = [part]
            carrying(item, self._signed)
            self._signed = []
        self._open = None
        done = self._event("response.output_item.done", output_index=index, item=dict(item))
        return [*events, done]

    def _release(self) -> list[dict[str, Any]]:
        """What was held while a tool call's item was open, each item whole, in the order
        it began (the last one left open, for :meth:`finish` to close)."""
        holding, self._holding = self._holding, None
        events: list[dict[str, Any]] = []
        for held in holding.later if holding is not None else ():
            if isinstance(held, HeldBlock):  # kept by _sign as it came
                continue
            events += self._close("completed")
            if isinstance(held, HeldText):
                events += self._text(
                    "message" if held.kind == "text" else held.kind, "".join(held.pieces)
                )
            else:
                events += self._call(held.joined)
        return events

    def finish(self, reply: Reply) -> list[dict[str, Any]]:
        """The events that end a stream whose reply is whole: completed, or incomplete."""
        cut = reply.finish_reason in _INCOMPLETE
        events = self._release()
        events += self._close("incomplete" if cut else "completed")
        if self._signed:
            events += self._bare_reasoning()
        if all(item["type"] == "reasoning" for item in self.output):
            # No answer but reasoning: still one (empty) message, as OpenAI sends.
            events += self._open_text("message")
            events += self._close("incomplete" if cut else "completed")
        body = _envelope(
            self.rid, self.created_at, reply.model, self.echo, "completed", self.output
        )
        body = _finished(body, reply)
        kind = "response.incomplete" if body["status"] == "incomplete" else "response.completed"
        return [*events, self._event(kind, response=body)]

    def fail(self, message: str) -> dict[str, Any]:
        """The event that ends a stream which failed after sending content."""
        if self._open is not None:  # what arrived stays visible, marked incomplete
            item = self.output[self._open]
            text = "".join(self._pieces)
            if item["type"] == "function_call":
                item["arguments"] = text
            elif item["type"] == "message":
                item["content"] = [text_part(text)]
            else:
                fill_reasoning(item, text, self._summarize)
            item["status"] = "incomplete"
            self._open = None
        holding, self._holding = self._holding, None
        for held in holding.later if holding is not None else ():  # held: kept too
            if isinstance(held, HeldBlock):  # the stream failed: no item carries it
                continue
            if isinstance(held, HeldText) and held.kind == "text":
                item = message_item(self._item_id("msg"), "".join(held.pieces), "incomplete")
            elif isinstance(held, HeldText):
                text = "".join(held.pieces)
                item = reasoning_item(self._item_id("rs"), text, "incomplete", self._summarize)
            else:
                call = held.joined
                call_id = call.id or f"call_{call.index}"
                item = call_item(
                    self._item_id("fc"), call_id, held.name, call.arguments, "incomplete"
                )
                item = in_namespace(item, self.namespaced)
            self.output.append(item)
        body = _envelope(self.rid, self.created_at, self.model, self.echo, "failed", self.output)
        body["error"] = {"code": "server_error", "message": message}
        return self._event("response.failed", response=body)
