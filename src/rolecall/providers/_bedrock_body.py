"""The Bedrock Converse request body, translated from rolecall's OpenAI-shaped request.

Converse wants the system prompt apart (``system: [{text}]``), content as one-member
blocks (``{text}``, ``{image: {format, source: {bytes}}}``, ``{toolUse}``,
``{toolResult}``), a conversation that starts with a user turn and alternates, so
consecutive ``tool`` turns become one user turn of ``toolResult`` blocks and adjacent
turns of one role are merged. Images travel as base64 bytes with a format (png,
jpeg, gif, webp): Converse takes no image URL but an S3 location, so an ``https:``
image is ``unsupported``. A ``cache_control`` mark on a text part (Anthropic's prompt
caching mark) becomes a ``cachePoint`` block after it.

Sampling goes in ``inferenceConfig`` (``maxTokens``, ``temperature``, ``topP``,
``stopSequences``; a value Converse refuses, such as a temperature above 1, is
``unsupported``); ``top_k`` and thinking, which only some
models take, in ``additionalModelRequestFields`` as those models name them (Claude:
``top_k``, ``thinking``). ``reasoning_effort`` is Claude's thinking budget (minimal and
low 1024, medium 4096, high, xhigh and max 16384, with ``maxTokens`` raised above it as
Anthropic requires, or the budget cut under the caller's ``maxTokens`` as the Anthropic
adapter cuts it; none: no thinking, Claude's default) on Anthropic models, and
``unsupported`` elsewhere (a model whose default is unknown may think unasked). Tools go in
``toolConfig`` (``toolChoice`` auto, any or one tool; Converse has no "none": with
``tool_choice`` none the tools are left out unless the conversation already holds tool
blocks, which Converse refuses without a ``toolConfig``). A JSON schema answer uses
Converse's own ``outputConfig.textFormat`` (``json_schema``, the schema as JSON text).

Reasoning Bedrock signed (protocol ``bedrock``) goes back first in its assistant turn as
``reasoningContent`` blocks (``reasoningText`` with its signature, or ``redactedContent``).
Claude refuses thinking when the assistant turn whose tool calls the conversation answers
has none: that request goes without thinking, and says so in the log.

A parameter Converse has no field for (``seed``, ``n`` > 1, ``logprobs``, the
penalties, ``parallel_tool_calls`` false) is an ``unsupported`` error naming it;
``extra_body`` is merged into the body as given (guardrails, service tier...).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from rolecall.config.params import MIN_THINKING_BUDGET, sendable_params, vendor_limit_problem
from rolecall.errors import ErrorKind, ProviderError
from rolecall.providers._anthropic_body import (
    EFFORTS_TAKEN,
    THINKING_BUDGETS,
    THINKING_OFF,
    effort_budget,
    response_schema,
    thinking_unsigned,
)
from rolecall.types import ChatRequest, ImagePart, Message, ReasoningBlock, TextPart

__all__ = ["PROTOCOL", "THINKING_BUDGETS", "converse_body", "response_schema"]

log = logging.getLogger("rolecall.providers")

# The wire protocol whose signed reasoning this adapter reads and sends back.
PROTOCOL = "bedrock"

DEFAULT_MAX_TOKENS = 4096
_FORMATS = {
    "image/png": "png",
    "image/jpeg": "jpeg",
    "image/jpg": "jpeg",
    "image/gif": "gif",
    "image/webp": "webp",
}
# Parameters Converse has no field for, with the values that ask for nothing.
_NOT_TAKEN: dict[str, tuple[Any, ...]] = {
    "seed": (None,),
    "logprobs": (None, False),
    "top_logprobs": (None, 0),
    "n": (None, 1),
    "presence_penalty": (None, 0, 0.0),
    "frequency_penalty": (None, 0, 0.0),
    "parallel_tool_calls": (None, True),
}

Block = dict[str, Any]


class _Builder:
    """One request's translation; errors name the provider and the fix."""

    def __init__(self, model: str, provider: str) -> None:
        self.model = model
        self.provider = provider

    def fail(self, message: str, kind: ErrorKind = ErrorKind.BAD_REQUEST) -> ProviderError:
        return ProviderError(message, kind=kind, provider=self.provider, retryable=False)

    def unsupported(self, message: str) -> ProviderError:
        return self.fail(message, ErrorKind.UNSUPPORTED)

    # Content -------------------------------------------------------------------------
    def image(self, part: ImagePart) -> Block:
        inline = part.inline
        if inline is None:
            raise self.unsupported(
                f"image URL '{part.url[:40]}' cannot be sent to Bedrock (Converse takes image "
                "bytes or an S3 location): send a data: URL (base64)"
            )
        media_type, data = inline
        fmt = _FORMATS.get(media_type.lower())
        if fmt is None:
            raise self.unsupported(
                f"image type {media_type} is not one Bedrock takes: send png, jpeg, gif or webp"
            )
        return {"image": {"format": fmt, "source": {"bytes": data}}}

    def blocks(self, message: Message) -> list[Block]:
        if not message.parts:
            return [{"text": message.content}] if message.content else []
        out: list[Block] = []
        for part in message.parts:
            if isinstance(part, TextPart):
                if part.text:
                    out.append({"text": part.text})
                if part.cache_control:
                    out.append({"cachePoint": {"type": "default"}})
            else:
                out.append(self.image(part))
        return out

    def tool_uses(self, message: Message) -> list[Block]:
        uses: list[Block] = []
        for call in message.tool_calls:
            try:
                arguments = json.loads(call.arguments or "{}")
            except ValueError:
                arguments = None
            if not isinstance(arguments, dict):
                raise self.fail(
                    f"tool call '{call.id}' ({call.name}) has arguments that are not a JSON "
                    "object: send its arguments as JSON object text"
                )
            uses.append({"toolUse": {"toolUseId": call.id, "name": call.name, "input": arguments}})
        return uses

    def turn(self, message: Message) -> tuple[str, list[Block]]:
        if message.role == "tool":
            content = self.blocks(message) or [{"text": message.content or "(empty)"}]
            result = {"toolUseId": message.tool_call_id, "content": content}
            return "user", [{"toolResult": result}]
        blocks = self.blocks(message)
        if message.role == "assistant":
            signed = [_reasoning(b) for b in message.reasoning if b.protocol == PROTOCOL]
            blocks = signed + blocks + self.tool_uses(message)
        return message.role, blocks

    def messages(self, request: ChatRequest) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for message in request.messages:
            if message.role == "system":
                continue
            role, blocks = self.turn(message)
            if not blocks:
                continue  # Converse refuses empty content; an empty turn says nothing
            if out and out[-1]["role"] == role:
                merged = out[-1]["content"] + blocks
                # toolResult blocks answer the turn before: they lead the user turn
                merged.sort(key=lambda block: "toolResult" not in block)
                out[-1]["content"] = merged
            else:
                out.append({"role": role, "content": blocks})
        return out

    def system(self, request: ChatRequest) -> list[Block]:
        blocks: list[Block] = []
        for message in request.messages:
            if message.role != "system":
                continue
            if message.images:
                raise self.unsupported(
                    "Bedrock takes images only in user turns: move the image to a user message"
                )
            blocks += self.blocks(message)
        return blocks

    # Parameters ----------------------------------------------------------------------
    def check_unsupported(self, params: Mapping[str, Any]) -> None:
        for name, defaults in _NOT_TAKEN.items():
            value = params.get(name)
            if name in params and not any(
                value is d or (value == d and type(value) is not bool) for d in defaults
            ):
                raise self.unsupported(
                    f"parameter '{name}' is not supported by the Bedrock Converse API: "
                    "remove it or route this call to a provider that takes it"
                )

    def inference(self, params: Mapping[str, Any]) -> Block:
        config: Block = {}
        max_tokens = params.get("max_completion_tokens") or params.get("max_tokens")
        if max_tokens is not None:
            config["maxTokens"] = max_tokens
        temperature = params.get("temperature")
        if isinstance(temperature, int | float):
            config["temperature"] = temperature
        if params.get("top_p") is not None:
            config["topP"] = params["top_p"]
        stop = params.get("stop")
        if stop:
            config["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
        return config

    def model_fields(self, params: Mapping[str, Any], inference: Block) -> Block:
        fields: Block = {}
        if params.get("top_k") is not None:
            fields["top_k"] = params["top_k"]
        if params.get("thinking") is not None:
            fields["thinking"] = params["thinking"]
        effort = params.get("reasoning_effort")
        if effort is not None and "thinking" not in fields:
            thinking = self.thinking(effort, inference)
            if thinking is not None:
                fields["thinking"] = thinking
        return fields

    def thinking(self, effort: object, inference: Block) -> Block | None:
        """Claude's thinking for ``reasoning_effort``; None for ``none`` or when ``maxTokens``
        leaves no room for the smallest budget (the request then goes without thinking)."""
        if "anthropic." not in self.model:
            raise self.unsupported(
                f"reasoning_effort has no Converse field for model {self.model}: set the "
                "model's own reasoning fields in extra_body.additionalModelRequestFields"
            )
        if effort == THINKING_OFF:
            return None  # Claude thinks only when asked to
        if str(effort) not in THINKING_BUDGETS:
            raise self.fail(f"reasoning_effort {effort!r} is not one of {EFFORTS_TAKEN}")
        max_tokens = inference.get("maxTokens")
        budget = effort_budget(str(effort), max_tokens)
        if budget is None:
            log.info(
                "provider %s: thinking off for this request: max_tokens %s leaves no room "
                "for Claude's smallest thinking budget (%d)",
                self.provider,
                max_tokens,
                MIN_THINKING_BUDGET,
            )
            return None
        if max_tokens is None:
            inference["maxTokens"] = budget + DEFAULT_MAX_TOKENS
        if "temperature" in inference:
            raise self.unsupported(
                "parameter 'temperature' cannot be set with thinking on Claude: unset it or "
                "drop reasoning_effort"
            )
        return {"type": "enabled", "budget_tokens": budget}

    def drop_unsigned_thinking(self, fields: Block, request: ChatRequest) -> None:
        thinking = fields.get("thinking")
        on = isinstance(thinking, Mapping) and thinking.get("type") in ("enabled", "adaptive")
        if on and thinking_unsigned(request.messages, PROTOCOL):
            del fields["thinking"]
            log.info(
                "provider %s: thinking off for this request: the assistant turn whose tool "
                "calls it answers has no signed reasoning block to send back",
                self.provider,
            )

    # Tools ---------------------------------------------------------------------------
    def tools(self, raw: Any) -> list[Block]:
        if not isinstance(raw, list):
            raise self.fail("'tools' must be a list of {type: function, function: {...}}")
        tools: list[Block] = []
        for index, tool in enumerate(raw):
            function = tool.get("function") if isinstance(tool, Mapping) else None
            name = function.get("name") if isinstance(function, Mapping) else None
            if not isinstance(function, Mapping) or not isinstance(name, str) or not name:
                raise self.fail(f"tools[{index}] must be {{type: function, function: {{name}}}}")
            spec: Block = {"name": name}
            if function.get("description"):
                spec["description"] = function["description"]
            schema = function.get("parameters")
            spec["inputSchema"] = {
                "json": dict(schema)
                if isinstance(schema, Mapping)
                else {"type": "object", "properties": {}}
            }
            if isinstance(function.get("strict"), bool):  # the input held to the schema
                spec["strict"] = function["strict"]
            tools.append({"toolSpec": spec})
        return tools

    def tool_choice(self, choice: Any) -> Block | None:
        if choice in (None, "auto", "none"):
            return {"auto": {}} if choice == "auto" else None
        if choice == "required":
            return {"any": {}}
        function = choice.get("function") if isinstance(choice, Mapping) else None
        name = function.get("name") if isinstance(function, Mapping) else None
        if isinstance(name, str) and name:
            return {"tool": {"name": name}}
        raise self.fail(
            "'tool_choice' must be auto, none, required or {type: function, function: {name}}"
        )

    def tool_config(self, params: Mapping[str, Any], messages: list[dict[str, Any]]) -> Block:
        tools = self.tools(params["tools"]) if params.get("tools") else []
        choice = params.get("tool_choice")
        has_tool_blocks = any(
            "toolUse" in block or "toolResult" in block
            for message in messages
            for block in message["content"]
        )
        if not tools or (choice == "none" and not has_tool_blocks):
            return {}
        config: Block = {"tools": tools}
        converse_choice = self.tool_choice(choice)
        if converse_choice is not None:
            config["toolChoice"] = converse_choice
        return config


def converse_body(model: str, request: ChatRequest, *, provider: str = "") -> dict[str, Any]:
    """The Converse (and ConverseStream) body; the model id travels in the URL path."""
    build = _Builder(model, provider)
    build.check_unsupported(request.params)
    refused = vendor_limit_problem("bedrock", request.params)
    if refused is not None:
        raise build.unsupported(f"Bedrock Converse would refuse the request: {refused[1]}")
    params = sendable_params("bedrock", request.params)
    messages = build.messages(request)
    body: dict[str, Any] = {"messages": messages}
    system = build.system(request)
    if system:
        body["system"] = system
    inference = build.inference(params)
    fields = build.model_fields(params, inference)
    build.drop_unsigned_thinking(fields, request)
    if inference:
        body["inferenceConfig"] = inference
    if fields:
        body["additionalModelRequestFields"] = fields
    tool_config = build.tool_config(params, messages)
    if tool_config:
        body["toolConfig"] = tool_config
    schema = response_schema(request)
    if schema is not None:
        structure = {"jsonSchema": {"schema": json.dumps(schema), "name": "response"}}
        body["outputConfig"] = {"textFormat": {"type": "json_schema", "structure": structure}}
    extra = params.get("extra_body")
    if isinstance(extra, Mapping):
        _merge(body, extra)
    elif extra is not None:
        raise build.fail("'extra_body' must be an object of Converse request fields")
    return body


def _reasoning(block: ReasoningBlock) -> Block:
    if block.redacted:
        return {"reasoningContent": {"redactedContent": block.redacted}}
    signed = {"text": block.text, "signature": block.signature}
    return {"reasoningContent": {"reasoningText": signed}}


def _merge(into: dict[str, Any], extra: Mapping[str, Any]) -> None:
    """``extra`` over ``into``, objects merged key by key (additionalModelRequestFields...)."""
    for key, value in extra.items():
        current = into.get(key)
        if isinstance(current, dict) and isinstance(value, Mapping):
            _merge(current, value)
        else:
            into[key] = value
