"""Bedrock Converse content in the sim: request checks, and tool use, reasoning and cache points.

The checks are Converse's own rules, with its ValidationException wording where it is
known: a conversation starts with a user turn and alternates roles, a content block
holds exactly one member (``text``, ``image``, ``toolUse``, ``toolResult``,
``reasoningContent``, ``cachePoint``...), text is not blank, images are base64 bytes
of a known format, ``toolUse``/``toolResult`` need a ``toolConfig`` and every
``toolUse`` is answered by a ``toolResult`` in the next turn, and
``inferenceConfig`` values are in range. Reasoning is signed as Claude's is on Bedrock
(:func:`reasoning_block`: a ``reasoningText`` signature, or ``redactedContent`` bytes for
thinking that starts with ``[redacted]``); with thinking on, the assistant turn whose tool
uses the last turn answers must start with its ``reasoningContent``, and every
``reasoningContent`` sent back must carry what this sim issued, or the request gets the
model's error as Bedrock relays it. Claude models refuse what they refuse on Anthropic's API
(``_claude_models.py``): temperature and top_p together, more output tokens than they write.

Without a responder saying otherwise, the fake model calls the first tool when it is
offered tools (``toolChoice`` auto or any) and the last turn is not a tool result,
with the smallest input its schema allows; reasons when
``additionalModelRequestFields`` turns thinking on (Claude's ``thinking``, or
``reasoningConfig``); and reports the prompt up to the last ``cachePoint`` as written
to the cache the first time it sees that prefix and read from it afterwards.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import replace
from typing import Any

# Claude on Bedrock thinks and refuses as on Anthropic's API.
from rolecall.sim._anthropic_content import NO_THINKING_FIRST, REDACT_MARK, THINKING_TEXT
from rolecall.sim._claude_models import TEMPERATURE_WITH_TOP_P, max_output, refuses_both_samplers
from rolecall.sim._common import Answer, Ctx, count_words, minimal_instance, new_id, texts_of
from rolecall.types import ToolCall

__all__ = [
    "check_request",
    "enrich",
    "forced_tool",
    "model_refuses",
    "prompt_texts",
    "reasoning_block",
    "sign",
    "tool_use_id",
]

_MEMBERS = frozenset(
    {
        "text",
        "image",
        "document",
        "video",
        "audio",
        "toolUse",
        "toolResult",
        "guardContent",
        "cachePoint",
        "reasoningContent",
        "citationsContent",
        "searchResult",
    }
)
_FORMATS = frozenset({"png", "jpeg", "gif", "webp"})
_RANGES = {"temperature": (0.0, 1.0), "topP": (0.0, 1.0)}
_SIGNING_KEY = b"rolecall-sim-bedrock-reasoning"
_REDACTED = "REDACTED:"  # redacted bytes: this prefix, the thinking in base64, a seal
_MODEL_ERROR = "The model returned the following errors: "


def tool_use_id() -> str:
    """Bedrock's shape: ``tooluse_`` and 22 URL-safe characters."""
    return "tooluse_" + base64.urlsafe_b64encode(bytes.fromhex(new_id(""))[:16]).decode()[:22]


