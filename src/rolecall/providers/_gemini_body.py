"""The Gemini ``generateContent`` body, from rolecall's OpenAI-shaped request.

Apart from the adapter because the translation is large and pure: turns become
``contents`` (assistant -> ``model``, tool results -> a ``user`` turn of
``functionResponse`` parts, consecutive results merged), images become
``inlineData`` (Gemini takes no image URLs, and rolecall never fetches one), and
every parameter lands in ``generationConfig``, ``tools`` or ``toolConfig``.

A parameter Gemini cannot honour raises ``unsupported`` and a malformed one
``bad_request``, each naming the field and the fix; nothing is dropped in silence.
``reasoning_effort`` uses the budgets Google's OpenAI-compatible endpoint uses for
Gemini 2.5: minimal/low 1024, medium 8192, high 24576 thinking tokens (none: 0), and
OpenAI's xhigh and max high's too (24576 is within every Gemini 2.5 model's range). Gemini 3
takes a ``thinkingBudget`` as well, so one field serves both rather than ``thinkingLevel``,
whose levels each Gemini 3 model takes only some of.

Gemini 3 and later refuse (400) a history whose function calls lack the
``thoughtSignature`` the model attached to them. The adapter keeps it as the reply's
reasoning block (protocol ``gemini``), and an assistant turn carrying one sends it back on
its first ``functionCall`` part; a turn without one (a client that kept no signature, or
a turn another vendor's model wrote) carries the value Google documents for calls the
model did not produce itself: :data:`FOREIGN_SIGNATURE`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from rolecall.config.params import image_type_problem, sendable_params, vendor_limit_problem
from rolecall.errors import ErrorKind, ProviderError
from rolecall.types import ChatRequest, ImagePart, Message, TextPart

__all__ = ["EFFORTS_TAKEN", "FOREIGN_SIGNATURE", "PROTOCOL", "THINKING_BUDGETS", "gemini_body"]

# The wire protocol whose signatures this adapter reads and sends back.
PROTOCOL = "gemini"

# What Google documents for a function call replayed without the model's own signature.
FOREIGN_SIGNATURE = "skip_thought_signature_validator"

THINKING_BUDGETS = {
    "none": 0,
    "minimal": 1024,
    "low": 1024,
    "medium": 8192,
    "high": 24576,
    "xhigh": 24576,
    "max": 24576,
}
_EFFORTS = list(THINKING_BUDGETS)
EFFORTS_TAKEN = f"{', '.join(_EFFORTS[:-1])} or {_EFFORTS[-1]}"
_GENERATION_KEYS = {
    "temperature": "temperature",
    "top_p": "topP",
    "top_k": "topK",
    "max_tokens": "maxOutputTokens",
    "seed": "seed",
    "presence_penalty": "presencePenalty",
    "frequency_penalty": "frequencyPenalty",
    "top_logprobs": "logprobs",
}
_MODES = {"auto": "AUTO", "none": "NONE", "required": "ANY"}


class _Builder:
    """One request's translation; ``fail`` makes errors that name the provider."""

    def __init__(self, provider: str) -> None:
        self.provider = provider

    def fail(self, message: str, kind: ErrorKind = ErrorKind.BAD_REQUEST) -> ProviderError:
        return ProviderError(message, kind=kind, provider=self.provider, retryable=False)

    # Turns ----------------------------------------------------------------------------
    def system(self, messages: Sequence[Message]) -> list[dict[str, Any]]:
        """The systemInstruction parts: system turns given as text, joined; a turn given
        as blocks (Anthropic's ``system`` array) keeps each block a part of its own, as
        an Anthropic model reads them, rather than their texts run together."""
        system = [m for m in messages if m.role == "system"]
        for message in system:
            if message.images:
                raise self.fail(
                    "Gemini takes images only in user turns: move the image to a user message",
                    ErrorKind.UNSUPPORTED,
                )
        if not any(m.parts for m in system):
            text = "\n\n".join(m.content for m in system)
            return [{"text": text}] if text else []
        texts = [
            part.text
            for message in system
            for part in (message.parts or (TextPart(message.content),))
            if isinstance(part, TextPart) and part.text
        ]
        return [{"text": text} for text in texts]

    def contents(self, messages: Sequence[Message]) -> list[dict[str, Any]]:
        contents: list[dict[str, Any]] = []
        names: dict[str, str] = {}  # tool call id -> function name, latest call wins
        last_was_tool = False
        for index, message in enumerate(messages):
            if message.role == "system":
                continue
            if message.role == "tool":
                part = self.function_response(index, message, names)
                if last_was_tool:
                    contents[-1]["parts"].append(part)
                else:
                    contents.append({"role": "user", "parts": [part]})
                last_was_tool = True
                continue
            last_was_tool = False
            if message.role == "assistant":
                names.update((call.id, call.name) for call in message.tool_calls)
                contents.append({"role": "model", "parts": self.model_parts(index, message)})
            else:
                contents.append({"role": "user", "parts": self.user_parts(message)})
        return contents

    def user_parts(self, message: Message) -> list[dict[str, Any]]:
        if not message.parts:
            return [{"text": message.content}]
        return [self.part(part) for part in message.parts]

    def part(self, part: TextPart | ImagePart) -> dict[str, Any]:
        if isinstance(part, TextPart):
            return {"text": part.text}
        inline = part.inline
        if inline is None:
            raise self.fail(
                "Gemini takes inline images: send a data: URL (data:image/png;base64,...) "
                "instead of a link",
                ErrorKind.UNSUPPORTED,
            )
        media_type, data = inline
        mime = media_type.lower()
        # image/jpg is a common name for JPEG, which Gemini knows only as image/jpeg.
        return {
            "inlineData": {"mimeType": "image/jpeg" if mime == "image/jpg" else mime, "data": data}
        }

    def model_parts(self, index: int, message: Message) -> list[dict[str, Any]]:
        texts = [p.text for p in message.parts if isinstance(p, TextPart)] or [message.content]
        parts: list[dict[str, Any]] = [{"text": text} for text in texts if text]
        signed = [b.signature for b in message.reasoning if b.protocol == PROTOCOL]
        signature = next((s for s in signed if s), FOREIGN_SIGNATURE)
        for number, call in enumerate(message.tool_calls):
            where = f"messages[{index}].tool_calls[{number}] ('{call.name}')"
            args = _json_object(call.arguments or "{}")
            if args is None:
                raise self.fail(f"{where}: arguments must be a JSON object")
            part: dict[str, Any] = {"functionCall": {"name": call.name, "args": args}}
            if number == 0:  # Gemini 3 checks the first call of each step
                part["thoughtSignature"] = signature
            parts.append(part)
        return parts or [{"text": ""}]

    def function_response(
        self, index: int, message: Message, names: Mapping[str, str]
    ) -> dict[str, Any]:
        call_id = message.tool_call_id or ""
        name = names.get(call_id) or message.name
        if not name:
            raise self.fail(
                f"messages[{index}]: no earlier assistant tool call has id '{call_id}'; "
                "send the assistant turn with its tool_calls before the tool result"
            )
        response = _json_object(message.content)
        if response is None:
            response = {"result": message.content}
        return {"functionResponse": {"name": name, "response": response}}

    # Parameters -----------------------------------------------------------------------
    def generation(self, params: Mapping[str, Any], request: ChatRequest) -> dict[str, Any]:
        config = {
            name: params[key]
            for key, name in _GENERATION_KEYS.items()
            if params.get(key) is not None
        }
        stop = params.get("stop")
        if stop:
            config["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
        if params.get("logprobs") is not None:
            config["responseLogprobs"] = bool(params["logprobs"])
        n = params.get("n")
        if n is not None:
            if n != 1:
                raise self.fail(
                    f"Gemini returns one candidate per call here; n={n} is not supported: "
                    "make n calls instead",
                    ErrorKind.UNSUPPORTED,
                )
            config["candidateCount"] = 1
        effort = params.get("reasoning_effort")
        if effort is not None:
            config["thinkingConfig"] = self.thinking(effort)
        config.update(self.output_format(params.get("response_format"), request))
        return config

    def thinking(self, effort: object) -> dict[str, Any]:
        budget = THINKING_BUDGETS.get(effort) if isinstance(effort, str) else None
        if budget is None:
            raise self.fail(f"reasoning_effort {effort!r} is not known: use {EFFORTS_TAKEN}")
        if budget == 0:
            return {"thinkingBudget": 0}
        return {"thinkingBudget": budget, "includeThoughts": True}

    def output_format(self, value: object, request: ChatRequest) -> dict[str, Any]:
        schema: Mapping[str, Any] | None = request.response_schema
        if schema is None and isinstance(value, Mapping):
            kind = value.get("type")
            if kind == "json_object":
                return {"responseMimeType": "application/json"}
            if kind == "json_schema":
                inner = value.get("json_schema")
                found = inner.get("schema") if isinstance(inner, Mapping) else None
                if not isinstance(found, Mapping):
                    raise self.fail("response_format.json_schema.schema must be a JSON Schema")
                schema = found
            elif kind != "text":
                raise self.fail("response_format.type must be text, json_object or json_schema")
        if schema is None:
            return {}
        return {"responseMimeType": "application/json", "responseJsonSchema": dict(schema)}

    def tools(self, tools: object) -> list[dict[str, Any]]:
        if not isinstance(tools, list):
            raise self.fail("tools must be a list of {type: function, function: {...}}")
        declarations = []
        for index, tool in enumerate(tools):
            function = tool.get("function") if isinstance(tool, Mapping) else None
            if not isinstance(tool, Mapping) or tool.get("type", "function") != "function":
                raise self.fail(
                    f"tools[{index}]: Gemini takes function tools only "
                    "({type: function, function: {name, description, parameters}})",
                    ErrorKind.UNSUPPORTED,
                )
            if not isinstance(function, Mapping) or not function.get("name"):
                raise self.fail(f"tools[{index}].function must have a name")
            declaration: dict[str, Any] = {"name": function["name"]}
            if function.get("description"):
                declaration["description"] = function["description"]
            if function.get("parameters") is not None:
                # Full JSON Schema; ``parameters`` would take only an OpenAPI subset.
                declaration["parametersJsonSchema"] = function["parameters"]
            declarations.append(declaration)
        return [{"functionDeclarations": declarations}]

    def tool_config(self, choice: object) -> dict[str, Any]:
        if isinstance(choice, str) and choice in _MODES:
            return {"functionCallingConfig": {"mode": _MODES[choice]}}
        function = choice.get("function") if isinstance(choice, Mapping) else None
        name = function.get("name") if isinstance(function, Mapping) else None
        if not isinstance(name, str) or not name:
            raise self.fail(
                "tool_choice must be auto, none, required or {type: function, function: {name}}"
            )
        return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [name]}}


