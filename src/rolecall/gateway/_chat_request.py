"""An incoming OpenAI chat-completions body, checked and turned into a router call.

Every field of OpenAI's request (and every parameter name a configured protocol
takes, such as ``top_k``) is either carried to the router (as a per-call param, the
messages or the response schema), or accepted and knowingly left out
(``store``, ``metadata``: OpenAI's own storage and dashboards; rolecall records
every call itself), or refused. A field the gateway does not know is a 400 naming
it, so a typo or a feature rolecall lacks is never dropped without a word; so is
what the answer cannot carry (``n`` above 1, ``logprobs``, audio). A ``tool_choice``
of type ``allowed_tools`` (the tools a call may use, the rest kept in the list for
the prompt cache) reaches providers as the tools it names and its mode, the form
every vendor takes (:func:`narrowed`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from rolecall._text import visible
from rolecall.config.params import PARAM_RANGES, finite_number, known_params, suggest_param
from rolecall.types import Message, normalize_messages

__all__ = [
    "ParsedRequest",
    "RequestInvalid",
    "model_and_stream",
    "narrowed",
    "parse_chat_request",
]


class RequestInvalid(Exception):
    """The request body does not fit OpenAI's shape (HTTP 400)."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


@dataclass(frozen=True, slots=True)
class ParsedRequest:
    model: str
    messages: tuple[Message, ...]
    params: dict[str, Any] = field(default_factory=dict)
    response_schema: Mapping[str, Any] | None = None
    stream: bool = False
    include_usage: bool = False


_RANGES = PARAM_RANGES  # the config's own rules for these values
_OWN = frozenset({"model", "messages", "stream", "stream_options"})
# Accepted and not forwarded: OpenAI-side storage and labels, meaningless elsewhere.
_IGNORED = frozenset({"store", "metadata"})
_DEPRECATED = {"functions": "tools", "function_call": "tool_choice"}
_TOOL_CHOICES = frozenset({"auto", "none", "required"})
# Forwarded as given (beyond those checked below): OpenAI's fields, and those another
# protocol takes (top_k, thinking...), which the openai SDK sends at the top level when
# a client puts them in its extra_body; each adapter sends what its vendor takes.
_FORWARDED = known_params(None) - _IGNORED
# Read apart above (max_completion_tokens becomes max_tokens).
_HANDLED = frozenset({"response_format", "max_completion_tokens"})
_KNOWN = _OWN | _IGNORED | _FORWARDED | {"max_tokens", "max_completion_tokens"}


def parse_chat_request(body: Any) -> ParsedRequest:
    """Check an OpenAI chat-completions body; raise :class:`RequestInvalid` naming the field."""
    if not isinstance(body, dict):
        raise RequestInvalid("the request body must be a JSON object")
    _refuse_unknown(body)
    model, stream = model_and_stream(body)
    params = _params(body)
    schema = _response_schema(body.get("response_format"))
    if schema is not None and body["response_format"].get("type") == "json_schema":
        params["response_format"] = body["response_format"]  # the client's strict kept
    return ParsedRequest(
        model=model,
        messages=_messages(body.get("messages")),
        params=params,
        response_schema=schema,
        stream=stream,
        include_usage=stream and _include_usage(body.get("stream_options")),
    )