def sign(text: str) -> str:
    """The signature the sim gives reasoning: opaque, and checked when sent back."""
    digest = hmac.new(_SIGNING_KEY, text.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def reasoning_block(reasoning: str) -> dict[str, Any]:
    """A ``reasoningContent`` member, signed; redacted bytes (base64 in JSON) when the
    scripted thinking starts with ``[redacted]``."""
    if reasoning.startswith(REDACT_MARK):
        payload = base64.b64encode(reasoning.encode()).decode()
        sealed = f"{_REDACTED}{payload}:{sign(payload)[:16]}"
        return {"redactedContent": base64.b64encode(sealed.encode()).decode()}
    return {"reasoningText": {"text": reasoning, "signature": sign(reasoning)}}


def _issued(reasoning: Any) -> bool:
    """Whether a ``reasoningContent`` sent back is one this sim issued, unchanged."""
    if not isinstance(reasoning, dict):
        return False
    if "redactedContent" in reasoning:
        try:
            sealed = base64.b64decode(str(reasoning["redactedContent"]), validate=True).decode()
        except (binascii.Error, ValueError):
            return False
        payload, _, seal = sealed.removeprefix(_REDACTED).rpartition(":")
        return sealed.startswith(_REDACTED) and hmac.compare_digest(seal, sign(payload)[:16])
    text = reasoning.get("reasoningText")
    if not isinstance(text, dict):
        return False
    signature, thinking = text.get("signature"), text.get("text")
    if not isinstance(signature, str) or not isinstance(thinking, str):
        return False
    return hmac.compare_digest(signature, sign(thinking))


def _constraint(value: Any, where: str, rule: str) -> str:
    return (
        f"1 validation error detected: Value '{value}' at '{where}' failed to satisfy "
        f"constraint: Member must {rule}"
    )


# Checks --------------------------------------------------------------------------------
def check_request(body: dict[str, Any]) -> str | None:
    """The ValidationException message for a body Converse would refuse, else None."""
    return (
        _check_inference(body.get("inferenceConfig"))
        or _check_tools(body)
        or _check_messages(body.get("messages"), "toolConfig" in body)
        or _check_reasoning_turns(body)
    )


def model_refuses(model: str, body: dict[str, Any]) -> str | None:
    """What Bedrock's ValidationException says of a value a Claude model does not take: its
    own limit on output tokens, or the model's error relayed."""
    config = body.get("inferenceConfig") or {}
    most = max_output(model)
    if most is not None and config.get("maxTokens", 0) > most:
        return (
            f"The maximum tokens you requested exceeds the model limit of {most}. Try again "
            f"with a maximum tokens value that is lower than {most}."
        )
    both = config.get("temperature") is not None and config.get("topP") is not None
    if both and refuses_both_samplers(model):
        return _MODEL_ERROR + TEMPERATURE_WITH_TOP_P
    return _thinking_budget_refused(body, config)


def _thinking_budget_refused(body: dict[str, Any], config: dict[str, Any]) -> str | None:
    extra = body.get("additionalModelRequestFields")
    thinking = extra.get("thinking") if isinstance(extra, dict) else None
    if not isinstance(thinking, dict) or thinking.get("type") != "enabled":
        return None
    budget = thinking.get("budget_tokens")
    if not isinstance(budget, int) or budget < 1024:
        return (
            f"{_MODEL_ERROR}thinking.enabled.budget_tokens: Input should be greater than or "
            "equal to 1024"
        )
    if budget >= config.get("maxTokens", budget + 1):
        return (
            "`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our "
            "documentation at https://docs.claude.com/en/docs/build-with-claude/"
            "extended-thinking#max-tokens-and-context-window-size"
        )
    return None


def _check_reasoning_turns(body: dict[str, Any]) -> str | None:
    """Reasoning sent back must be what the sim issued; with thinking on, a tool loop's
    assistant turn must start with it (Claude's rules, in Bedrock's wrapping)."""
    messages = body["messages"]
    for n, message in enumerate(messages):
        for b, block in enumerate(message["content"]):
            if "reasoningContent" in block and not _issued(block["reasoningContent"]):
                where = f"messages.{n}.content.{b}"
                return f"{_MODEL_ERROR}{where}: Invalid `signature` in `thinking` block"
    if not _thinking_on(body) or len(messages) < 2:
        return None
    if not any("toolResult" in block for block in messages[-1]["content"]):
        return None
    first = messages[-2]["content"][0]
    if "reasoningContent" in first:
        return None
    found = "tool_use" if "toolUse" in first else "text"
    where = f"messages.{len(messages) - 2}.content.0.type: "
    return _MODEL_ERROR + where + NO_THINKING_FIRST.format(found=found)


def _check_inference(config: Any) -> str | None:
    if config is None:
        return None
    if not isinstance(config, dict):
        return "inferenceConfig must be an object."
    max_tokens = config.get("maxTokens")
    if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
        return _constraint(
            max_tokens, "inferenceConfig.maxTokens", "have value greater than or equal to 1"
        )
    for name, (low, high) in _RANGES.items():
        value = config.get(name)
        if value is None:
            continue
        if not isinstance(value, int | float) or value > high:
            return _constraint(
                value, f"inferenceConfig.{name}", f"have value less than or equal to {high:g}"
            )
        if value < low:
            return _constraint(
                value, f"inferenceConfig.{name}", f"have value greater than or equal to {low:g}"
            )
    stops = config.get("stopSequences")
    if stops is not None and not (
        isinstance(stops, list) and all(isinstance(s, str) and s for s in stops)
    ):
        return _constraint(stops, "inferenceConfig.stopSequences", "be a list of non-empty strings")
    return None


def _check_tools(body: dict[str, Any]) -> str | None:
    config = body.get("toolConfig")
    if config is None:
        return None
    tools = config.get("tools") if isinstance(config, dict) else None
    if not isinstance(tools, list) or not tools:
        return _constraint(tools, "toolConfig.tools", "have length greater than or equal to 1")
    names: set[str] = set()
    for index, tool in enumerate(tools):
        spec = tool.get("toolSpec") if isinstance(tool, dict) else None
        if isinstance(tool, dict) and "cachePoint" in tool:
            continue
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str) or not spec["name"]:
            return _constraint(
                None, f"toolConfig.tools.{index + 1}.member.toolSpec.name", "not be null"
            )
        schema = spec.get("inputSchema")
        if not isinstance(schema, dict) or not isinstance(schema.get("json"), dict):
            where = f"toolConfig.tools.{index}.toolSpec.inputSchema.json"
            return f"The value at {where}.type must be object"
        names.add(spec["name"])
    choice = config.get("toolChoice")
    if choice is not None:
        if (
            not isinstance(choice, dict)
            or len(choice) != 1
            or next(iter(choice)) not in ("auto", "any", "tool")
        ):
            return "toolChoice must set exactly one of auto, any or tool."
        forced = choice.get("tool")
        if forced is not None and (not isinstance(forced, dict) or forced.get("name") not in names):
            return "The tool named in toolChoice is not in toolConfig.tools."
    return None


