"""The call parameters each wire protocol takes: one table, read by validation and adapters.

``config validate`` warns about a name a provider's protocol does not know (with a
did-you-mean: ``temp`` -> ``temperature``), and the adapters send only the names
listed here, so a typo never reaches a vendor as an unknown field that fails the
call (OpenAI rejects unknown fields) or is ignored without a word.

The names are rolecall's (OpenAI's words): ``max_tokens`` becomes
``max_completion_tokens`` for OpenAI, ``max_tokens`` for Anthropic and
``maxOutputTokens`` for Gemini; ``stop`` becomes ``stop_sequences`` or
``stopSequences``.

The sets are per parameter family; each provider type's registry row names its
family (``azure-openai`` may take the ``openai`` family), so the functions here take
a type name or a family name.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from rolecall.config._schema_errors import describe, did_you_mean
from rolecall.config.registry import provider_types
from rolecall.types import ImagePart, Message

__all__ = [
    "CAPABILITIES",
    "CAPABILITY_PARAMS",
    "DEFAULT_MAX_TOKENS",
    "IMAGE_TYPES",
    "KNOWN_PARAMS",
    "MIN_THINKING_BUDGET",
    "ROUTING_PARAMS",
    "capabilities_of",
    "finite_number",
    "image_type_problem",
    "known_params",
    "param_value_problem",
    "sendable_params",
    "suggest_param",
    "thinking_budget_problem",
    "unknown_params",
    "vendor_limit_problem",
    "vendor_value_problem",
]

log = logging.getLogger("rolecall.providers")
_warned: set[tuple[str, str]] = set()

_SAMPLING = frozenset({"temperature", "top_p", "max_tokens", "stop"})
# Tools in OpenAI's function format, translated by each adapter.
_TOOLS = frozenset({"tools", "tool_choice", "parallel_tool_calls"})
# Merged into the vendor's request body as given: the escape hatch for vendor fields.
_EXTRA = frozenset({"extra_body"})

# OpenAI Chat Completions request fields a config or a call may set (model, messages and
# stream are the adapter's own).
_OPENAI = (
    _SAMPLING
    | _TOOLS
    | _EXTRA
    | {
        "max_completion_tokens",
        "n",
        "seed",
        "presence_penalty",
        "frequency_penalty",
        "logit_bias",
        "logprobs",
        "top_logprobs",
        "user",
        "response_format",
        "reasoning_effort",
        "verbosity",
        "service_tier",
        "store",
        "metadata",
        "modalities",
        "prediction",
        "audio",
        "web_search_options",
        "prompt_cache_key",
        "safety_identifier",
        "parallel_tool_calls",
    }
)

# Sampling fields that OpenAI-compatible servers add (vLLM, llama.cpp server, Ollama,
# OpenRouter).
_COMPATIBLE = _OPENAI | {
    "top_k",
    "min_p",
    "top_a",
    "typical_p",
    "repetition_penalty",
    "repeat_penalty",
    "mirostat",
    "mirostat_tau",
    "mirostat_eta",
    "num_ctx",
    "keep_alive",
    "chat_template_kwargs",
    "reasoning",
}

# Parameter family -> the names it takes.
KNOWN_PARAMS: Mapping[str, frozenset[str]] = {
    "openai": frozenset(_OPENAI),
    "openai-compatible": frozenset(_COMPATIBLE),
    "anthropic": _SAMPLING
    | _TOOLS
    | _EXTRA
    | {"top_k", "reasoning_effort", "thinking", "user", "metadata", "response_format"},
    "google": _SAMPLING
    | _TOOLS
    | _EXTRA
    | {
        "top_k",
        "seed",
        "n",
        "presence_penalty",
        "frequency_penalty",
        "logprobs",
        "top_logprobs",
        "reasoning_effort",
        "response_format",
    },
    "local": _SAMPLING | {"top_k", "max_completion_tokens", "response_format"},
    # Bedrock Converse: inferenceConfig, toolConfig, outputConfig; top_k and thinking go in
    # additionalModelRequestFields (Claude's names).
    "bedrock": _SAMPLING
    | _TOOLS
    | _EXTRA
    | {"max_completion_tokens", "top_k", "reasoning_effort", "thinking", "response_format"},
}
_EVERY = frozenset().union(*KNOWN_PARAMS.values())
# Names the router itself reads from a call's params (none are sent as they are today).
ROUTING_PARAMS: frozenset[str] = frozenset()

# Features a request may need that not every provider has. A provider lacking one the
# request needs is skipped before it is called (a hand-over of kind ``unsupported``).
CAPABILITIES = ("tools", "images", "json_schema", "thinking", "logprobs", "n")
# The call parameters that need each capability (``drop_params`` may drop them instead).
CAPABILITY_PARAMS: Mapping[str, tuple[str, ...]] = {
    "tools": ("tools", "tool_choice", "parallel_tool_calls"),
    "json_schema": ("response_format",),
    "thinking": ("reasoning_effort", "thinking"),
    "logprobs": ("logprobs", "top_logprobs"),
    "n": ("n",),
}


# Value rules, the same for a config's params and a call's (``rolecall ask --param``).
PARAM_RANGES: Mapping[str, tuple[float, float]] = {
    "temperature": (0.0, 2.0),
    "top_p": (0.0, 1.0),
    "presence_penalty": (-2.0, 2.0),
    "frequency_penalty": (-2.0, 2.0),
}
POSITIVE_INT_PARAMS = ("max_tokens", "max_completion_tokens", "max_output_tokens", "top_k")


# Values a vendor refuses with a 400, per parameter family: a provider whose vendor would
# refuse one is skipped before it is called (``unsupported``) rather than after a wasted
# call. A family not listed is sent what it is given (OpenAI-compatible servers differ).
# OpenAI takes up to 4 stop sequences, Gemini 5, Bedrock's Converse 2500; Anthropic
# documents no limit.
STOP_LIMITS: Mapping[str, int] = {"openai": 4, "google": 5, "bedrock": 2500}
# The highest temperature each vendor takes where it is below rolecall's 2.
TEMPERATURE_LIMITS: Mapping[str, float] = {"anthropic": 1.0, "bedrock": 1.0}
# The media types each vendor takes for an inline image (``image/jpg`` where the vendor
# reads it as JPEG).
IMAGE_TYPES: Mapping[str, frozenset[str]] = {
    "openai": frozenset({"image/png", "image/jpeg", "image/jpg", "image/webp", "image/gif"}),
    "anthropic": frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"}),
    "google": frozenset(
        {"image/png", "image/jpeg", "image/jpg", "image/webp", "image/heic", "image/heif"}
    ),
    "bedrock": frozenset({"image/png", "image/jpeg", "image/jpg", "image/gif", "image/webp"}),
}


# Claude's extended thinking, on Anthropic's API and Bedrock alike: a budget of at least 1024
# tokens ("thinking.enabled.budget_tokens: Input should be greater than or equal to 1024"),
# below max_tokens ("`max_tokens` must be greater than `thinking.budget_tokens`").
THINKING_FAMILIES = frozenset({"anthropic", "bedrock"})
MIN_THINKING_BUDGET = 1024
# The max_tokens an adapter sends when none is set (Anthropic's API requires one; Bedrock's
# Converse has its own default, which rolecall does not know).
DEFAULT_MAX_TOKENS: Mapping[str, int] = {"anthropic": 4096}

# The call parameters some vendor limits below rolecall's own ranges.
_LIMITED = ("stop", "temperature", "thinking")


def vendor_limit_problem(family: str, params: Mapping[str, Any]) -> tuple[str, str] | None:
    """``(parameter, what the vendor of ``family`` refuses in it and the fix)``, or None
    when the vendor takes every value in ``params``."""
    for name in _LIMITED:
        if name in params:
            if name == "thinking":
                found = thinking_budget_problem(family, params)
            else:
                found = vendor_value_problem(family, name, params[name])
            if found is not None:
                return name, f"{found[0]} ({found[1]})"
    return None


def _thinking_budget(value: Any) -> int | None:
    """The ``budget_tokens`` of an enabled ``thinking`` value, or None."""
    if not isinstance(value, Mapping) or value.get("type") != "enabled":
        return None
    budget = value.get("budget_tokens")
    return budget if isinstance(budget, int) and not isinstance(budget, bool) else None


def _max_tokens(family: str, params: Mapping[str, Any]) -> int | None:
    """The max_tokens ``params`` give the adapter of ``family`` (Anthropic's takes only
    ``max_tokens``, Bedrock's ``max_completion_tokens`` first), or None."""
    names = ("max_tokens",) if family == "anthropic" else ("max_completion_tokens", "max_tokens")
    for name in names:
        value = params.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def thinking_budget_problem(family: str, params: Mapping[str, Any]) -> tuple[str, str] | None:
    """``(problem, fix)`` when the vendor of ``family`` refuses the thinking budget of
    ``params``: below its least, or not below the max_tokens the adapter sends."""
    budget = _thinking_budget(params.get("thinking")) if family in THINKING_FAMILIES else None
    if budget is None:
        return None
    if budget < MIN_THINKING_BUDGET:
        return (
            f"thinking budget_tokens {budget} is below {MIN_THINKING_BUDGET}, the least it takes",
            f"set thinking.budget_tokens to {MIN_THINKING_BUDGET} or more",
        )
    given = _max_tokens(family, params)
    most = given if given is not None else DEFAULT_MAX_TOKENS.get(family)
    if most is not None and budget >= most:
        unset = "" if given is not None else ", which the adapter sends when it is unset"
        return (
            f"thinking budget_tokens {budget} is not below max_tokens {most}{unset} (thinking "
            "counts in max_tokens)",
            f"set max_tokens above {budget}, or lower thinking.budget_tokens",
        )
    return None


def vendor_value_problem(family: str, name: str, value: Any) -> tuple[str, str] | None:
    """``(problem, fix)`` when the vendor of ``family`` refuses ``value`` for the call
    parameter ``name``; None when it takes it (or has no limit on ``name``)."""
    if name == "stop":
        limit = STOP_LIMITS.get(family)
        if limit is not None and isinstance(value, list | tuple) and len(value) > limit:
            return (
                f"stop has {len(value)} sequences and it takes at most {limit}",
                f"send at most {limit}",
            )
    elif name == "thinking":
        budget = _thinking_budget(value) if family in THINKING_FAMILIES else None
        if budget is not None and budget < MIN_THINKING_BUDGET:
            return thinking_budget_problem(family, {"thinking": value})
    elif name == "temperature":
        highest = TEMPERATURE_LIMITS.get(family)
        if highest is not None and finite_number(value) and value > highest:
            return (
                f"temperature {value:g} is above {highest:g}, the most it takes",
                f"set temperature between 0 and {highest:g}",
            )
    return None


def image_type_problem(family: str, messages: Sequence[Message]) -> tuple[str, str] | None:
    """``("messages", why)`` for the first inline image ``family``'s vendor cannot take."""
    types = IMAGE_TYPES.get(family)
    if types is None or not any(message.parts for message in messages):
        return None
    for index, message in enumerate(messages):
        for number, part in enumerate(message.parts):
            inline = part.inline if isinstance(part, ImagePart) else None
            if inline is not None and inline[0].lower() not in types:
                return "messages", (
                    f"messages[{index}].content[{number}] is an image of type "
                    f"{inline[0][:40]!r}, which it does not take (send one of "
                    f"{', '.join(sorted(types))})"
                )
    return None


def finite_number(value: Any) -> bool:
    """An int or float (not a bool), neither NaN nor infinite."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def param_value_problem(name: str, value: Any) -> tuple[str, str] | None:
    """``(problem, fix)`` when ``value`` is out of range or of the wrong type for the call
    parameter ``name``; None when it may be sent."""
    unquote = " (remove the quotes)" if _looks_numeric(value) else ""
    if name in PARAM_RANGES:
        low, high = PARAM_RANGES[name]
        if not (finite_number(value) and low <= value <= high):
            return (
                f"{name} must be a number from {low:g} to {high:g} (got {describe(value)})",
                f"set {name} between {low:g} and {high:g}{unquote}",
            )
    elif name in POSITIVE_INT_PARAMS:
        if not (isinstance(value, int) and not isinstance(value, bool) and value > 0):
            return (
                f"{name} must be a whole number above 0 (got {describe(value)})",
                f"set {name} to a positive whole number, e.g. 4096{unquote}",
            )
    elif name == "stop":
        if not (isinstance(value, str) or _strings(value)):
            return (
                f"stop must be a string or a list of strings (got {describe(value)})",
                "set stop to a string, or a list such as ['\\n\\n']",
            )
    elif _non_finite(value):
        return (
            f"{name} holds .nan or .inf, which no request can carry",
            f"give {name} a finite number",
        )
    return None


def _strings(value: Any) -> bool:
    return isinstance(value, list | tuple) and all(isinstance(item, str) for item in value)


def _non_finite(value: Any) -> bool:
    """Whether a parameter value holds .nan or .inf anywhere (JSON cannot send them)."""
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_non_finite(item) for item in value.values())
    if isinstance(value, list):
        return any(_non_finite(item) for item in value)
    return False


def _looks_numeric(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return isinstance(value, str)


def capabilities_of(
    provider_type: str, overrides: Mapping[str, bool] | None = None
) -> frozenset[str]:
    """What a provider of ``provider_type`` can take: its registry row's defaults, with the
    config's ``capabilities:``; every capability for a type the registry does not know."""
    row = provider_types().get(provider_type)
    defaults = row.capabilities if row is not None else dict.fromkeys(CAPABILITIES, True)
    have = {name for name, value in defaults.items() if value}
    for name, value in (overrides or {}).items():
        if value:
            have.add(name)
        else:
            have.discard(name)
    return frozenset(have)


def known_params(protocol: str | None) -> frozenset[str]:
    """The names ``protocol`` (a provider type or a parameter family) takes; every
    family's names when it is unknown or None."""
    if protocol is None:
        return _EVERY
    row = provider_types().get(protocol)
    family = row.param_family if row is not None else protocol
    return KNOWN_PARAMS.get(family, _EVERY)


def unknown_params(protocol: str | None, names: Iterable[str]) -> list[str]:
    """The names in ``names`` that ``protocol`` does not take, in order."""
    known = known_params(protocol)
    return [name for name in names if name not in known]


def suggest_param(name: str, known: Iterable[str]) -> str | None:
    """The known name ``name`` most likely stands for (a typo or a prefix: temp -> temperature)."""
    options = sorted(known)
    close = did_you_mean(name, options)
    if close is not None:
        return close
    lowered = name.lower()
    starts = [option for option in options if len(lowered) >= 3 and option.startswith(lowered)]
    return min(starts, key=len) if starts else None


def sendable_params(protocol: str, params: Mapping[str, Any]) -> Mapping[str, Any]:
    """``params`` without the names ``protocol`` does not take; each dropped name is logged
    once per process. A call's own params never get here with such a name: the router
    skips a provider that cannot take one, unless ``drop_params`` drops it first."""
    if not params:
        return params
    unknown = unknown_params(protocol, params)
    if not unknown:
        return params
    for name in unknown:
        if (protocol, name) not in _warned:
            _warned.add((protocol, name))
            close = suggest_param(name, known_params(protocol))
            hint = f" (did you mean '{close}'?)" if close else ""
            log.warning("parameter '%s' is unknown to %s and is not sent%s", name, protocol, hint)
    return {key: value for key, value in params.items() if key not in unknown}
