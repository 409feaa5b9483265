"""An incoming Anthropic Messages body, checked and turned into a router call.

The body is translated into the internal form (OpenAI-shaped messages and params,
see :mod:`rolecall.types`) so that any provider, of any protocol, can answer it.
The conversation is translated by ``_messages_content``; the rest here:

- ``tools`` become function tools (``_messages_tools``: deferred ones once the
  conversation loads them), ``tool_choice`` auto/any/tool/none becomes
  auto/required/{function}/none (``disable_parallel_tool_use`` becomes
  ``parallel_tool_calls: false``), ``stop_sequences`` becomes ``stop``.
- ``thinking: {type: enabled, budget_tokens}`` (or ``adaptive``) is sent as
  ``thinking`` (the Anthropic adapter's field) and as the ``reasoning_effort`` the
  budget stands for (every other protocol's); ``disabled`` asks for nothing.
  ``output_config.effort`` is a ``reasoning_effort`` too, ``output_config.format``
  a response schema. A provider whose model cannot reason answers such requests
  without it when its config says ``capabilities: {thinking: false}`` and
  ``drop_params`` lists ``thinking`` and ``reasoning_effort``.
- ``top_k`` is forwarded: the adapters whose protocol has no such field drop it
  with a logged warning (``config/params.py``).

Fields of Anthropic's API that steer Anthropic's own servers (``metadata``,
``service_tier``, ``container``, ``mcp_servers``, ``context_management``...) are
accepted and left out, so an agent such as Claude Code that sends them works; any
other field is a 400 naming it, as is a tool the gateway cannot carry (a server
tool such as ``web_search``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rolecall._text import visible
from rolecall.config.params import finite_number, suggest_param
from rolecall.gateway._chat_request import RequestInvalid, model_and_stream
from rolecall.gateway._messages_content import conversation, system_turn
from rolecall.gateway._messages_tools import ToolCatalog, read_tool_choice
from rolecall.types import Message

__all__ = [
    "ROUTER_FIELDS",
    "MessagesRequest",
    "RequestInvalid",
    "parse_messages_request",
    "thinking_effort",
]


@dataclass(frozen=True, slots=True)
class MessagesRequest:
    model: str
    messages: tuple[Message, ...]
    params: dict[str, Any] = field(default_factory=dict)
    response_schema: Mapping[str, Any] | None = None
    stream: bool = False

    @property
    def asks_thinking(self) -> bool:
        """Whether the client asked for thinking (``enabled``, ``adaptive``...)."""
        return self.params.get("thinking") is not None


_OWN = frozenset(
    {
        "model",
        "max_tokens",
        "messages",
        "system",
        "stream",
        "tools",
        "tool_choice",
        "stop_sequences",
        "temperature",
        "top_p",
        "top_k",
        "thinking",
        "output_config",
    }
)
# Accepted and not forwarded: they steer Anthropic's own servers (storage, capacity,
# server-side tools and context editing, workspaces), which no other vendor has.
IGNORED_FIELDS = frozenset(
    {
        "metadata",
        "service_tier",
        "container",
        "mcp_servers",
        "context_management",
        "cache_control",
        "diagnostics",
        "inference_geo",
        "speed",
        "user_profile_id",
        "workspace_id",
        "betas",
        "anthropic_version",
    }
)
_KNOWN = _OWN | IGNORED_FIELDS
# The router's names for the fields Anthropic's API spells otherwise (for the errors that
# name a parameter no provider takes).
ROUTER_FIELDS = {
    "stop": "stop_sequences",
    "parallel_tool_calls": "tool_choice.disable_parallel_tool_use",
}
# Budget (tokens) below which each reasoning_effort is asked for: the Anthropic
# adapter's own budgets (low 1024, medium 4096, high 16384) read backwards.
_EFFORT_BY_BUDGET = ((4096, "low"), (16384, "medium"))
_EFFORTS = {"low": "low", "medium": "medium", "high": "high", "xhigh": "high", "max": "high"}


def parse_messages_request(body: Any, *, counting: bool = False) -> MessagesRequest:
    """Check an Anthropic Messages body; raise :class:`RequestInvalid` naming the field.

    ``counting``: a ``count_tokens`` body, which needs no ``max_tokens`` (and a
    generation's fields in it are accepted and unused).
    """
    if not isinstance(body, dict):
        raise RequestInvalid("the request body must be a JSON object")
    _refuse_unknown(body)
    model, stream = model_and_stream(body)
    params = _params(body, counting)
    schema = _output_config(body.get("output_config"), params)
    system = system_turn(body.get("system"))
    tools = ToolCatalog(body.get("tools"))
    turns = conversation(body.get("messages"), tools)  # may load deferred tools
    if tools.active:
        params["tools"] = tools.functions()
    return MessagesRequest(
        model=model,
        messages=system + turns,
        params=params,
        response_schema=schema,
        stream=stream,
    )


def _refuse_unknown(body: Mapping[str, Any]) -> None:
    for name in body:
        if name not in _KNOWN:
            close = suggest_param(name, _KNOWN)
            hint = f" (did you mean '{close}'?)" if close else ""
            raise RequestInvalid(
                f"{visible(name)}: Extra inputs are not permitted{hint}; the rolecall gateway "
                "takes the fields of Anthropic's Messages API",
                name,
            )


# Parameters ----------------------------------------------------------------------------
def _params(body: Mapping[str, Any], counting: bool = False) -> dict[str, Any]:
    max_tokens = None if counting else _max_tokens(body.get("max_tokens"))
    params: dict[str, Any] = {} if max_tokens is None else {"max_tokens": max_tokens}
    for name in ("temperature", "top_p"):
        value = body.get(name)
        if value is not None:
            if not finite_number(value) or not 0 <= value <= 1:
                raise RequestInvalid(f"{name}: must be a number from 0 to 1", name)
            params[name] = value
    top_k = body.get("top_k")
    if top_k is not None:
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0:
            raise RequestInvalid("top_k: must be an integer of at least 0", "top_k")
        params["top_k"] = top_k
    stop = body.get("stop_sequences")
    if stop is not None:
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
            raise RequestInvalid("stop_sequences: must be an array of strings", "stop_sequences")
        if stop:
            params["stop"] = stop
    if body.get("tool_choice") is not None:
        params.update(read_tool_choice(body["tool_choice"]))
    params.update(_thinking(body.get("thinking"), max_tokens))
    return params


def _max_tokens(value: Any) -> int:
    if value is None:
        raise RequestInvalid("max_tokens: Field required", "max_tokens")
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise RequestInvalid(
            "max_tokens: must be an integer of at least 1 (the gateway does not pre-warm "
            "prompt caches)",
            "max_tokens",
        )
    return value


def thinking_effort(budget: int) -> str:
    """The ``reasoning_effort`` a thinking budget stands for."""
    for below, effort in _EFFORT_BY_BUDGET:
        if budget < below:
            return effort
    return "high"


def _thinking(raw: Any, max_tokens: int | None) -> dict[str, Any]:
    if raw is None:
        return {}
    kind = raw.get("type") if isinstance(raw, dict) else None
    if kind == "disabled":
        return {}
    if kind in ("adaptive", "between_tools"):
        return {"thinking": {"type": kind}, "reasoning_effort": "medium"}
    if kind != "enabled":
        raise RequestInvalid(
            "thinking: must be {type: enabled, budget_tokens}, {type: adaptive} or "
            "{type: disabled}",
            "thinking",
        )
    budget = raw.get("budget_tokens")
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1024:
        raise RequestInvalid(
            "thinking.budget_tokens: must be an integer of at least 1024", "thinking"
        )
    if max_tokens is not None and budget >= max_tokens:
        raise RequestInvalid(
            f"thinking.budget_tokens: must be less than max_tokens ({max_tokens})", "thinking"
        )
    thinking = {"type": "enabled", "budget_tokens": budget}
    return {"thinking": thinking, "reasoning_effort": thinking_effort(budget)}


def _output_config(raw: Any, params: dict[str, Any]) -> Mapping[str, Any] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise RequestInvalid("output_config: must be an object", "output_config")
    effort = raw.get("effort")
    if effort is not None:
        if not isinstance(effort, str) or effort not in _EFFORTS:
            raise RequestInvalid(
                "output_config.effort: must be low, medium, high, xhigh or max", "output_config"
            )
        params.setdefault("reasoning_effort", _EFFORTS[effort])
    fmt = raw.get("format")
    if fmt is None:
        return None
    schema = fmt.get("schema") if isinstance(fmt, dict) else None
    if (
        not isinstance(fmt, dict)
        or fmt.get("type") != "json_schema"
        or not isinstance(schema, dict)
    ):
        raise RequestInvalid(
            "output_config.format: must be {type: json_schema, schema: {...}}", "output_config"
        )
    return schema
