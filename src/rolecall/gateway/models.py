"""``GET /v1/models`` and ``GET /v1/models/{id}``: the names a request's ``model`` may take.

Roles, provider ids and the aliases of ``gateway.model_aliases``, in OpenAI's list
shape, or in Anthropic's when the request carries ``anthropic-version`` (as
Anthropic's SDKs and Claude Code send on every call): each model with ``type``,
``display_name`` and ``created_at``, a page of ``limit`` models (default 20) after
``after_id`` or before ``before_id``, and ``has_more``, ``first_id``, ``last_id``
for the SDK's pagination. Both answer errors in the client's vendor's shape.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from rolecall._text import visible
from rolecall.gateway import anthropic_format as afmt
from rolecall.gateway import openai_format as fmt
from rolecall.gateway._responses import HTTPError, json_response

if TYPE_CHECKING:
    from rolecall.gateway.app import Gateway

__all__ = ["anthropic_model", "anthropic_page", "error_response", "get_model", "list_models"]

# Anthropic's default and largest page of models.
PAGE_SIZE = 20
MAX_PAGE_SIZE = 1000
_KINDS = {"rolecall-role": "role", "rolecall-provider": "provider", "rolecall-alias": "alias"}


def _entries(gateway: Gateway) -> list[dict[str, Any]]:
    """The model list in OpenAI's shape: roles, then provider ids, then aliases."""
    config = gateway.generation.config
    body = fmt.model_list_body(
        gateway.roles(config),
        list(config.providers),
        int(gateway.started_at),
        list(config.gateway.model_aliases),
    )
    entries: list[dict[str, Any]] = body["data"]
    return entries


def _anthropic(request: Request) -> bool:
    return "anthropic-version" in request.headers


def error_response(request: Request, exc: HTTPError) -> Response:
    """An early answer (no key, a foreign Host) in the client's vendor's shape: Anthropic's
    SDKs raise their typed errors only for Anthropic's."""
    if not _anthropic(request) or exc.body.get("type") == "error":
        return exc.response()
    restated = afmt.error_from_openai(exc.status, exc.body)
    return json_response(restated.status, restated.body, exc.headers)


async def list_models(gateway: Gateway, request: Request) -> Response:
    entries = _entries(gateway)
    if not _anthropic(request):
        return json_response(200, {"object": "list", "data": entries})
    aliases = gateway.generation.config.gateway.model_aliases
    models = [anthropic_model(entry, aliases) for entry in entries]
    try:
        page = anthropic_page(models, request.query_params)
    except ValueError as exc:
        raise HTTPError(400, afmt.error_body(400, str(exc))) from None
    return json_response(200, page)


async def get_model(gateway: Gateway, request: Request) -> Response:
    name = request.path_params["model"]
    for entry in _entries(gateway):
        if entry["id"] == name:
            if _anthropic(request):
                aliases = gateway.generation.config.gateway.model_aliases
                return json_response(200, anthropic_model(entry, aliases))
            return json_response(200, entry)
    unknown = gateway.unknown_model(gateway.generation.config, name)
    if _anthropic(request):
        raise HTTPError(404, afmt.error_from_openai(404, unknown.body).body)
    raise unknown


def anthropic_model(entry: Mapping[str, Any], aliases: Mapping[str, str]) -> dict[str, Any]:
    """One entry of the OpenAI-shaped list as Anthropic's model object."""
    name = entry["id"]
    kind = _KINDS.get(entry["owned_by"], "model")
    shown = f"{name} (alias of {aliases[name]})" if kind == "alias" else f"{name} ({kind})"
    created = datetime.fromtimestamp(entry["created"], UTC)
    return {
        "type": "model",
        "id": name,
        "display_name": shown,
        "created_at": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "lifecycle": "active",
    }


def anthropic_page(models: Sequence[dict[str, Any]], query: Mapping[str, str]) -> dict[str, Any]:
    """The page of ``models`` a ``GET /v1/models`` query asks for, in Anthropic's list shape;
    ValueError naming the problem for a bad ``limit`` or a cursor that names no model."""
    limit = _limit(query.get("limit"))
    ids = [model["id"] for model in models]
    if after := query.get("after_id"):
        start = _position(ids, after, "after_id") + 1
        chosen = models[start : start + limit]
        more = start + limit < len(models)
    elif before := query.get("before_id"):
        end = _position(ids, before, "before_id")
        chosen = models[max(0, end - limit) : end]
        more = end > limit
    else:
        chosen = models[:limit]
        more = limit < len(models)
    return {
        "data": list(chosen),
        "has_more": more,
        "first_id": chosen[0]["id"] if chosen else None,
        "last_id": chosen[-1]["id"] if chosen else None,
    }


def _limit(text: str | None) -> int:
    if text is None:
        return PAGE_SIZE
    try:
        limit = int(text)
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise ValueError(f"limit {text[:20]!r} is not a whole number from 1 to {MAX_PAGE_SIZE}")
    return limit


def _position(ids: list[str], name: str, field: str) -> int:
    try:
        return ids.index(name)
    except ValueError:
        raise ValueError(
            f"{field} '{visible(name[:100])}' is no model of this gateway: pass an id from "
            "GET /v1/models"
        ) from None