def _check_messages(messages: Any, has_tool_config: bool) -> str | None:
    if not isinstance(messages, list) or not messages:
        return _constraint(messages, "messages", "have length greater than or equal to 1")
    pending: set[str] = set()  # toolUse ids the next turn must answer
    previous = None
    for n, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role not in ("user", "assistant"):
            return _constraint(
                role, f"messages.{n + 1}.member.role", "satisfy enum value set: [user, assistant]"
            )
        if n == 0 and role != "user":
            return (
                "A conversation must start with a user message. Try again with a conversation "
                "that starts with a user message."
            )
        if role == previous:
            return (
                "A conversation must alternate between user and assistant roles. Make sure the "
                "conversation alternates between user and assistant roles and try again."
            )
        previous = role
        content = message.get("content")
        if not isinstance(content, list) or not content:
            return _constraint(
                content,
                f"messages.{n + 1}.member.content",
                "have length greater than or equal to 1",
            )
        for b, block in enumerate(content):
            problem = _check_block(block, f"messages.{n}.content.{b}", has_tool_config)
            if problem:
                return problem
        results = [
            b["toolResult"].get("toolUseId")
            for b in content
            if isinstance(b, dict) and isinstance(b.get("toolResult"), dict)
        ]
        if len(results) > len(pending) or set(results) - pending:
            return (
                f"The number of toolResult blocks at messages.{n}.content exceeds the number of "
                "toolUse blocks of previous turn."
            )
        missing = ", ".join(sorted(pending - set(results)))
        if missing:
            where = f"messages.{n}.content"
            return f"Expected toolResult blocks at {where} for the following Ids: {missing}"
        pending = {
            str(b["toolUse"].get("toolUseId"))
            for b in content
            if isinstance(b, dict) and isinstance(b.get("toolUse"), dict)
        }
    return None


def _check_block(block: Any, where: str, has_tool_config: bool) -> str | None:
    members = [key for key in block if key in _MEMBERS] if isinstance(block, dict) else []
    if len(members) != 1:
        return f"The content block at {where} must set exactly one of its members."
    kind = members[0]
    value = block[kind]
    if kind == "text" and (not isinstance(value, str) or not value.strip()):
        return (
            f"The text field in the ContentBlock object at {where} is blank. Add text to the "
            "text field, and try again."
        )
    if kind == "image":
        return _check_image(value, where)
    if kind in ("toolUse", "toolResult") and not has_tool_config:
        return (
            "The toolConfig field must be defined when using toolUse and toolResult content blocks."
        )
    if kind == "toolUse" and not (
        isinstance(value, dict)
        and value.get("toolUseId")
        and value.get("name")
        and isinstance(value.get("input"), dict | list | str | int | float | bool)
    ):
        return f"The toolUse block at {where} needs toolUseId, name and input."
    if kind == "toolResult" and not (
        isinstance(value, dict)
        and value.get("toolUseId")
        and isinstance(value.get("content"), list)
    ):
        return f"The toolResult block at {where} needs toolUseId and a content list."
    return None


def _check_image(image: Any, where: str) -> str | None:
    if not isinstance(image, dict) or image.get("format") not in _FORMATS:
        fmt = image.get("format") if isinstance(image, dict) else None
        return _constraint(
            fmt, f"{where}.image.format", "satisfy enum value set: [png, jpeg, gif, webp]"
        )
    source = image.get("source")
    data = source.get("bytes") if isinstance(source, dict) else None
    if isinstance(source, dict) and "s3Location" in source:
        return None
    try:
        raw = base64.b64decode(data, validate=True) if isinstance(data, str) else b""
    except (binascii.Error, ValueError):
        raw = b""
    if not raw:
        return f"Could not process image at {where}: source.bytes must be non-empty base64."
    return None


