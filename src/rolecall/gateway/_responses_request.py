"""An OpenAI Responses body (``POST /v1/responses``), checked and turned into a router call.

``instructions`` becomes the first system turn; ``input`` (a string, or items:
messages, ``function_call`` and ``function_call_output``; see ``_responses_input``)
becomes the turns that follow, in rolecall's internal form, so any provider can
answer.

The gateway keeps nothing between requests, so every request carries the whole
conversation: ``previous_response_id``, ``conversation`` and ``item_reference``
items (which name stored state) are refused with a 400 that says to send the full
input with ``store: false``. ``store`` itself is accepted and changes nothing.

``tools`` and ``tool_choice`` are read by ``_responses_tools``: function tools
and the functions of namespace tools reach the provider; tools only OpenAI runs
are left out (and named in ``omitted_tools``) unless ``tool_choice`` forces one.

Every field is carried to the router (per-call params, the turns, the response
schema), accepted and knowingly left out (``store``, ``metadata``, ``include``,
``truncation``: OpenAI's storage, labels and context management; rolecall records
every call itself and never truncates; ``include`` of ``reasoning.encrypted_content`` has
reasoning items carry the signed reasoning, see ``_encrypted_reasoning``; ``reasoning.summary``
has them carry the thinking as their summary, see ``responses_format``), or refused
with a 400 naming it. Log probabilities (``top_logprobs``, ``include`` of output
logprobs) are refused: the response carries none.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rolecall._text import visible
from rolecall.config.params import PARAM_RANGES, finite_number, known_params, suggest_param
from rolecall.gateway._chat_request import RequestInvalid, model_and_stream, narrowed
from rolecall.gateway._responses_input import FIX_STATEFUL, read_input
from rolecall.gateway._responses_tools import (
    ToolSet,
    read_allowed_tools,
    read_tool_choice,
    read_tools,
)
from rolecall.types import Message

__all__ = ["ROUTER_FIELDS", "RequestInvalid", "ResponsesRequest", "parse_responses_request"]


@dataclass(frozen=True, slots=True)
class ResponsesRequest:
    model: str
    messages: tuple[Message, ...]
    params: dict[str, Any] = field(default_factory=dict)
    response_schema: Mapping[str, Any] | None = None
    stream: bool = False
    # The request's settings as a response object repeats them (tools, tool_choice, text...).
    echo: dict[str, Any] = field(default_factory=dict)
    # A provider's function name -> (namespace, name), for calls to a namespace tool's functions.
    namespaced: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    omitted_tools: tuple[str, ...] = ()  # tool types no provider is offered (see _responses_tools)
    # ``include`` asks for reasoning.encrypted_content: reasoning items carry signed reasoning.
    carry_reasoning: bool = False
    # ``reasoning.summary`` asks for one: reasoning items carry the thinking as their summary.
    summarize: bool = False


_OWN = frozenset(
    {
        "model",
        "input",
        "instructions",
        "stream",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "temperature",
        "top_p",
        "max_output_tokens",
        "reasoning",
        "text",
        "user",
    }
)
# Accepted and not forwarded: OpenAI-side storage, labels, context management and stream
# obfuscation; rolecall keeps nothing for later and never truncates an input.
_IGNORED = frozenset(
    {
        "store",
        "metadata",
        "include",
        "truncation",
        "stream_options",
        "prompt_cache_retention",
        "client_metadata",  # Codex CLI's
    }
)
# Fields that need state OpenAI keeps; the gateway keeps none.
_STATEFUL = {
    "previous_response_id": "the gateway keeps no responses",
    "conversation": "the gateway keeps no conversations",
    "prompt": "the gateway keeps no stored prompts",
    "background": "the gateway runs no background responses",
    "context_management": "the gateway does no server-side compaction",
}
# Chat completions' names for fields the Responses API spells otherwise.
_CHAT_NAMES = {
    "messages": "input",
    "max_tokens": "max_output_tokens",
    "max_completion_tokens": "max_output_tokens",
    "response_format": "text.format",
    "reasoning_effort": "reasoning.effort",
    "functions": "tools",
    "function_call": "tool_choice",
}
# The router's names for the fields the Responses API spells otherwise (for the errors that
# name a parameter no provider takes).
ROUTER_FIELDS = {
    "verbosity": "text.verbosity",
    "reasoning_effort": "reasoning.effort",
    "max_tokens": "max_output_tokens",
    "response_format": "text.format",
}
# Forwarded as given: another protocol's parameters (top_k, thinking, stop...), which the
# openai SDK sends at the top level when a client puts them in its extra_body.
_FORWARDED = known_params(None) - _OWN - _IGNORED - _CHAT_NAMES.keys() - {"store", "metadata", "n"}
_KNOWN = _OWN | _IGNORED | _STATEFUL.keys() | _FORWARDED
_ENCRYPTED_REASONING = "reasoning.encrypted_content"
_INCLUDABLE = frozenset(
    {
        _ENCRYPTED_REASONING,
        "message.output_text.logprobs",
        "message.input_image.image_url",
        "file_search_call.results",
        "web_search_call.results",
        "web_search_call.action.sources",
        "computer_call_output.output.image_url",
        "code_interpreter_call.outputs",
    }
)


# The answer carries no log probabilities: asking for them is refused, not left unanswered.
_LOGPROBS = "message.output_text.logprobs"
_NO_LOGPROBS = (
    "log probabilities are not supported: the rolecall gateway does not return them; "
    f"leave out top_logprobs and the include value {_LOGPROBS!r}"
)


def parse_responses_request(body: Any) -> ResponsesRequest:
    """Check a Responses body; raise :class:`RequestInvalid` naming the field."""
    if not isinstance(body, dict):
        raise RequestInvalid("the request body must be a JSON object")
    _refuse_unknown(body)
    if body.get("top_logprobs"):  # 0 asks for none
        raise RequestInvalid(_NO_LOGPROBS, "top_logprobs")
    model, stream = model_and_stream(body)
    _check_ignored(body)
    instructions = body.get("instructions")
    if instructions is not None and not isinstance(instructions, str):
        raise RequestInvalid("'instructions' must be a string", "instructions")
    tools = ToolSet() if body.get("tools") is None else read_tools(body["tools"])
    messages = read_input(body.get("input"))
    if instructions:
        messages.insert(0, Message("system", instructions))
    params, echo = _params(body, tools)
    schema = _text_format(body.get("text"), params)
    echo["instructions"] = instructions
    echo["text"] = body.get("text") or {"format": {"type": "text"}}
    include = body.get("include") or ()
    return ResponsesRequest(
        model,
        tuple(messages),
        params,
        schema,
        stream,
        echo,
        tools.namespaced,
        tools.omitted,
        _ENCRYPTED_REASONING in include,
        echo["reasoning"]["summary"] is not None,
    )


def _refuse_unknown(body: Mapping[str, Any]) -> None:
    for name, value in body.items():
        if name in _STATEFUL and value not in (None, False):
            raise RequestInvalid(
                f"'{name}' is not supported: {_STATEFUL[name]}{FIX_STATEFUL}", name
            )
        if name in _CHAT_NAMES:
            raise RequestInvalid(
                f"'{name}' is chat completions' field: the Responses API takes "
                f"'{_CHAT_NAMES[name]}' instead",
                name,
            )
        if name not in _KNOWN:
            close = suggest_param(name, _KNOWN)
            hint = f" (did you mean '{close}'?)" if close else ""
            raise RequestInvalid(
                f"unknown field '{visible(name)}'{hint}: the rolecall gateway takes OpenAI's "
                "Responses fields; put vendor-specific ones in 'extra_body'",
                name,
            )


def _check_ignored(body: Mapping[str, Any]) -> None:
    store = body.get("store")
    if store is not None and not isinstance(store, bool):
        raise RequestInvalid("'store' must be true or false", "store")
    truncation = body.get("truncation")
    if truncation is not None and truncation not in ("auto", "disabled"):
        raise RequestInvalid("'truncation' must be auto or disabled", "truncation")
    include = body.get("include")
    if include is None:
        return
    if not isinstance(include, list):
        raise RequestInvalid("'include' must be an array of strings", "include")
    for value in include:
        if not isinstance(value, str) or value not in _INCLUDABLE:
            raise RequestInvalid(
                f"include value {value!r} is not known: use {', '.join(sorted(_INCLUDABLE))}",
                "include",
            )
        if value == _LOGPROBS:
            raise RequestInvalid(_NO_LOGPROBS, "include")


_RANGES = {name: PARAM_RANGES[name] for name in ("temperature", "top_p")}  # the config's rules


def _params(body: Mapping[str, Any], tools: ToolSet) -> tuple[dict[str, Any], dict[str, Any]]:
    """The router's params and the settings the response repeats."""
    params: dict[str, Any] = {}
    echo: dict[str, Any] = {"tools": [], "tool_choice": "auto", "parallel_tool_calls": True}
    for name, (low, high) in _RANGES.items():
        value = body.get(name)
        echo[name] = value
        if value is None:
            continue
        if not finite_number(value) or not low <= value <= high:
            raise RequestInvalid(f"'{name}' must be a number from {low:g} to {high:g}", name)
        params[name] = value
    limit = body.get("max_output_tokens")
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise RequestInvalid(
                "'max_output_tokens' must be an integer of at least 1", "max_output_tokens"
            )
        params["max_tokens"] = limit
    echo["max_output_tokens"] = limit
    if tools.functions:
        params["tools"] = tools.functions
    if body.get("tools") is not None:
        echo["tools"] = body["tools"]
    choice = body.get("tool_choice")
    allowed = read_allowed_tools(choice)
    if allowed is not None:  # the provider is offered the allowed functions alone
        params["tools"], params["tool_choice"] = narrowed(params.get("tools"), *allowed)
    elif choice is not None:
        params["tool_choice"] = read_tool_choice(choice, tools)
    if choice is not None:
        echo["tool_choice"] = choice
    parallel = body.get("parallel_tool_calls")
    if parallel is not None:
        if not isinstance(parallel, bool):
            raise RequestInvalid(
                "'parallel_tool_calls' must be true or false", "parallel_tool_calls"
            )
        params["parallel_tool_calls"] = echo["parallel_tool_calls"] = parallel
    user = body.get("user")
    if user is not None:
        if not isinstance(user, str):
            raise RequestInvalid("'user' must be a string", "user")
        params["user"] = echo["user"] = user
    echo["reasoning"] = _reasoning(body.get("reasoning"), params)
    metadata = body.get("metadata")
    echo["metadata"] = metadata if isinstance(metadata, dict) else {}
    echo["truncation"] = body.get("truncation") or "disabled"
    for name in _FORWARDED:
        if body.get(name) is not None:
            params[name] = body[name]
    return params, echo


