"""Anthropic messages on the wire."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from rolecall.sim._anthropic_content import (
    check_request,
    content_blocks,
    enrich,
    thinking_before,
    thinking_block,
    tool_id,
    tool_input_pieces,
)
from rolecall.sim._claude_models import TEMPERATURE_WITH_TOP_P, max_output, refuses_both_samplers
from rolecall.sim._common import (
    SIM_CALL_ID_PREFIX,
    Answer,
    Ctx,
    Dialect,
    Route,
    array_error,
    bad_gateway,
    count_words,
    json_response,
    key_suffix,
    new_id,
    retry_after_header,
    rfc3339_in,
    texts_of,
)
from rolecall.sim._http import HttpRequest, Rendered
from rolecall.sim.faults import Fault

__all__ = ["AnthropicDialect"]

CONTEXT_WINDOW = 200000


def _error(
    status: int,
    type_: str,
    message: str,
    headers: Sequence[tuple[str, str]] = (),
    details: dict[str, Any] | None = None,
) -> Rendered:
    error: dict[str, Any] = {"type": type_, "message": message}
    if details is not None:
        error["details"] = details
    body = {"type": "error", "error": error, "request_id": new_id("req_")}
    return json_response(status, body, headers)


class AnthropicDialect(Dialect):
    name = "anthropic"

    def __init__(self) -> None:
        self._cache_seen: set[str] = set()  # prompt prefixes written to the "cache"

    def base_url(self, root: str) -> str:
        return root

    def route(self, method: str, path: str) -> Route | None:
        if method == "POST" and path == "/v1/messages":
            return Route("chat")
        if method == "GET" and path == "/v1/models":
            return Route("models")
        if method == "GET" and path.startswith("/v1/models/"):
            return Route("model", model=path[len("/v1/models/") :])
        return None

    def api_key(self, request: HttpRequest) -> str | None:
        key = request.headers.get("x-api-key", "").strip()
        if key:
            return key
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return token.strip() if scheme.lower() == "bearer" and token.strip() else None

    def check_headers(self, request: HttpRequest) -> Rendered | None:
        if not request.headers.get("anthropic-version"):
            return _error(400, "invalid_request_error", "anthropic-version: header is required")
        return None

    def check_body(self, body: dict[str, Any], route: Route) -> Rendered | None:
        for name in ("model", "messages", "max_tokens"):
            if body.get(name) is None:
                return _error(400, "invalid_request_error", f"{name}: Field required")
        if not isinstance(body["messages"], list):
            return _error(400, "invalid_request_error", "messages: Input should be a valid list")
        max_tokens = body["max_tokens"]
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            return _error(
                400,
                "invalid_request_error",
                "max_tokens: Input should be greater than or equal to 1",
            )
        problem = check_request(body) or _model_refuses(body)
        return None if problem is None else _error(400, "invalid_request_error", problem)

    def prompt_texts(self, body: dict[str, Any]) -> list[str]:
        texts = texts_of(body.get("system"))
        messages = body.get("messages")
        if isinstance(messages, list):
            texts += [
                t for m in messages if isinstance(m, dict) for t in texts_of(m.get("content"))
            ]
            texts += [
                t
                for m in messages
                if isinstance(m, dict) and isinstance(m.get("content"), list)
                for b in m["content"]
                if isinstance(b, dict) and b.get("type") == "tool_result"
                for t in texts_of(b.get("content"))
            ]
        return texts

    def enrich(self, ctx: Ctx, answer: Answer) -> Answer:
        return enrich(ctx, answer, self._cache_seen)

    def schema_of(self, body: dict[str, Any]) -> dict[str, Any] | None:
        tool = _forced_tool(body)
        if tool is not None:
            return dict(tool.get("input_schema") or {})
        config = body.get("output_config")
        fmt = config.get("format") if isinstance(config, dict) else body.get("output_format")
        if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
            return dict(fmt.get("schema") or {})
        return None

    # Errors ------------------------------------------------------------------------------
    def error(self, fault: Fault, ctx: Ctx) -> Rendered:
        kind = fault.kind
        echo = key_suffix(fault, ctx.key)
        if kind == "auth":
            return _error(401, "authentication_error", "invalid x-api-key" + echo)
        if kind == "permission":
            return _error(
                403,
                "permission_error",
                "Your API key does not have permission to use the specified resource." + echo,
            )
        if kind == "region":
            return _error(403, "permission_error", "Request not allowed" + echo)
        if kind == "not_found":
            return _error(404, "not_found_error", f"model: {ctx.model}{echo}")
        if kind == "quota":
            return self._quota(fault, echo)
        if kind == "rate_limit":
            wait = 1.0 if fault.retry_after is None else fault.retry_after
            reset = rfc3339_in(wait)
            headers = [
                ("retry-after", retry_after_header(wait, fault.variant)),
                ("anthropic-ratelimit-requests-limit", "50"),
                ("anthropic-ratelimit-requests-remaining", "0"),
                ("anthropic-ratelimit-requests-reset", reset),
                ("anthropic-ratelimit-input-tokens-limit", "30000"),
                ("anthropic-ratelimit-input-tokens-remaining", "30000"),
                ("anthropic-ratelimit-input-tokens-reset", reset),
            ]
            return _error(
                429,
                "rate_limit_error",
                "This request would exceed the rate limit for your organization (org-sim) of 50 "
                "requests per minute. For details, refer to: "
                "https://docs.claude.com/en/api/rate-limits. You can see the response headers "
                "for current usage. Please reduce the prompt length or the maximum tokens "
                f"requested, or try again later.{echo}",
                headers,
            )
        if kind == "overloaded":
            return _error(529, "overloaded_error", "Overloaded" + echo, _retry_after(fault))
        if kind == "server":
            status = fault.status or 500
            if status == 502:
                return bad_gateway()
            if status == 504:
                return _error(504, "timeout_error", "Request timed out" + echo, _retry_after(fault))
            return _error(status, "api_error", "Internal server error" + echo, _retry_after(fault))
        if kind == "context_length":
            tokens = CONTEXT_WINDOW + max(ctx.input_tokens, 1)
            return _error(
                400,
                "invalid_request_error",
                f"prompt is too long: {tokens} tokens > {CONTEXT_WINDOW} maximum{echo}",
            )
        if kind == "openai_array_error":
            return array_error(fault, ctx)
        return _error(
            fault.status or 400,
            "invalid_request_error",
            'messages: roles must alternate between "user" and "assistant", but found multiple '
            f'"user" roles in a row{echo}',
        )

    def _quota(self, fault: Fault, echo: str) -> Rendered:
        if fault.variant == "spend_limit":
            return _error(
                429,
                "rate_limit_error",
                "This request would exceed your account's monthly spend limit. "
                "Please try again later." + echo,
                details={"error_code": "enforced_spend_limit_reached"},
            )
        if fault.variant == "usage_limits":
            first = (datetime.now(UTC).replace(day=1) + timedelta(days=32)).replace(day=1)
            return _error(
                400,
                "invalid_request_error",
                "You have reached your specified API usage limits. You will regain access on "
                f"{first:%Y-%m-%d} at 00:00 UTC.{echo}",
            )
        return _error(
            400,
            "invalid_request_error",
            "Your credit balance is too low to access the Anthropic API. Please go to Plans & "
            "Billing to upgrade or purchase credits." + echo,
        )

    def missing_key(self) -> Rendered:
        return _error(401, "authentication_error", "x-api-key header is required")

    def invalid_key(self, key: str) -> Rendered:
        return _error(401, "authentication_error", "invalid x-api-key")

    def invalid_json(self) -> Rendered:
        return _error(400, "invalid_request_error", "The request body is not valid JSON.")

    def unknown_route(self, method: str, path: str) -> Rendered:
        return _error(404, "not_found_error", "Not Found")

    def model_not_found(self, model: str) -> Rendered:
        return _error(404, "not_found_error", f"model: {model}")

    # Answers -----------------------------------------------------------------------------
    def _usage(self, answer: Answer, *, start: bool) -> dict[str, Any]:
        """A message's usage; ``message_start``'s counts one output token so far."""
        cached = answer.cached_input_tokens
        created = answer.cache_creation_input_tokens
        return {
            "input_tokens": max(answer.input_tokens - cached - created, 0),
            "cache_creation_input_tokens": created,
            "cache_read_input_tokens": cached,
            "output_tokens": 1 if start else _output_tokens(answer),
            **({} if start else _thinking_usage(answer)),
            "service_tier": "standard",
        }

    def _message(self, ctx: Ctx, answer: Answer, *, start: bool) -> dict[str, Any]:
        content: list[dict[str, Any]] = []
        tool = _forced_tool(ctx.body)
        if not start and not answer.filtered:
            content = content_blocks(answer, answer.text, _ids(answer))
            tool_input = _as_json(answer.text) if tool is not None and not ctx.stream else None
            if tool is not None and tool_input is not None and not answer.tool_calls:
                # Structured output through a forced tool: the answer is the tool's input.
                content = [
                    {
                        "type": "tool_use",
                        "id": "toolu_" + ctx.request_id,
                        "name": tool.get("name"),
                        "input": tool_input,
                    }
                ]
        return {
            "id": "msg_" + ctx.request_id,
            "type": "message",
            "role": "assistant",
            "model": ctx.model,
            "content": content,
            "stop_reason": None if start else _stop_reason(answer),
            "stop_sequence": None if start else answer.stop_sequence,
            "usage": self._usage(answer, start=start),
        }

    def answer(self, ctx: Ctx, answer: Answer) -> dict[str, Any]:
        return self._message(ctx, answer, start=False)

    def stream_head(self, ctx: Ctx, answer: Answer) -> list[bytes]:
        start = {"type": "message_start", "message": self._message(ctx, answer, start=True)}
        events = [self.sse(start, "message_start")]
        if answer.reasoning and not answer.filtered:
            events += self._thinking(0, answer.reasoning)
        if _has_text_block(answer):
            block = {
                "type": "content_block_start",
                "index": _text_index(answer),
                "content_block": {"type": "text", "text": ""},
            }
            events.append(self.sse(block, "content_block_start"))
        events.append(self.sse({"type": "ping"}, "ping"))
        return events

    def _thinking(self, index: int, reasoning: str) -> list[bytes]:
        """A thinking block streamed (its text, then its signature), or a redacted one."""
        block = thinking_block(reasoning)
        if block["type"] == "redacted_thinking":
            return self._block(index, block, [])
        return self._block(
            index,
            {"type": "thinking", "thinking": "", "signature": ""},
            [
                {"type": "thinking_delta", "thinking": reasoning},
                {"type": "signature_delta", "signature": block["signature"]},
            ],
        )

    def _block(
        self, index: int, start: dict[str, Any], deltas: list[dict[str, Any]]
    ) -> list[bytes]:
        """One whole content block: start, its deltas, stop."""
        head = {"type": "content_block_start", "index": index, "content_block": start}
        events = [self.sse(head, "content_block_start")]
        for delta in deltas:
            event = {"type": "content_block_delta", "index": index, "delta": delta}
            events.append(self.sse(event, "content_block_delta"))
        stop = {"type": "content_block_stop", "index": index}
        events.append(self.sse(stop, "content_block_stop"))
        return events

    def stream_piece(self, ctx: Ctx, answer: Answer, piece: str, sent: int) -> bytes:
        delta = {
            "type": "content_block_delta",
            "index": _text_index(answer),
            "delta": {"type": "text_delta", "text": piece},
        }
        return self.sse(delta, "content_block_delta")

    def stream_tail(self, ctx: Ctx, answer: Answer) -> list[bytes]:
        events: list[bytes] = []
        index = _text_index(answer)
        if _has_text_block(answer):
            stop = {"type": "content_block_stop", "index": index}
            events.append(self.sse(stop, "content_block_stop"))
            index += 1
        for number, (call, call_id) in enumerate(zip(answer.tool_calls, _ids(answer), strict=True)):
            for thought in thinking_before(answer, number):
                events += self._thinking(index, thought)
                index += 1
            start = {"type": "tool_use", "id": call_id, "name": call.name, "input": {}}
            pieces = [
                {"type": "input_json_delta", "partial_json": piece}
                for piece in tool_input_pieces(json.loads(call.arguments or "{}"))
            ]
            events += self._block(index, start, pieces)
            index += 1
        delta = {
            "type": "message_delta",
            "delta": {"stop_reason": _stop_reason(answer), "stop_sequence": answer.stop_sequence},
            "usage": {"output_tokens": _output_tokens(answer), **_thinking_usage(answer)},
        }
        events.append(self.sse(delta, "message_delta"))
        events.append(self.sse({"type": "message_stop"}, "message_stop"))
        return events

    def stream_error_event(self, ctx: Ctx) -> bytes | None:
        body = {
            "type": "error",
            "error": {"type": "overloaded_error", "message": "Overloaded"},
            "request_id": "req_" + ctx.request_id,
        }
        return self.sse(body, "error")

    def keepalive_event(self) -> bytes | None:
        return self.sse({"type": "ping"}, "ping")

    def malformed_event(self, ctx: Ctx) -> bytes:
        return b'event: message_start\ndata: {"type": "message_start", "message": {"id": \n\n'

    def malformed_body(self, ctx: Ctx) -> bytes:
        return b'{"id": "msg_' + ctx.request_id.encode() + b'", "type": "message", "content": [{"ty'

    # Model endpoints ---------------------------------------------------------------------
    def models_list(self, models: Sequence[str]) -> dict[str, Any]:
        data = [self.model_info(m) for m in models]
        return {
            "data": data,
            "has_more": False,
            "first_id": models[0] if models else None,
            "last_id": models[-1] if models else None,
        }

    def model_info(self, model: str) -> dict[str, Any]:
        return {
            "type": "model",
            "id": model,
            "display_name": model,
            "created_at": "2025-01-01T00:00:00Z",
        }

    def headers(self, ctx: Ctx | None) -> list[tuple[str, str]]:
        rid = ctx.request_id if ctx is not None else "models"
        return [("request-id", "req_" + rid), ("anthropic-organization-id", "org-sim")]


def _model_refuses(body: dict[str, Any]) -> str | None:
    """What Anthropic's 400 says of a value the model does not take."""
    model = str(body["model"])
    if (
        refuses_both_samplers(model)
        and body.get("temperature") is not None
        and body.get("top_p") is not None
    ):
        return TEMPERATURE_WITH_TOP_P
    most = max_output(model)
    if most is not None and body["max_tokens"] > most:
        return (
            f"max_tokens: {body['max_tokens']} > {most}, which is the maximum allowed number "
            f"of output tokens for {model}"
        )
    return None