def gemini_body(
    request: ChatRequest, *, provider: str = "", validated: bool = True
) -> dict[str, Any]:
    """The generateContent body; params other than the known ones are not sent (logged once).
    ``validated``: the API has the VALIDATED function calling mode, which a strict tool asks
    for (Vertex's v1 API documents none).

    Raises ProviderError (``unsupported`` or ``bad_request``) for what Gemini cannot take.
    """
    build = _Builder(provider)
    params = sendable_params("google", request.params)
    refused = vendor_limit_problem("google", params) or image_type_problem(
        "google", request.messages
    )
    if refused is not None:
        raise build.fail(f"Gemini would refuse the request: {refused[1]}", ErrorKind.UNSUPPORTED)
    body: dict[str, Any] = {"contents": build.contents(request.messages)}
    system = build.system(request.messages)
    if system:
        body["systemInstruction"] = {"parts": system}
    if params.get("tools"):
        body["tools"] = build.tools(params["tools"])
    if params.get("tool_choice") is not None:
        body["toolConfig"] = build.tool_config(params["tool_choice"])
    if validated and params.get("tools") and _strict(params["tools"]):
        # A function's strict (its arguments held to its schema) is Gemini's VALIDATED
        # mode, AUTO's constrained form; ANY holds calls to their schemas already.
        calling = body.get("toolConfig", {}).get("functionCallingConfig", {"mode": "AUTO"})
        if calling["mode"] == "AUTO":
            body["toolConfig"] = {"functionCallingConfig": {**calling, "mode": "VALIDATED"}}
    if params.get("parallel_tool_calls") is False:
        raise build.fail(
            "Gemini cannot be told to call one tool at a time: leave out parallel_tool_calls=false",
            ErrorKind.UNSUPPORTED,
        )
    generation = build.generation(params, request)
    if generation:
        body["generationConfig"] = generation
    extra = params.get("extra_body")
    if isinstance(extra, Mapping):
        _merge(body, extra)
    elif extra is not None:
        raise build.fail("extra_body must be an object of Gemini request fields")
    return body


def _strict(tools: object) -> bool:
    """Whether a function tool asks for its arguments held to its schema (``strict``)."""
    return isinstance(tools, list) and any(
        isinstance(tool, Mapping)
        and isinstance(tool.get("function"), Mapping)
        and tool["function"].get("strict") is True
        for tool in tools
    )


def _json_object(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _merge(into: dict[str, Any], extra: Mapping[str, Any]) -> None:
    """``extra`` over ``into``: objects merge key by key (copied, so the caller's stay as
    given), anything else replaces."""
    for key, value in extra.items():
        current = into.get(key)
        if isinstance(value, Mapping) and isinstance(current, Mapping):
            merged = dict(current)
            _merge(merged, value)
            into[key] = merged
        else:
            into[key] = value
