"""Gemini's function-call parts in the sim, and the thought signatures Gemini 3 checks.

Models of generation 3 and later (``gemini-3-pro-preview``, ``gemini-4-...``) sign their
function calls: a ``thoughtSignature`` on the first ``functionCall`` part of a reply
(parallel calls share it). They refuse a request whose current turn (everything after the
last user message with text, not a function response) holds a model step whose first
call comes back without a signature, and any request carrying a call's signature that is
neither one the sim issued for that call (:func:`sign`) nor a value Google documents for
calls the model did not make (``skip_thought_signature_validator``). Older turns are not
checked for missing signatures.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from typing import Any

from rolecall.sim._common import SIM_CALL_ID_PREFIX, Answer, json_response
from rolecall.sim._http import Rendered

__all__ = ["call_parts", "sign", "signs_calls", "unsigned_call"]

_SIGNING_KEY = b"rolecall-sim-gemini-thought"
# Google's documented stand-ins for a call the model did not make itself.
_STAND_INS = frozenset({"skip_thought_signature_validator", "context_engineering_is_the_way_to_go"})
_CORRUPTED = "Corrupted thought signature."

_GENERATION = re.compile(r"gemini-(\d+)")
_UNSIGNED = (
    "Function call is missing a thought_signature in functionCall parts. This is required "
    "for tools to work correctly, and missing thought_signature may lead to degraded model "
    "performance. Additional data, function call `default_api:{name}`, position {position}. "
    "Please refer to https://ai.google.dev/gemini-api/docs/thought-signatures for more details."
)


def signs_calls(model: str) -> bool:
    """Whether ``model`` signs its function calls and checks the signatures (Gemini 3 and
    later; the image models sign but do not check, and are left out)."""
    found = _GENERATION.search(model)
    return found is not None and int(found.group(1)) >= 3 and "image" not in model


def sign(name: str, args: Any) -> str:
    """The signature the sim gives a function call: opaque, checked when it comes back."""
    text = json.dumps([name, args], sort_keys=True, separators=(",", ":"))
    return base64.b64encode(hmac.new(_SIGNING_KEY, text.encode(), hashlib.sha256).digest()).decode()


def _issued(part: dict[str, Any], signature: Any) -> bool:
    call = _field(part, "functionCall", "function_call")
    if not isinstance(signature, str) or not isinstance(call, dict):
        return False
    if signature in _STAND_INS or _decoded(signature) in _STAND_INS:
        return True
    issued = sign(str(call.get("name")), call.get("args") or {})
    return hmac.compare_digest(_url_safe(signature), _url_safe(issued))


def _url_safe(signature: str) -> str:
    """A signature in URL-safe base64: a bytes field's JSON form, either alphabet taken."""
    return signature.replace("+", "-").replace("/", "_")


def _decoded(signature: str) -> str:
    try:
        return base64.urlsafe_b64decode(_url_safe(signature)).decode()
    except ValueError:
        return ""


def call_parts(answer: Answer, signed: bool = False) -> list[dict[str, Any]]:
    parts = []
    for number, call in enumerate(answer.tool_calls):
        function: dict[str, Any] = {"name": call.name, "args": json.loads(call.arguments or "{}")}
        if not call.id.startswith(SIM_CALL_ID_PREFIX):  # Gemini sends ids only when it has them
            function["id"] = call.id
        part: dict[str, Any] = {"functionCall": function}
        if signed and number == 0:  # parallel calls: only the first carries the signature
            part["thoughtSignature"] = sign(call.name, function["args"])
        parts.append(part)
    return parts


def unsigned_call(contents: list[Any]) -> Rendered | None:
    """The 400 for a current turn whose model step starts with an unsigned function call,
    or for a call signature the sim never issued."""
    turns = [(c.get("role"), _parts(c)) for c in contents if isinstance(c, dict)]
    for _, parts in turns:
        for part in parts:
            signature = _field(part, "thoughtSignature", "thought_signature")
            if signature is not None and not _issued(part, signature):
                return _invalid(_CORRUPTED)
    start = 0
    for index, (role, parts) in enumerate(turns):
        if role in (None, "user") and any(
            _field(p, "functionResponse", "function_response") is None for p in parts
        ):
            start = index + 1  # a user message with text: the current turn starts after it
    for index in range(start, len(turns)):
        role, parts = turns[index]
        calls = [p for p in parts if _field(p, "functionCall", "function_call")]
        if role != "model" or not calls:
            continue
        if not _field(calls[0], "thoughtSignature", "thought_signature"):
            call = _field(calls[0], "functionCall", "function_call")
            name = call.get("name") if isinstance(call, dict) else None
            return _invalid(_UNSIGNED.format(name=name, position=index + 1))
    return None


def _invalid(message: str) -> Rendered:
    error = {"code": 400, "message": message, "status": "INVALID_ARGUMENT"}
    return json_response(400, {"error": error}, content_type="application/json; charset=UTF-8")


def _parts(content: dict[str, Any]) -> list[dict[str, Any]]:
    parts = content.get("parts")
    return [p for p in parts if isinstance(p, dict)] if isinstance(parts, list) else []


def _field(part: dict[str, Any], camel: str, snake: str) -> Any:
    return part.get(camel, part.get(snake))