def _stop_reason(answer: Answer) -> str:
    if answer.filtered:
        return "refusal"
    if answer.truncated:
        return (
            "model_context_window_exceeded" if answer.variant == "context_window" else "max_tokens"
        )
    if answer.stop_sequence is not None:
        return "stop_sequence"
    return "tool_use" if answer.tool_calls else "end_turn"


def _ids(answer: Answer) -> list[str]:
    # Ids the sim made up itself become Anthropic-shaped ones.
    return [
        tool_id() if call.id.startswith(SIM_CALL_ID_PREFIX) else call.id
        for call in answer.tool_calls
    ]


def _thinking_tokens(answer: Answer) -> int:
    if answer.filtered:
        return 0
    return count_words([answer.reasoning or "", *answer.thinking_between_calls])


def _output_tokens(answer: Answer) -> int:
    """Thinking counts in ``output_tokens``, and apart in ``output_tokens_details``."""
    return answer.output_tokens + _thinking_tokens(answer)


def _thinking_usage(answer: Answer) -> dict[str, Any]:
    thinking = _thinking_tokens(answer)
    return {"output_tokens_details": {"thinking_tokens": thinking}} if thinking else {}


def _text_index(answer: Answer) -> int:
    return 1 if answer.reasoning and not answer.filtered else 0


def _has_text_block(answer: Answer) -> bool:
    return bool(answer.text) or not answer.tool_calls


def _retry_after(fault: Fault) -> list[tuple[str, str]]:
    if fault.retry_after is None:
        return []
    return [("retry-after", retry_after_header(fault.retry_after, fault.variant))]


def _forced_tool(body: dict[str, Any]) -> dict[str, Any] | None:
    """The tool a request forces with tool_choice {type: tool}, if any."""
    choice = body.get("tool_choice")
    tools = body.get("tools")
    if not (isinstance(choice, dict) and choice.get("type") == "tool" and isinstance(tools, list)):
        return None
    for tool in tools:
        if isinstance(tool, dict) and tool.get("name") == choice.get("name"):
            return tool
    return None


def _as_json(text: str) -> dict[str, Any] | None:
    """The answer as a tool input; None (answer as text) when it is not a JSON object."""
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
