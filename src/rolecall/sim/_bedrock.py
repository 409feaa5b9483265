"""Amazon Bedrock Runtime's Converse and ConverseStream APIs on the wire.

``POST /model/{modelId}/converse`` answers one JSON body; ``/converse-stream`` answers
``application/vnd.amazon.eventstream`` frames (``_eventstream``): ``messageStart``,
``contentBlockStart`` (tool use only), ``contentBlockDelta`` (text, tool input
fragments, reasoning), ``contentBlockStop``, ``messageStop`` and ``metadata`` (usage),
or an exception frame mid-stream. The model id travels URL-encoded in the path.

Every request is authenticated as AWS does it: a SigV4 signature recomputed with the
sim's secret (``api_key``) for the access key id :data:`SIM_ACCESS_KEY_ID`
(``_sigv4``), or ``Authorization: Bearer`` with a Bedrock API key (the same
``api_key``). Errors (``_bedrock_errors``) carry ``x-amzn-ErrorType:
<Code>:<namespace>`` and a body ``{"message": ...}``.

The control plane's ``GET /foundation-models[/{id}]`` and ``GET
/inference-profiles/{id}`` (the free credential check) are served on the same port.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

from rolecall.sim import _bedrock_content as content
from rolecall.sim import _bedrock_errors as errors
from rolecall.sim._common import (
    SIM_CALL_ID_PREFIX,
    Answer,
    Ctx,
    Dialect,
    Route,
)
from rolecall.sim._eventstream import CONTENT_TYPE, event_frame, exception_frame, frame
from rolecall.sim._http import HttpRequest, Rendered
from rolecall.sim._sigv4 import check_signature, credential_of
from rolecall.sim.faults import Fault

__all__ = ["SIM_ACCESS_KEY_ID", "BedrockDialect"]

SIM_ACCESS_KEY_ID = "AKIASIMULATEDBEDROCK"
SERVICE = "bedrock"
_ENDS = {"/converse": False, "/converse-stream": True}
_GUARDRAIL_TEXT = "Sorry, the model cannot answer this question."


class BedrockDialect(Dialect):
    name = "bedrock"
    stream_content_type = CONTENT_TYPE

    def __init__(self) -> None:
        self._cache_seen: set[str] = set()

    def base_url(self, root: str) -> str:
        return root

    def route(self, method: str, path: str) -> Route | None:
        if method == "POST" and path.startswith("/model/"):
            rest = path[len("/model/") :]
            for end, stream in _ENDS.items():
                if rest.endswith(end) and len(rest) > len(end):
                    return Route("chat", model=rest[: -len(end)], stream=stream)
            return None
        if method != "GET":
            return None
        if path == "/foundation-models":
            return Route("models")
        for prefix in ("/foundation-models/", "/inference-profiles/"):
            if path.startswith(prefix) and len(path) > len(prefix):
                return Route("model", model=path[len(prefix) :])
        return None

    # Authentication ----------------------------------------------------------------------
    def api_key(self, request: HttpRequest) -> str | None:
        """The Bedrock API key, or the access key id a SigV4 signature names."""
        authorization = request.headers.get("authorization", "")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer":
            return token.strip() or None
        credential = credential_of(authorization)
        return credential[0] if credential else None

    def check_key(
        self, request: HttpRequest, key: str | None, expected: str | None
    ) -> Rendered | None:
        if expected is None:
            return None
        authorization = request.headers.get("authorization", "")
        if not authorization:
            return self.missing_key()
        if authorization.lower().startswith("bearer "):
            return None if key == expected else errors.bad_api_key()
        problem = check_signature(
            secret=expected,
            access_key_id=SIM_ACCESS_KEY_ID,
            service=SERVICE,
            method=request.method,
            target=request.target,
            headers=request.headers,
            body=request.body,
        )
        return None if problem is None else errors.auth_error(problem.code, problem.message)

    def check_body(self, body: dict[str, Any], route: Route) -> Rendered | None:
        problem = content.check_request(body) or content.model_refuses(route.model or "", body)
        return None if problem is None else errors.validation_error(problem)

    def model_of(self, body: dict[str, Any], route: Route) -> str:
        return route.model or ""

    def is_stream(self, body: dict[str, Any], route: Route) -> bool:
        return route.stream

    def prompt_texts(self, body: dict[str, Any]) -> list[str]:
        return content.prompt_texts(body)

    def enrich(self, ctx: Ctx, answer: Answer) -> Answer:
        return content.enrich(ctx, answer, self._cache_seen)

    def schema_of(self, body: dict[str, Any]) -> dict[str, Any] | None:
        tool = content.forced_tool(body)
        if tool is not None:
            return dict(tool.get("inputSchema", {}).get("json") or {})
        config = body.get("outputConfig")
        fmt = config.get("textFormat") if isinstance(config, dict) else None
        structure = fmt.get("structure") if isinstance(fmt, dict) else None
        schema = structure.get("jsonSchema") if isinstance(structure, dict) else None
        text = schema.get("schema") if isinstance(schema, dict) else None
        if not isinstance(text, str):
            return None
        try:
            parsed = json.loads(text)
        except ValueError:
            return {}
        return parsed if isinstance(parsed, dict) else {}

    # Errors ------------------------------------------------------------------------------
    def error(self, fault: Fault, ctx: Ctx) -> Rendered:
        return errors.fault_error(fault, ctx)

    def missing_key(self) -> Rendered:
        return errors.missing_key()

    def invalid_key(self, key: str) -> Rendered:
        return errors.invalid_token()

    def invalid_json(self) -> Rendered:
        return errors.invalid_json()

    def unknown_route(self, method: str, path: str) -> Rendered:
        return errors.unknown_route(method, path)

    def model_not_found(self, model: str) -> Rendered:
        return errors.model_not_found(model)

    # Answers -----------------------------------------------------------------------------
    def _usage(self, answer: Answer) -> dict[str, Any]:
        cached, written = answer.cached_input_tokens, answer.cache_creation_input_tokens
        uncached = max(answer.input_tokens - cached - written, 0)
        usage: dict[str, Any] = {
            "inputTokens": uncached,
            "outputTokens": answer.output_tokens,
            "totalTokens": uncached + cached + written + answer.output_tokens,
        }
        if cached or written:
            usage["cacheReadInputTokens"] = cached
            usage["cacheWriteInputTokens"] = written
        return usage

    def answer(self, ctx: Ctx, answer: Answer) -> dict[str, Any]:
        blocks: list[dict[str, Any]] = []
        if answer.filtered:
            if answer.variant == "guardrail":
                blocks.append({"text": _GUARDRAIL_TEXT})
        else:
            if answer.reasoning:
                blocks.append({"reasoningContent": content.reasoning_block(answer.reasoning)})
            if answer.text or not answer.tool_calls:
                blocks.append({"text": answer.text})
            blocks += [{"toolUse": use} for use in _tool_uses(answer)]
        return {
            "output": {"message": {"role": "assistant", "content": blocks}},
            "stopReason": _stop_reason(answer),
            "usage": self._usage(answer),
            "metrics": {"latencyMs": 1},
        }

    def stream_head(self, ctx: Ctx, answer: Answer) -> list[bytes]:
        events = [event_frame("messageStart", {"role": "assistant"})]
        if answer.reasoning and not answer.filtered:
            signed = content.reasoning_block(answer.reasoning)
            if "redactedContent" in signed:
                events.append(_delta(0, {"reasoningContent": signed}))
            else:
                text = signed["reasoningText"]
                events += [
                    _delta(0, {"reasoningContent": {"text": text["text"]}}),
                    _delta(0, {"reasoningContent": {"signature": text["signature"]}}),
                ]
            events.append(event_frame("contentBlockStop", {"contentBlockIndex": 0}))
        return events

    def stream_piece(self, ctx: Ctx, answer: Answer, piece: str, sent: int) -> bytes:
        return _delta(_text_index(answer), {"text": piece})

    def stream_tail(self, ctx: Ctx, answer: Answer) -> list[bytes]:
        events: list[bytes] = []
        index = _text_index(answer)
        if not answer.filtered:
            if answer.text or not answer.tool_calls:
                events.append(event_frame("contentBlockStop", {"contentBlockIndex": index}))
                index += 1
            for use in _tool_uses(answer):
                start = {"toolUse": {"toolUseId": use["toolUseId"], "name": use["name"]}}
                events.append(
                    event_frame("contentBlockStart", {"contentBlockIndex": index, "start": start})
                )
                for piece in _input_pieces(use["input"]):
                    events.append(_delta(index, {"toolUse": {"input": piece}}))
                events.append(event_frame("contentBlockStop", {"contentBlockIndex": index}))
                index += 1
        events.append(event_frame("messageStop", {"stopReason": _stop_reason(answer)}))
        metadata = {"usage": self._usage(answer), "metrics": {"latencyMs": 1}}
        events.append(event_frame("metadata", metadata))
        return events

    def stream_error_event(self, ctx: Ctx) -> bytes | None:
        return exception_frame(
            "modelStreamErrorException",
            "The system encountered an unexpected error during processing. Try your request again.",
        )

    def keepalive_event(self) -> bytes | None:
        return None

    def malformed_event(self, ctx: Ctx) -> bytes:
        headers = {
            ":event-type": "contentBlockDelta",
            ":content-type": "application/json",
            ":message-type": "event",
        }
        return frame(headers, b'{"contentBlockIndex":0,"delta":{"te')

    def malformed_body(self, ctx: Ctx) -> bytes:
        return b'{"output":{"message":{"role":"assistant","content":[{"te'

    # Model endpoints ---------------------------------------------------------------------
    def models_list(self, models: Sequence[str]) -> dict[str, Any]:
        return {"modelSummaries": [_model_details(m) for m in models if not errors.is_profile(m)]}

    def model_info(self, model: str) -> dict[str, Any]:
        if errors.is_profile(model):
            arn = f"arn:aws:bedrock:us-east-1:123456789012:inference-profile/{model}"
            base = model.split(".", 1)[1]
            return {
                "inferenceProfileName": f"Sim {model}",
                "inferenceProfileArn": arn,
                "inferenceProfileId": model,
                "models": [{"modelArn": f"arn:aws:bedrock:us-east-1::foundation-model/{base}"}],
                "status": "ACTIVE",
                "type": "SYSTEM_DEFINED",
            }
        return {"modelDetails": _model_details(model)}

    def headers(self, ctx: Ctx | None) -> list[tuple[str, str]]:
        return [("x-amzn-RequestId", str(uuid.uuid4()))]


def _model_details(model: str) -> dict[str, Any]:
    return {
        "modelArn": f"arn:aws:bedrock:us-east-1::foundation-model/{model}",
        "modelId": model,
        "modelName": model,
        "providerName": model.split(".", 1)[0] if "." in model else "Sim",
        "inputModalities": ["TEXT", "IMAGE"],
        "outputModalities": ["TEXT"],
        "responseStreamingSupported": True,
        "customizationsSupported": [],
        "inferenceTypesSupported": ["ON_DEMAND"],
        "modelLifecycle": {"status": "ACTIVE"},
    }


def _stop_reason(answer: Answer) -> str:
    if answer.filtered:
        return "guardrail_intervened" if answer.variant == "guardrail" else "content_filtered"
    if answer.truncated:
        return (
            "model_context_window_exceeded" if answer.variant == "context_window" else "max_tokens"
        )
    return "tool_use" if answer.tool_calls else "end_turn"


def _text_index(answer: Answer) -> int:
    return 1 if answer.reasoning and not answer.filtered else 0


def _delta(index: int, delta: dict[str, Any]) -> bytes:
    return event_frame("contentBlockDelta", {"contentBlockIndex": index, "delta": delta})


def _tool_uses(answer: Answer) -> list[dict[str, Any]]:
    return [
        {
            "toolUseId": content.tool_use_id()
            if call.id.startswith(SIM_CALL_ID_PREFIX)
            else call.id,
            "name": call.name,
            "input": json.loads(call.arguments or "{}"),
        }
        for call in answer.tool_calls
    ]


def _input_pieces(arguments: Any) -> list[str]:
    text = json.dumps(arguments, ensure_ascii=False)
    middle = max(len(text) // 2, 1)
    return [text[:middle], text[middle:]] if len(text) > 1 else [text]