def prompt_texts(body: dict[str, Any]) -> list[str]:
    """Every text of the prompt: system blocks, message text and tool results."""
    texts = texts_of(body.get("system"))
    for message in body.get("messages") or []:
        for block in message.get("content") or [] if isinstance(message, dict) else []:
            if not isinstance(block, dict):
                continue
            texts += texts_of(block)
            result = block.get("toolResult")
            if isinstance(result, dict):
                texts += texts_of(result.get("content"))
    return texts


# The fake model ------------------------------------------------------------------------
def forced_tool(body: dict[str, Any]) -> dict[str, Any] | None:
    """The tool spec a request forces with ``toolChoice {tool: {name}}``, if any."""
    config = body.get("toolConfig")
    if not isinstance(config, dict):
        return None
    choice = config.get("toolChoice")
    forced = choice.get("tool") if isinstance(choice, dict) else None
    if not isinstance(forced, dict):
        return None
    for tool in config.get("tools") or []:
        spec = tool.get("toolSpec") if isinstance(tool, dict) else None
        if isinstance(spec, dict) and spec.get("name") == forced.get("name"):
            return spec
    return None


def _thinking_on(body: dict[str, Any]) -> bool:
    extra = body.get("additionalModelRequestFields")
    if not isinstance(extra, dict):
        return False
    thinking = extra.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive"):
        return True
    reasoning = extra.get("reasoningConfig", extra.get("reasoning_config"))
    return isinstance(reasoning, dict) and reasoning.get("type") == "enabled"


def enrich(ctx: Ctx, answer: Answer, seen_prefixes: set[str]) -> Answer:
    """Tool calls, reasoning and cache counts the request calls for (see the module doc)."""
    body = ctx.body
    changes: dict[str, Any] = {}
    if not answer.tool_calls and not answer.filtered:
        call = _forced_call(body, answer.text) or _default_call(body)
        if call is not None:
            changes.update(
                tool_calls=(call,), text="", output_tokens=max(count_words([call.arguments]), 1)
            )
    if answer.reasoning is None and _thinking_on(body):
        changes["reasoning"] = THINKING_TEXT
    if not answer.cached_input_tokens and not answer.cache_creation_input_tokens:
        changes.update(_cache_counts(body, answer.input_tokens, seen_prefixes))
    return replace(answer, **changes) if changes else answer


def _forced_call(body: dict[str, Any], text: str) -> ToolCall | None:
    """A forced tool is answered with a toolUse whose input is the answer's JSON object."""
    spec = forced_tool(body)
    if spec is None:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None  # not JSON: the model answers in text (a structured-output failure)
    return ToolCall(tool_use_id(), str(spec["name"]), text) if isinstance(value, dict) else None


def _default_call(body: dict[str, Any]) -> ToolCall | None:
    config = body.get("toolConfig")
    if not isinstance(config, dict) or forced_tool(body) is not None:
        return None  # a forced tool is structured output: the answer text is its input
    specs = [
        t["toolSpec"]
        for t in config.get("tools") or []
        if isinstance(t, dict) and isinstance(t.get("toolSpec"), dict)
    ]
    messages = body.get("messages") or []
    last = messages[-1].get("content") if messages and isinstance(messages[-1], dict) else None
    if not specs or (
        isinstance(last, list) and any(isinstance(b, dict) and "toolResult" in b for b in last)
    ):
        return None  # the tool has answered: the model answers in text
    spec = specs[0]
    schema = spec.get("inputSchema", {}).get("json", {})
    return ToolCall(tool_use_id(), str(spec["name"]), json.dumps(minimal_instance(schema)))


def _marked_prefix(body: dict[str, Any]) -> list[str] | None:
    """The prompt's texts up to the last cachePoint, or None without one."""
    texts: list[str] = []
    marked: int | None = None
    config = body.get("toolConfig")
    for tool in config.get("tools") or [] if isinstance(config, dict) else []:
        if isinstance(tool, dict) and "cachePoint" in tool:
            marked = len(texts)
        else:
            texts.append(json.dumps(tool, sort_keys=True))
    blocks: list[Any] = list(body.get("system") or [])
    for message in body.get("messages") or []:
        blocks.extend(message.get("content") or [] if isinstance(message, dict) else [])
    for block in blocks:
        if isinstance(block, dict) and "cachePoint" in block:
            marked = len(texts)
        else:
            texts.extend(texts_of(block) or [json.dumps(block, sort_keys=True)])
    return None if marked is None else texts[:marked]


def _cache_counts(body: dict[str, Any], input_tokens: int, seen: set[str]) -> dict[str, int]:
    prefix = _marked_prefix(body)
    if not prefix:
        return {}
    tokens = min(max(count_words(prefix), 1), input_tokens)
    digest = hashlib.sha256("\n".join(prefix).encode()).hexdigest()
    if digest in seen:
        return {"cached_input_tokens": tokens}
    seen.add(digest)
    return {"cache_creation_input_tokens": tokens}