_SUMMARIES = ("auto", "concise", "detailed")


def _reasoning(raw: Any, params: dict[str, Any]) -> dict[str, Any]:
    """``reasoning.effort`` becomes the router's ``reasoning_effort`` (each adapter maps it);
    ``reasoning.summary`` (``generate_summary``, its deprecated name) is checked and repeated."""
    if raw is None:
        return {"effort": None, "summary": None}
    if not isinstance(raw, dict):
        raise RequestInvalid("'reasoning' must be an object {effort, summary}", "reasoning")
    effort = raw.get("effort")
    if effort is not None:
        if not isinstance(effort, str):
            raise RequestInvalid("reasoning.effort must be a string", "reasoning")
        params["reasoning_effort"] = effort
    summary = raw.get("summary", raw.get("generate_summary"))
    if summary is not None and summary not in _SUMMARIES:
        shown = visible(repr(summary)[:40])
        raise RequestInvalid(
            f"reasoning.summary must be {', '.join(_SUMMARIES)} or null, not {shown}", "reasoning"
        )
    return {"effort": effort, "summary": summary}


def _text_format(raw: Any, params: dict[str, Any]) -> Mapping[str, Any] | None:
    """``text.format`` as the response schema; ``text.verbosity`` as OpenAI's verbosity."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise RequestInvalid("'text' must be an object {format, verbosity}", "text")
    if raw.get("verbosity") is not None:
        params["verbosity"] = raw["verbosity"]
    spec = raw.get("format")
    if spec is None:
        return None
    kind = spec.get("type") if isinstance(spec, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "object"}
    if kind == "json_schema":
        schema = spec.get("schema")
        if not isinstance(schema, dict):
            raise RequestInvalid("text.format.schema must be a JSON Schema object", "text")
        # Chat's response_format too, so a vendor that takes it gets the client's strict and name.
        chat_spec = {key: spec[key] for key in ("name", "description", "strict") if key in spec}
        params["response_format"] = {
            "type": "json_schema",
            "json_schema": {**chat_spec, "schema": schema},
        }
        return schema
    raise RequestInvalid("text.format.type must be text, json_object or json_schema", "text")