def model_and_stream(body: Mapping[str, Any]) -> tuple[str, bool]:
    """The ``model`` and ``stream`` fields every front door's body has, checked."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise RequestInvalid("'model' is required: a role name, a provider id or an alias", "model")
    stream = body.get("stream") or False
    if not isinstance(stream, bool):
        raise RequestInvalid("'stream' must be true or false", "stream")
    return model, stream


def _refuse_unknown(body: Mapping[str, Any]) -> None:
    for name in body:
        if name in _DEPRECATED:
            raise RequestInvalid(
                f"'{name}' is OpenAI's deprecated form: send '{_DEPRECATED[name]}' instead", name
            )
        if name not in _KNOWN:
            close = suggest_param(name, _KNOWN)
            hint = f" (did you mean '{close}'?)" if close else ""
            raise RequestInvalid(
                f"unknown field '{visible(name)}'{hint}: the rolecall gateway takes OpenAI's chat "
                "completions fields; put vendor-specific ones in 'extra_body'",
                name,
            )


def _messages(raw: Any) -> tuple[Message, ...]:
    if not isinstance(raw, list) or not raw:
        raise RequestInvalid("'messages' must be a non-empty array", "messages")
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            raise RequestInvalid(f"messages[{index}] must be an object", f"messages[{index}]")
        if item.get("content") is None and item.get("role") != "assistant":
            raise RequestInvalid(
                f"messages[{index}].content is required", f"messages[{index}].content"
            )
    try:
        return normalize_messages(raw)
    except ValueError as exc:
        raise RequestInvalid(str(exc), "messages") from None


def _params(body: Mapping[str, Any]) -> dict[str, Any]:
    # Most bodies have none of the fields checked one by one: one set test, not a lookup each.
    params = {} if body.keys().isdisjoint(_CHECKED) else _checked_params(body)
    # The body's few fields, not the many forwardable names: this runs on every request.
    for name, value in body.items():
        if value is not None and name in _PASSED and name not in params:
            params[name] = value
    return params


def _checked_params(body: Mapping[str, Any]) -> dict[str, Any]:
    """The fields checked one by one, in this order (it decides which error a body gets)."""
    params: dict[str, Any] = {}
    for name, (low, high) in _RANGES.items():
        value = body.get(name)
        if value is None:
            continue
        if not finite_number(value) or not low <= value <= high:
            raise RequestInvalid(f"'{name}' must be a number from {low:g} to {high:g}", name)
        params[name] = value
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if value is not None:
            params.setdefault("max_tokens", _integer(name, value, 1))
    stop = body.get("stop")
    if stop is not None:
        if isinstance(stop, str):
            stop = [stop]
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
            raise RequestInvalid("'stop' must be a string or an array of strings", "stop")
        if stop:
            params["stop"] = stop
    for name, check in _CHECKS.items():
        value = body.get(name)
        if value is not None:
            params[name] = check(name, value)
    choice = params.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") == "allowed_tools":
        params["tools"], params["tool_choice"] = narrowed(
            params.get("tools"), *_allowed_names(choice)
        )
    _refuse_unanswerable(params)
    return params


def narrowed(tools: list[Any] | None, names: list[str], mode: str) -> tuple[list[Any], str]:
    """An ``allowed_tools`` choice as every provider takes it: the (chat-form) ``tools`` it
    names, in their order, and its mode (auto or required); a name not among them is a 400."""
    offered = [tool["function"]["name"] for tool in tools or ()]
    missing = [name for name in names if name not in offered]
    if missing:
        raise RequestInvalid(
            f"tool_choice.allowed_tools names '{visible(missing[0])}', which is not in 'tools'; "
            "name functions the request declares",
            "tool_choice",
        )
    return [tool for tool in tools or () if tool["function"]["name"] in names], mode


_ALLOWED_SHAPE = (
    "tool_choice.allowed_tools must be {mode: auto or required, tools: [{type: function, "
    "function: {name}}, ...]}"
)


def _allowed_names(choice: Mapping[str, Any]) -> tuple[list[str], str]:
    spec = choice.get("allowed_tools")
    listed = spec.get("tools") if isinstance(spec, dict) else None
    mode = spec.get("mode") if isinstance(spec, dict) else None
    if mode not in ("auto", "required") or not isinstance(listed, list) or not listed:
        raise RequestInvalid(_ALLOWED_SHAPE, "tool_choice")
    names: list[str] = []
    for entry in listed:
        function = entry.get("function") if isinstance(entry, dict) else None
        name = function.get("name") if isinstance(function, dict) else None
        if not isinstance(name, str) or entry.get("type") != "function":
            raise RequestInvalid(_ALLOWED_SHAPE, "tool_choice")
        names.append(name)
    return names, str(mode)


def _refuse_unanswerable(params: Mapping[str, Any]) -> None:
    """Refuse what the answer cannot carry: it has one choice and no log probabilities,
    so a vendor's extra choices or logprobs would be dropped without a word."""
    for name in ("logprobs", "top_logprobs"):
        if params.get(name):  # logprobs false or top_logprobs 0 ask for nothing
            raise RequestInvalid(
                f"'{name}' is not supported: the rolecall gateway does not return log "
                "probabilities; leave out logprobs and top_logprobs",
                name,
            )
    if params.get("n", 1) > 1:
        raise RequestInvalid(
            "'n' above 1 is not supported: the rolecall gateway returns one choice; "
            "send n requests instead",
            "n",
        )


