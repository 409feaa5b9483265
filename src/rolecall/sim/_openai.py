"""OpenAI chat completions on the wire (also what OpenAI-compatible servers speak)."""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Sequence
from typing import Any

from rolecall.sim._common import (
    Answer,
    Ctx,
    Dialect,
    Route,
    array_error,
    bad_gateway,
    count_words,
    go_duration,
    json_response,
    key_suffix,
    retry_after_header,
    split_pieces,
    texts_of,
)
from rolecall.sim._http import HttpRequest, Rendered
from rolecall.sim.faults import Fault

__all__ = ["OpenAIDialect"]

CONTEXT_WINDOW = 128000


def _error(
    status: int,
    message: str,
    type_: str | None,
    code: str | None,
    param: str | None = None,
    headers: Sequence[tuple[str, str]] = (),
) -> Rendered:
    body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return json_response(status, body, headers)


_STOP_LIMIT = 4
# OpenAI's reasoning models: the parameters they take only at the default, and (o3,
# o4-mini) those they refuse outright.
_REASONING = re.compile(r"^(?:o[134](?:-|$)|gpt-5(?:-mini|-nano|-codex)?(?:-\d{4}-\d\d-\d\d)?$)")
_GPT5 = re.compile(r"^gpt-5")
_NO_STOP = re.compile(r"^(?:o3|o4-mini)(?:-\d{4}-\d\d-\d\d)?$")
_DEFAULTS: dict[str, Any] = {
    "temperature": 1,
    "top_p": 1,
    "presence_penalty": 0,
    "frequency_penalty": 0,
    "logprobs": False,
}
_IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/jpg", "image/webp", "image/gif"})


def _unsupported(name: str) -> Rendered:
    return _error(
        400,
        f"Unsupported parameter: '{name}' is not supported with this model.",
        "invalid_request_error",
        "unsupported_parameter",
        name,
    )


def _model_refuses(body: dict[str, Any]) -> Rendered | None:
    """OpenAI's 400 for what a reasoning model does not take."""
    model = str(body.get("model") or "")
    if not _REASONING.match(model):
        return None
    if body.get("stop") is not None and _NO_STOP.match(model):
        return _unsupported("stop")
    # gpt-5 is known to refuse a temperature; its other fields are not checked here
    names = ("temperature",) if _GPT5.match(model) else tuple(_DEFAULTS)
    for name in names:
        value = body.get(name)
        default = _DEFAULTS[name]
        if value is None or (value == default and type(value) is not bool) or value is default:
            continue
        if name != "temperature":
            return _unsupported(name)
        return _error(
            400,
            f"Unsupported value: 'temperature' does not support {value} with this model. "
            "Only the default (1) value is supported.",
            "invalid_request_error",
            "unsupported_value",
            "temperature",
        )
    return None


def _refused_value(body: dict[str, Any]) -> Rendered | None:
    """OpenAI's 400 for more stop sequences than it takes, an image type it cannot read or
    a value its model does not take."""
    refused = _model_refuses(body)
    if refused is not None:
        return refused
    stop = body.get("stop")
    if isinstance(stop, list) and len(stop) > _STOP_LIMIT:
        return _error(
            400,
            f"Invalid 'stop': array too long. Expected an array with maximum length "
            f"{_STOP_LIMIT}, but got an array with length {len(stop)} instead.",
            "invalid_request_error",
            "array_above_max_length",
            "stop",
        )
    for message in body["messages"]:
        content = message.get("content") if isinstance(message, dict) else None
        for part in content if isinstance(content, list) else ():
            image = part.get("image_url") if isinstance(part, dict) else None
            url = image.get("url") if isinstance(image, dict) else None
            if not isinstance(url, str) or not url.startswith("data:"):
                continue
            media_type = url[5:].partition(";")[0].partition(",")[0].lower()
            if media_type not in _IMAGE_TYPES:
                return _error(
                    400,
                    "You uploaded an unsupported image. Please make sure your image has of "
                    "one the following formats: ['png', 'jpeg', 'gif', 'webp'].",
                    "invalid_request_error",
                    "invalid_image_format",
                )
    return None


