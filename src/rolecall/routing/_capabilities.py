"""What a request needs and what each provider can take: skip, never drop in silence.

A request needs ``tools`` when its params carry tools, ``images`` when a message has
an image part, ``json_schema`` for a response schema, ``thinking`` for a reasoning
effort, ``logprobs`` for log probabilities and ``n`` for more than one choice. A
provider lacking one (its type's defaults, then the config's ``capabilities:``) is
skipped before it is called: the router records a hand-over of kind ``unsupported``
at attempt 0 with no latency (no call was made) and leaves its health alone.

Call parameters are checked here too: a name no protocol knows is an error before any
provider is called, unless the config's ``drop_params`` lists it. A name another
protocol takes but a provider's does not (OpenAI's ``logit_bias`` for Anthropic,
``top_k`` for OpenAI, ``user`` for Gemini) skips that provider the same way, unless its
value asks for nothing (``n: 1``, ``logprobs: false``); ``reasoning_effort: none`` asks
nothing of a provider without thinking either, and it is called without the field. A value
the provider's vendor refuses with a 400 (``config/params.py``: more stop sequences than it
takes, a temperature above its range, an image type it cannot read, a thinking budget Claude
refuses) skips it too. A name ``drop_params`` lists is instead dropped, per provider, where
that provider cannot take it. Params from the config are not the caller's: the adapters
leave out the names they cannot send, and ``config validate`` warns about them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rolecall.config.model_limits import ModelLimits, model_limits
from rolecall.config.params import (
    CAPABILITIES,
    CAPABILITY_PARAMS,
    ROUTING_PARAMS,
    capabilities_of,
    image_type_problem,
    known_params,
    param_value_problem,
    suggest_param,
    vendor_limit_problem,
)
from rolecall.config.registry import provider_types
from rolecall.config.schema import RolecallConfig
from rolecall.errors import ErrorKind, ProviderError, UnknownParameter
from rolecall.routing._task import refused
from rolecall.types import ChatRequest, ImagePart, Message

__all__ = ["Capabilities", "UnknownParameter", "needed"]

_THINKING_OFF = "none"  # the reasoning_effort of no thinking at all
_OFF = (None, False, _THINKING_OFF, "disabled")
# Parameter families whose chat format names a turn's participant (``name``).
_NAMED_FAMILIES = ("openai", "openai-compatible")
# Values that ask for nothing, so a provider that cannot take the name loses nothing.
_ASKS_NOTHING: Mapping[str, tuple[Any, ...]] = {
    "n": (1,),
    "logprobs": (False,),
    "top_logprobs": (0,),
    "presence_penalty": (0,),
    "frequency_penalty": (0,),
    "parallel_tool_calls": (True,),
    "tool_choice": ("auto", "none"),
    "tools": ([],),
    "response_format": ({"type": "text"},),
    "reasoning_effort": (_THINKING_OFF,),
}


def _wants_thinking(params: Mapping[str, Any]) -> bool:
    effort = params.get("reasoning_effort")
    thinking = params.get("thinking")
    if isinstance(thinking, Mapping):
        thinking = thinking.get("type", "enabled")
    return effort not in _OFF or thinking not in _OFF


def _wants_json_schema(request: ChatRequest) -> bool:
    if request.response_schema is not None:
        return True
    response_format = request.params.get("response_format")
    return isinstance(response_format, Mapping) and response_format.get("type") == "json_schema"


def _has_images(messages: Sequence[Message]) -> bool:
    for message in messages:  # most have no parts: no generator for them
        if message.parts and any(isinstance(part, ImagePart) for part in message.parts):
            return True
    return False


def _named_turn(messages: Sequence[Message]) -> int | None:
    """The index of the first turn naming its participant (a tool turn's name is its
    function's, which every protocol carries), or None."""
    for index, message in enumerate(messages):
        if message.name is not None and message.role != "tool":
            return index
    return None


def needed(request: ChatRequest) -> frozenset[str]:
    """The capabilities ``request`` needs (empty for a plain text call)."""
    params = request.params
    needs: list[str] = []
    if params:
        if params.get("tools"):
            needs.append("tools")
        if _wants_thinking(params):
            needs.append("thinking")
        if params.get("logprobs") is True or params.get("top_logprobs") is not None:
            needs.append("logprobs")
        n = params.get("n")
        if isinstance(n, int) and n > 1:
            needs.append("n")
    if _wants_json_schema(request):
        needs.append("json_schema")
    if _has_images(request.messages):
        needs.append("images")
    return frozenset(needs)


class Capabilities:
    """Per provider: what it can take and which parameters ``drop_params`` removes from it."""

    def __init__(self, config: RolecallConfig) -> None:
        self._config = config
        self._drop = frozenset(config.drop_params)
        self._known = known_params(None) | ROUTING_PARAMS | self._drop
        self._have: dict[str, frozenset[str]] = {}
        self._dropped: dict[str, frozenset[str]] = {}
        # Names some protocol takes and this provider's does not: a call that sends one
        # skips the provider (none for a type the registry does not know).
        self._foreign: dict[str, frozenset[str]] = {}
        # Providers whose protocol has no participant names (all but OpenAI's chat format;
        # none for a type the registry does not know).
        types = provider_types()
        self._nameless = frozenset(
            pid
            for pid, provider in config.providers.items()
            if provider.type in types and types[provider.type].param_family not in _NAMED_FAMILIES
        )
        # Each provider's parameter family, for the values its vendor refuses.
        self._family = {
            pid: types[provider.type].param_family
            for pid, provider in config.providers.items()
            if provider.type in types
        }
        # The limits of each provider's model, for the providers whose model has some.
        self._model_limits: dict[str, ModelLimits] = {}
        for pid, family in self._family.items():
            limits = model_limits(family, config.providers[pid].model)
            if limits is not None:
                self._model_limits[pid] = limits
        every = known_params(None)
        for pid, provider in config.providers.items():
            overrides = provider.capabilities.overrides() if provider.capabilities else None
            have = capabilities_of(provider.type, overrides)
            self._have[pid] = have
            cannot = {
                name
                for capability, names in CAPABILITY_PARAMS.items()
                if capability not in have
                for name in names
            }
            self._dropped[pid] = frozenset(
                name
                for name in self._drop
                if name not in known_params(provider.type) or name in cannot
            )
            foreign = every - known_params(provider.type) - ROUTING_PARAMS - self._drop
            if foreign:
                self._foreign[pid] = foreign

    def check_call(self, params: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
        """The call's params without the unknown names ``drop_params`` lists; raises
        :class:`UnknownParameter` for any other name no protocol knows."""
        if not params:
            return params
        if not isinstance(params, Mapping):
            raise refused(
                f"params must be a mapping of parameter names to values, not "
                f"{type(params).__name__}: pass e.g. {{'temperature': 0.2}}"
            )
        known = self._known
        unknown = [name for name in params if name not in known]
        if unknown:
            name = unknown[0]
            if not isinstance(name, str):
                raise UnknownParameter(f"parameter names must be strings, not {name!r}")
            close = suggest_param(name, known_params(None))
            hint = f"did you mean '{close}'?" if close else "check the name"
            raise UnknownParameter(
                f"unknown parameter '{name}': no provider takes it; {hint} "
                f"(or list it in drop_params to drop it)"
            )
        for name, value in params.items():
            problem = param_value_problem(name, value)
            if problem is not None:
                raise refused(f"{problem[0]}: {problem[1]}")
        if "max_completion_tokens" in params:
            # OpenAI's newer name for max_tokens, which every protocol takes; it wins over
            # max_tokens, as in OpenAI's API and the gateway.
            renamed = {k: v for k, v in params.items() if k != "max_completion_tokens"}
            renamed["max_tokens"] = params["max_completion_tokens"]
            params = renamed
        if self._drop and not self._drop.isdisjoint(params):
            every = known_params(None)
            return {k: v for k, v in params.items() if k in every or k not in self._drop}
        return params

    def fit(
        self, pid: str, request: ChatRequest, call_params: Mapping[str, Any] | None = None
    ) -> ChatRequest | ProviderError:
        """``request`` as ``pid`` should get it, or why ``pid`` cannot take it;
        ``call_params`` are the caller's own (a foreign name among them skips ``pid``)."""
        dropped = self._dropped.get(pid)
        if dropped and not dropped.isdisjoint(request.params):
            params = {k: v for k, v in request.params.items() if k not in dropped}
            request = ChatRequest(request.messages, params, request.response_schema)
        have = self._have.get(pid)
        if have is None:  # a provider given to the router without a config entry
            return request
        if pid in self._nameless and "name" not in self._drop:
            named = _named_turn(request.messages)
            if named is not None:
                return self._nameless_turn(pid, named)
        needs: frozenset[str] | None = None
        if not have.issuperset(CAPABILITIES):  # may lack something a request needs
            needs = needed(request)
            if needs:
                missing = [name for name in CAPABILITIES if name in needs and name not in have]
                if missing:
                    return self._unsupported(pid, missing)
            if "reasoning_effort" in request.params and "thinking" not in have:
                request = _without_thinking_off(request)
        if call_params:
            foreign = self._foreign.get(pid)
            if foreign and not foreign.isdisjoint(call_params):
                names = _asked(foreign, call_params)
                if names:
                    return self._not_taken(pid, names)
        family = self._family.get(pid)
        if family is not None:  # values its vendor refuses; looked at only when present
            values = request.params
            refused_value = None
            if "stop" in values or "temperature" in values or "thinking" in values:
                refused_value = vendor_limit_problem(family, values)
            has_images = "images" in needs if needs is not None else _has_images(request.messages)
            if refused_value is None and has_images:
                refused_value = image_type_problem(family, request.messages)
            if refused_value is not None:
                return self._refused_value(pid, *refused_value)
            limits = self._model_limits.get(pid) if values else None
            if limits is not None and not limits.names.isdisjoint(values):
                found = limits.params_problem(values)
                if found is not None:
                    name, problem, fix = found
                    model = self._config.providers[pid].model
                    return self._refused_value(pid, name, f"model {model}: {problem} ({fix})")
        return request

    def _unsupported(self, pid: str, missing: Sequence[str]) -> ProviderError:
        provider = self._config.providers[pid]
        features = ", ".join(missing)
        return ProviderError(
            f"the request needs {features}, which provider '{pid}' ({provider.type}) "
            f"cannot take; not called (set providers.{pid}.capabilities.{missing[0]}: true "
            "if it can)",
            kind=ErrorKind.UNSUPPORTED,
            provider=pid,
            retryable=False,
        )

    def _nameless_turn(self, pid: str, index: int) -> ProviderError:
        provider = self._config.providers[pid]
        return ProviderError(
            f"messages[{index}].name cannot be sent to provider '{pid}' ({provider.type}): "
            "its API has no participant names; not called (leave the name out, write it "
            "into the content, or add name to drop_params)",
            kind=ErrorKind.UNSUPPORTED,
            provider=pid,
            retryable=False,
        )

    def _refused_value(self, pid: str, name: str, problem: str) -> ProviderError:
        provider = self._config.providers[pid]
        return ProviderError(
            f"provider '{pid}' ({provider.type}) would refuse the request: {problem}; not called",
            kind=ErrorKind.UNSUPPORTED,
            provider=pid,
            retryable=False,
            params=(name,) if name != "messages" else (),
        )

    def _not_taken(self, pid: str, names: Sequence[str]) -> ProviderError:
        provider = self._config.providers[pid]
        quoted = ", ".join(f"'{name}'" for name in names)
        noun = "parameter" if len(names) == 1 else "parameters"
        return ProviderError(
            f"{noun} {quoted} cannot be sent to provider '{pid}' ({provider.type}): its "
            "API has no such field; not called (leave it out, or list it in drop_params "
            "to send the call without it)",
            kind=ErrorKind.UNSUPPORTED,
            provider=pid,
            retryable=False,
            params=names,
        )


def _without_thinking_off(request: ChatRequest) -> ChatRequest:
    """``request`` without ``reasoning_effort: none``, which asks nothing of a provider that
    cannot think, and which a server that has no such field may refuse."""
    if request.params["reasoning_effort"] != _THINKING_OFF:
        return request
    params = {k: v for k, v in request.params.items() if k != "reasoning_effort"}
    return ChatRequest(request.messages, params, request.response_schema)


def _asked(foreign: frozenset[str], params: Mapping[str, Any]) -> list[str]:
    """The names in ``params`` that are ``foreign`` and ask for something."""
    names: list[str] = []
    for name, value in params.items():
        if name not in foreign or value is None:
            continue
        if name == "thinking":
            # reasoning_effort, which every protocol with thinking takes, carries it.
            if "reasoning_effort" in params or not _wants_thinking({"thinking": value}):
                continue
        elif any(
            value is nothing or (value == nothing and type(value) is not bool)
            for nothing in _ASKS_NOTHING.get(name, ())
        ):
            continue
        names.append(name)
    return names