def _integer(name: str, value: Any, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise RequestInvalid(f"'{name}' must be an integer of at least {low}", name)
    if high is not None and value > high:
        raise RequestInvalid(f"'{name}' must be an integer from {low} to {high}", name)
    return value


def _boolean(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise RequestInvalid(f"'{name}' must be true or false", name)
    return value


def _string(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise RequestInvalid(f"'{name}' must be a string", name)
    return value


def _object(name: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise RequestInvalid(f"'{name}' must be an object", name)
    return value


def _tools(name: str, value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise RequestInvalid("'tools' must be an array of function tools", name)
    for index, tool in enumerate(value):
        function = tool.get("function") if isinstance(tool, dict) else None
        name_of = function.get("name") if isinstance(function, dict) else None
        if not isinstance(name_of, str) or not name_of or tool.get("type") != "function":
            raise RequestInvalid(
                f"tools[{index}] must be {{type: function, function: {{name, parameters}}}}",
                name,
            )
    return value


def _tool_choice(name: str, value: Any) -> str | dict[str, Any]:
    if isinstance(value, str) and value in _TOOL_CHOICES:
        return value
    if isinstance(value, dict) and value.get("type") == "allowed_tools":
        return dict(value)  # read with the tools (_allowed_names)
    function = value.get("function") if isinstance(value, dict) else None
    if isinstance(function, dict) and isinstance(function.get("name"), str):
        return dict(value)
    raise RequestInvalid(
        "'tool_choice' must be auto, none, required, {type: function, function: {name}} or "
        "{type: allowed_tools, allowed_tools: {mode, tools}}",
        name,
    )


def _text_only(name: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RequestInvalid(f"'{name}' must be an array of strings", name)
    if any(kind != "text" for kind in value):
        raise _no_audio(name)
    return value


def _no_audio(name: str) -> RequestInvalid:
    return RequestInvalid(
        f"'{name}' asks for audio, which is not supported: the rolecall gateway answers in "
        "text only; leave out audio and modalities",
        name,
    )


def _refuse_audio(name: str, value: Any) -> None:
    raise _no_audio(name)


_CHECKS: dict[str, Callable[[str, Any], Any]] = {
    "n": lambda name, value: _integer(name, value, 1),
    "seed": lambda name, value: _integer(name, value, -(2**63)),
    "logprobs": _boolean,
    "top_logprobs": lambda name, value: _integer(name, value, 0, 20),
    "user": _string,
    "reasoning_effort": _string,
    "extra_body": _object,
    "tools": _tools,
    "tool_choice": _tool_choice,
    "parallel_tool_calls": _boolean,
    "modalities": _text_only,
    "audio": _refuse_audio,
}
# Forwarded as given unless already read above.
_PASSED = _FORWARDED - _CHECKS.keys() - _HANDLED
# Read by _checked_params.
_CHECKED = frozenset({*_RANGES, "max_completion_tokens", "max_tokens", "stop", *_CHECKS})


def _response_schema(raw: Any) -> Mapping[str, Any] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise RequestInvalid("'response_format' must be an object", "response_format")
    kind = raw.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "object"}
    if kind == "json_schema":
        spec = raw.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if not isinstance(schema, dict):
            raise RequestInvalid(
                "response_format.json_schema.schema must be a JSON Schema object",
                "response_format",
            )
        return schema
    raise RequestInvalid(
        "response_format.type must be text, json_object or json_schema", "response_format"
    )


def _include_usage(raw: Any) -> bool:
    return isinstance(raw, dict) and raw.get("include_usage") is True
