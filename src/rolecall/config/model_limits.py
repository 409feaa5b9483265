"""Values a vendor refuses for some of its models, not for the vendor as a whole.

``config/params.py`` holds the limits of a whole vendor (stop sequences, temperature
range, image types); this table holds those of a model, found by a pattern searched in
the model name (a dated id, ``claude-sonnet-4-5-20250929``, and Vertex's
``claude-sonnet-4-5@20250929`` match ``claude-sonnet-4-5``). The router skips a provider
whose model would refuse the request (``unsupported``, before any call) and ``config
validate`` reports the value. A model no row matches gets no limit: rolecall never refuses
what the vendor might accept. Each row is what the vendor's own 400 says:

- OpenAI's reasoning models take only the default ``temperature`` and ``top_p`` (1)
  ("Unsupported value: 'temperature' does not support 0.2 with this model. Only the
  default (1) value is supported."); the o-series takes log probabilities and the
  penalties only at their default (off), and o3 and o4-mini refuse ``stop``
  ("Unsupported parameter: 'stop' is not supported with this model."). gpt-5.1 and
  later take a temperature with ``reasoning_effort: none``, so only ``gpt-5`` itself and
  its mini, nano and codex are listed.
- Claude Sonnet 4.5 and 4.6, Haiku 4.5 and Opus 4.1 refuse ``temperature`` and ``top_p``
  together ("`temperature` and `top_p` cannot both be specified for this model. Please use
  only one."); each Claude model has its most output tokens ("max_tokens: 200000 > 64000,
  which is the maximum allowed number of output tokens for claude-sonnet-4-5-20250929").
  Claude on Bedrock (``us.anthropic.claude-sonnet-4-5-20250929-v1:0``) refuses the same,
  as a ValidationException ("The model returned the following errors: `temperature` and
  `top_p` cannot both be specified...", "The maximum tokens you requested exceeds the
  model limit of 64000..."), so its rows hold for both families.
- Gemini 2.5 Pro and 3.1 Pro cannot turn thinking off ("Budget 0 is invalid. This model
  only works in thinking mode."): ``reasoning_effort: none`` is their refused value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

__all__ = ["MODEL_LIMITS", "ModelLimits", "model_limits"]


@dataclass(frozen=True, slots=True)
class ModelLimits:
    """What the models of the parameter ``families`` whose name matches ``pattern`` refuse."""

    families: frozenset[str]
    pattern: str  # searched in the model name, from a word start
    # parameter -> the one value the model takes (its default); any other is refused
    only: Mapping[str, Any] = field(default_factory=dict)
    # parameters the model refuses whatever their value
    refused: frozenset[str] = frozenset()
    # parameter -> values the model refuses
    refused_values: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    # parameters the model refuses together
    apart: tuple[str, ...] = ()
    max_output: int | None = None  # the most max_tokens it takes
    # every parameter a rule here looks at, in the order they are looked at
    order: tuple[str, ...] = field(init=False)
    names: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        names = [*self.refused, *self.only, *self.refused_values, *self.apart]
        if self.max_output is not None:
            names += _MAX_TOKENS
        order = tuple(dict.fromkeys(sorted(self.refused) + names))
        object.__setattr__(self, "order", order)
        object.__setattr__(self, "names", frozenset(order))

    def problem(self, name: str, value: Any) -> tuple[str, str] | None:
        """``(problem, fix)`` when the model refuses ``value`` for ``name`` on its own."""
        if value is None:
            return None
        if name in self.refused:
            return f"it does not take {name}", f"leave {name} out"
        if name in self.only:
            default = self.only[name]
            if value != default or isinstance(value, bool) != isinstance(default, bool):
                return (
                    f"{name} {_shown(value)} is refused: it takes only the default "
                    f"({_shown(default)})",
                    f"leave {name} out",
                )
        elif value in self.refused_values.get(name, ()):
            return f"{name} {_shown(value)} is refused", f"set another {name}, or leave it out"
        elif (
            name in _MAX_TOKENS
            and self.max_output is not None
            and isinstance(value, int)
            and value > self.max_output
        ):
            return (
                f"{name} {value} is above {self.max_output}, the most it writes",
                f"set {name} to at most {self.max_output}",
            )
        return None

    def params_problem(self, params: Mapping[str, Any]) -> tuple[str, str, str] | None:
        """``(parameter, problem, fix)`` for the first thing in ``params`` the model refuses."""
        for name in self.order:
            if name in params:
                found = self.problem(name, params[name])
                if found is not None:
                    return name, *found
        if self.apart and all(params.get(name) is not None for name in self.apart):
            return self.apart_problem()
        return None

    def apart_problem(self) -> tuple[str, str, str]:
        both = " and ".join(self.apart)
        return (
            self.apart[-1],
            f"it refuses {both} together",
            f"set only one of {both}",
        )


def _shown(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else repr(value)[:40]


_MAX_TOKENS = ("max_tokens", "max_completion_tokens")
_ANTHROPIC_APART = ("temperature", "top_p")
# What OpenAI's o-series takes only at its default.
_O_SERIES = {
    "temperature": 1,
    "top_p": 1,
    "presence_penalty": 0,
    "frequency_penalty": 0,
    "logprobs": False,
}
# Claude model names, as Anthropic, Vertex (``@date``) and Bedrock (``anthropic.``) spell them.
_CLAUDE = r"(?:^|[./])claude-{}(?![\d.])"
# Claude is served by Anthropic's API and by Bedrock's Converse, which refuse alike.
_CLAUDE_FAMILIES = frozenset({"anthropic", "bedrock"})


def _claude(name: str, **rules: Any) -> ModelLimits:
    return ModelLimits(_CLAUDE_FAMILIES, _CLAUDE.format(re.escape(name)), **rules)


def _one(family: str) -> frozenset[str]:
    return frozenset({family})


MODEL_LIMITS: tuple[ModelLimits, ...] = (
    ModelLimits(
        _one("openai"),
        r"^(?:o3|o4-mini)(?:-\d{4}-\d\d-\d\d)?$",
        only=_O_SERIES,
        refused=frozenset({"stop"}),
    ),
    ModelLimits(_one("openai"), r"^o[134](?:-|$)", only=_O_SERIES),
    ModelLimits(
        _one("openai"),
        r"^gpt-5(?:-mini|-nano|-codex)?(?:-\d{4}-\d\d-\d\d)?$",
        only={"temperature": 1},
    ),
    _claude("sonnet-4-5", apart=_ANTHROPIC_APART, max_output=64000),
    _claude("haiku-4-5", apart=_ANTHROPIC_APART, max_output=64000),
    _claude("sonnet-4-6", apart=_ANTHROPIC_APART, max_output=128000),
    _claude("opus-4-1", apart=_ANTHROPIC_APART),
    _claude("opus-4-5", max_output=64000),
    _claude("opus-4-6", max_output=128000),
    ModelLimits(
        _one("google"),
        r"(?:^|/)gemini-(?:2\.5|3\.1)-pro(?![\w.])",
        refused_values={"reasoning_effort": ("none",)},
    ),
)


@cache
def model_limits(family: str, model: str | None) -> ModelLimits | None:
    """The row for ``model`` of the parameter ``family``, or None (no limit known)."""
    if not model:
        return None
    for row in MODEL_LIMITS:
        if family in row.families and re.search(row.pattern, model.lower()):
            return row
    return None
