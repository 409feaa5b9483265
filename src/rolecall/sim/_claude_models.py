"""What some Claude models refuse, for the sims that serve Claude (Anthropic's API, Bedrock).

Each sim words the refusal as its vendor does; the facts are the model's: Sonnet 4.5 and
4.6, Haiku 4.5 and Opus 4.1 take ``temperature`` or ``top_p``, not both, and each model has
its most output tokens. A model id is found as Anthropic (``claude-sonnet-4-5-20250929``)
and Bedrock (``us.anthropic.claude-sonnet-4-5-20250929-v1:0``) spell it.
"""

from __future__ import annotations

import re

__all__ = ["TEMPERATURE_WITH_TOP_P", "max_output", "refuses_both_samplers"]

TEMPERATURE_WITH_TOP_P = (
    "`temperature` and `top_p` cannot both be specified for this model. Please use only one."
)
_NAME = r"(?:^|[./])claude-{}(?![\d.])"
_ONE_SAMPLER = re.compile(_NAME.format("(?:sonnet-4-5|haiku-4-5|sonnet-4-6|opus-4-1)"))
_MAX_OUTPUT = {
    "sonnet-4-5": 64000,
    "haiku-4-5": 64000,
    "opus-4-5": 64000,
    "sonnet-4-6": 128000,
    "opus-4-6": 128000,
}


def refuses_both_samplers(model: str) -> bool:
    """Whether ``model`` refuses ``temperature`` and ``top_p`` together."""
    return _ONE_SAMPLER.search(model) is not None


def max_output(model: str) -> int | None:
    """The most output tokens ``model`` takes, when the sim knows it."""
    for name, most in _MAX_OUTPUT.items():
        if re.search(_NAME.format(re.escape(name)), model):
            return most
    return None