def _shown_key(key: str) -> str:
    """OpenAI prints short keys whole and masks the middle of long ones."""
    return key if len(key) <= 10 else f"{key[:3]}{'*' * (len(key) - 7)}{key[-4:]}"


class OpenAIDialect(Dialect):
    name = "openai"

    def base_url(self, root: str) -> str:
        return root + "/v1"

    def route(self, method: str, path: str) -> Route | None:
        if method == "POST" and path == "/v1/chat/completions":
            return Route("chat")
        if method == "GET" and path == "/v1/models":
            return Route("models")
        if method == "GET" and path.startswith("/v1/models/"):
            return Route("model", model=path[len("/v1/models/") :])
        return None

    def api_key(self, request: HttpRequest) -> str | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return token.strip() if scheme.lower() == "bearer" and token.strip() else None

    def check_body(self, body: dict[str, Any], route: Route) -> Rendered | None:
        if not body.get("model"):
            return _error(400, "you must provide a model parameter", "invalid_request_error", None)
        if not isinstance(body.get("messages"), list):
            return _error(
                400,
                "Missing required parameter: 'messages'.",
                "invalid_request_error",
                "missing_required_parameter",
                "messages",
            )
        return _refused_value(body)

    def prompt_texts(self, body: dict[str, Any]) -> list[str]:
        messages = body.get("messages")
        if not isinstance(messages, list):
            return []
        return [t for m in messages if isinstance(m, dict) for t in texts_of(m.get("content"))]

    def schema_of(self, body: dict[str, Any]) -> dict[str, Any] | None:
        fmt = body.get("response_format")
        if not isinstance(fmt, dict):
            return None
        if fmt.get("type") == "json_schema":
            spec = fmt.get("json_schema") or {}
            return dict(spec.get("schema") or {}) if isinstance(spec, dict) else {}
        return {} if fmt.get("type") == "json_object" else None

    # Errors ------------------------------------------------------------------------------
    def error(self, fault: Fault, ctx: Ctx) -> Rendered:
        kind, key, model = fault.kind, ctx.key, ctx.model
        echo = key_suffix(fault, key)
        if kind == "auth":
            shown = key if fault.echo_key and key else _shown_key(key or "")
            return _error(
                401,
                f"Incorrect API key provided: {shown}. You can find your API key at "
                "https://platform.openai.com/account/api-keys.",
                "invalid_request_error",
                "invalid_api_key",
            )
        if kind == "permission":
            return _error(
                403,
                f"Project `proj_sim` does not have access to model `{model}`{echo}",
                "invalid_request_error",
                None,
            )
        if kind == "region":
            return _error(
                403,
                "Country, region, or territory not supported" + echo,
                "request_forbidden",
                "unsupported_country_region_territory",
            )
        if kind == "not_found":
            return _error(
                404,
                f"The model `{model}` does not exist or you do not have access to it.{echo}",
                "invalid_request_error",
                "model_not_found",
            )
        if kind == "quota":
            return _error(
                429,
                "You exceeded your current quota, please check your plan and billing details. "
                "For more information on this error, read the docs: "
                f"https://platform.openai.com/docs/guides/error-codes/api-errors.{echo}",
                "insufficient_quota",
                "insufficient_quota",
            )
        if kind == "rate_limit":
            wait = 1.0 if fault.retry_after is None else fault.retry_after
            headers = [
                ("retry-after", retry_after_header(wait, fault.variant)),
                ("retry-after-ms", str(math.ceil(wait * 1000))),
                ("x-ratelimit-limit-requests", "60"),
                ("x-ratelimit-remaining-requests", "0"),
                ("x-ratelimit-reset-requests", go_duration(wait)),
                ("x-ratelimit-limit-tokens", "150000"),
                ("x-ratelimit-remaining-tokens", "149990"),
                ("x-ratelimit-reset-tokens", "4ms"),
            ]
            return _error(
                429,
                f"Rate limit reached for {model} in organization org-sim on requests per min "
                f"(RPM): Limit 60, Used 60, Requested 1. Please try again in {go_duration(wait)}. "
                f"Visit https://platform.openai.com/account/rate-limits to learn more.{echo}",
                "requests",
                "rate_limit_exceeded",
                headers=headers,
            )
        if kind == "overloaded":
            return _error(
                503,
                "The server is overloaded or not ready yet." + echo,
                "server_error",
                None,
                headers=_retry_after(fault),
            )
        if kind == "server":
            status = fault.status or 500
            if status == 502:
                return bad_gateway()
            message = (
                "Gateway timeout."
                if status == 504
                else ("The server had an error while processing your request. Sorry about that!")
            )
            return _error(status, message + echo, "server_error", None, headers=_retry_after(fault))
        if kind == "context_length":
            tokens = CONTEXT_WINDOW + max(ctx.input_tokens, 1)
            if fault.variant == "llama.cpp":
                body = {
                    "error": {
                        "code": 400,
                        "message": "the request exceeds the available context size, "
                        "try increasing it" + echo,
                        "type": "exceed_context_size_error",
                        "n_prompt_tokens": tokens,
                        "n_ctx": CONTEXT_WINDOW,
                    }
                }
                return json_response(400, body)
            return _error(
                400,
                f"This model's maximum context length is {CONTEXT_WINDOW} tokens. However, your "
                f"messages resulted in {tokens} tokens. Please reduce the length of the "
                f"messages.{echo}",
                "invalid_request_error",
                "context_length_exceeded",
                "messages",
            )
        if kind == "openai_array_error":
            return array_error(fault, ctx)
        # bad_request, and anything else that reaches here
        return _error(
            fault.status or 400,
            "Invalid parameter: messages with role 'tool' must be a response to a preceeding "
            f"message with 'tool_calls'.{echo}",
            "invalid_request_error",
            None,
            "messages.[1].role",
        )

    def missing_key(self) -> Rendered:
        return _error(
            401,
            "You didn't provide an API key. You need to provide your API key in an Authorization "
            "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password "
            "field (with blank username) if you're accessing the API from your browser and are "
            "prompted for a username and password. You can obtain an API key from "
            "https://platform.openai.com/account/api-keys.",
            "invalid_request_error",
            None,
        )

    def invalid_key(self, key: str) -> Rendered:
        return self.error(
            Fault("auth"), Ctx(model="", key=key, stream=False, body={}, input_tokens=0)
        )

    def invalid_json(self) -> Rendered:
        return _error(
            400,
            "We could not parse the JSON body of your request. (HINT: This likely means you "
            "aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but "
            "what was sent was not valid JSON.)",
            "invalid_request_error",
            None,
        )

    def unknown_route(self, method: str, path: str) -> Rendered:
        return _error(404, f"Invalid URL ({method} {path})", "invalid_request_error", None)

    # Answers -----------------------------------------------------------------------------
    def _usage(self, answer: Answer) -> dict[str, Any]:
        # Thinking counts in completion_tokens, and apart in reasoning_tokens (as o-series).
        reasoning = count_words([answer.reasoning or ""])
        output = answer.output_tokens + reasoning
        return {
            "prompt_tokens": answer.input_tokens,
            "completion_tokens": output,
            "total_tokens": answer.input_tokens + output,
            "prompt_tokens_details": {
                "cached_tokens": answer.cached_input_tokens,
                "audio_tokens": 0,
            },
            "completion_tokens_details": {
                "reasoning_tokens": reasoning,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    def _envelope(self, ctx: Ctx, kind: str) -> dict[str, Any]:
        return {
            "id": "chatcmpl-" + ctx.request_id,
            "object": kind,
            "created": ctx.created,
            "model": ctx.model,
            "service_tier": "default",
            "system_fingerprint": "fp_sim",
        }

    def answer(self, ctx: Ctx, answer: Answer) -> dict[str, Any]:
        body = self._envelope(ctx, "chat.completion")
        content: str | None = None if answer.filtered else answer.text
        if answer.tool_calls and not content:
            content = None  # OpenAI's content is null when the model only called tools
        message: dict[str, Any] = {
            "role": "assistant",
            "content": content,
            "refusal": None,
            "annotations": [],
        }
        if answer.tool_calls:
            message["tool_calls"] = [call.to_dict() for call in answer.tool_calls]
        if answer.reasoning:  # what DeepSeek and vLLM send; OpenAI itself keeps it hidden
            message["reasoning_content"] = answer.reasoning
        choice = {
            "index": 0,
            "message": message,
            "logprobs": None,
            "finish_reason": _finish_reason(answer),
        }
        body["choices"] = [] if answer.variant == "no_choices" else [choice]
        body["usage"] = self._usage(answer)
        return body

    def _chunk(self, ctx: Ctx, delta: dict[str, Any], finish: str | None) -> bytes:
        body = self._envelope(ctx, "chat.completion.chunk")
        body["choices"] = [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
        if _include_usage(ctx):
            body["usage"] = None
        return self.sse(body)

    def stream_head(self, ctx: Ctx, answer: Answer) -> list[bytes]:
        out = [self._chunk(ctx, {"role": "assistant", "content": "", "refusal": None}, None)]
        out += [
            self._chunk(ctx, {"reasoning_content": piece}, None)
            for piece in split_pieces(answer.reasoning or "")
        ]
        return out

    def stream_piece(self, ctx: Ctx, answer: Answer, piece: str, sent: int) -> bytes:
        return self._chunk(ctx, {"content": piece}, None)

    def stream_tail(self, ctx: Ctx, answer: Answer) -> list[bytes]:
        out = [self._chunk(ctx, delta, None) for delta in _tool_call_deltas(answer)]
        out.append(self._chunk(ctx, {}, _finish_reason(answer)))
        if _include_usage(ctx):
            body = self._envelope(ctx, "chat.completion.chunk")
            body["choices"] = []
            body["usage"] = self._usage(answer)
            out.append(self.sse(body))
        out.append(b"data: [DONE]\n\n")
        return out

    def malformed_event(self, ctx: Ctx) -> bytes:
        return b'data: {"id": "chatcmpl-' + ctx.request_id.encode() + b'", "choices": [{"delta"\n\n'

    # Model endpoints ---------------------------------------------------------------------
    def models_list(self, models: Sequence[str]) -> dict[str, Any]:
        return {"object": "list", "data": [self.model_info(m) for m in models]}

    def model_info(self, model: str) -> dict[str, Any]:
        return {"id": model, "object": "model", "created": 1686935002, "owned_by": "system"}

    def model_not_found(self, model: str) -> Rendered:
        return _error(
            404,
            f"The model '{model}' does not exist",
            "invalid_request_error",
            "model_not_found",
            "model",
        )

    def headers(self, ctx: Ctx | None) -> list[tuple[str, str]]:
        rid = ctx.request_id if ctx is not None else "models"
        return [
            ("x-request-id", "req_" + rid),
            ("openai-version", "2020-10-01"),
            ("openai-organization", "org-sim"),
            ("openai-processing-ms", "1"),
        ]


def _finish_reason(answer: Answer) -> str:
    if answer.filtered:
        return "content_filter"
    if answer.truncated:
        return "length"
    return "tool_calls" if answer.tool_calls else "stop"


def _tool_call_deltas(answer: Answer) -> list[dict[str, Any]]:
    """Streamed tool calls as OpenAI sends them: the id and name first (empty arguments),
    then the arguments in pieces, each delta naming its call by ``index``. Interleaved
    (``answer.interleave_tool_calls``), the calls take turns, a delta each: call 0's
    head, call 1's head, call 0's first piece, call 1's first piece..."""
    calls: list[list[dict[str, Any]]] = []
    for index, call in enumerate(answer.tool_calls):
        head = {"index": index, "id": call.id, "type": "function"}
        own = [{**head, "function": {"name": call.name, "arguments": ""}}]
        text = call.arguments
        for start in range(0, len(text), _ARGUMENT_PIECE):
            piece = {"arguments": text[start : start + _ARGUMENT_PIECE]}
            own.append({"index": index, "function": piece})
        calls.append(own)
    if answer.interleave_tool_calls:
        ordered = [d for turn in itertools.zip_longest(*calls) for d in turn if d is not None]
    else:
        ordered = [d for own in calls for d in own]
    return [{"tool_calls": [delta]} for delta in ordered]


_ARGUMENT_PIECE = 8  # characters of arguments per streamed delta


def _include_usage(ctx: Ctx) -> bool:
    options = ctx.body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def _retry_after(fault: Fault) -> list[tuple[str, str]]:
    if fault.retry_after is None:
        return []
    return [("retry-after", retry_after_header(fault.retry_after, fault.variant))]
