"""Checks of one provider's values that the schema cannot express: URL shape, key, params.

- ``base_url`` must be an ``http(s)://`` URL with a host: ``api.openai.com/v1`` or
  ``localhost:11434`` would otherwise fail at the first call with a transport error.
- An API key with leading or trailing whitespace or a line break (pasted from a file
  or a terminal) is rejected by every vendor as a bad key; the issue names the
  provider and never shows the key.
- A parameter name the provider's wire protocol does not take (``params.py``) is a
  warning with a did-you-mean: the adapters do not send it.
- A parameter value the provider's vendor refuses (``params.py``: more stop sequences
  than it takes, a temperature above its range) would skip that provider on every call
  that carries it: an error in the provider's own params, a warning in a role's (the
  chain's other providers take it). So is a value the provider's model refuses
  (``model_limits.py``: a temperature other than 1 for OpenAI's reasoning models,
  temperature and top_p together for some Claude models), with the model named, and a
  thinking budget Anthropic refuses against the ``max_tokens`` the provider would be sent
  (its params and the role's merged, or the adapter's default).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from rolecall.config._locations import ConfigPath
from rolecall.config.model_limits import ModelLimits, model_limits
from rolecall.config.params import (
    known_params,
    suggest_param,
    thinking_budget_problem,
    vendor_value_problem,
)
from rolecall.config.registry import provider_types

__all__ = [
    "ChainEntry",
    "Finding",
    "base_url_findings",
    "key_findings",
    "model_apart_findings",
    "param_name_finding",
    "thinking_budget_findings",
    "vendor_limit_findings",
]

# Servers on this machine usually speak plain http.
_LOCAL_HOSTS = ("localhost", "127.", "[::1]", "0.0.0.0")


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem: an error, or a warning when ``warning`` is set."""

    path: ConfigPath
    problem: str
    fix: str
    warning: bool = False


def _url_problem(url: str) -> str | None:
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError:
        return "is not a valid URL"
    if parts.scheme not in ("http", "https"):
        return "must start with http:// or https://"
    if not host:
        return "has no host"
    if url != url.strip():
        return "has spaces around it"
    return None


def _example_url(type_name: Any) -> str:
    """The type's default address, or the example its config model gives for base_url."""
    row = provider_types().get(type_name) if isinstance(type_name, str) else None
    if row is None:
        return ""
    if row.default_base_url:
        return row.default_base_url
    field = row.config_model.model_fields.get("base_url")
    examples = field.examples if field is not None else None
    return str(examples[0]) if examples else "https://host/v1"


def base_url_findings(path: ConfigPath, spec: Mapping[str, Any]) -> Iterator[Finding]:
    """``base_url`` (or its alias ``endpoint``) is an http(s) URL with a host."""
    if "base_url" in spec and "endpoint" in spec:
        return  # both spellings: the schema reports that first
    for field in ("base_url", "endpoint"):
        url = spec.get(field)
        if not isinstance(url, str) or not url:
            continue  # missing: other checks; not a string: the schema reports it
        problem = _url_problem(url)
        if problem is None:
            continue
        example = _example_url(spec.get("type"))
        stripped = url.strip()
        if "://" not in stripped and stripped:
            scheme = "http" if stripped.startswith(_LOCAL_HOSTS) else "https"
            fix = f"write the full URL with its scheme, e.g. {scheme}://{stripped}"
        else:
            fix = f"write an http:// or https:// URL with a host, e.g. {example or 'https://host'}"
        yield Finding((*path, field), f"{field} {url!r} {problem}", fix)


def key_findings(path: ConfigPath, provider_id: str, spec: Mapping[str, Any]) -> Iterator[Finding]:
    """The API key has no surrounding whitespace or line break (the key is never shown)."""
    key = spec.get("api_key")
    if isinstance(key, str) and key and key != key.strip():
        what = "a line break" if ("\n" in key or "\r" in key) else "spaces or tabs"
        yield Finding(
            (*path, "api_key"),
            f"the api_key of provider '{provider_id}' has {what} before or after it "
            "(every vendor would reject it as a wrong key)",
            "strip it where the key is set (the environment variable, .env line or file)",
        )


def param_name_finding(
    where: ConfigPath, name: str, protocols: Iterable[str | None], owner: str = ""
) -> Finding | None:
    """A warning when no protocol in ``protocols`` takes the parameter ``name``.

    ``owner`` qualifies the protocols in the message, e.g. `` (this role's providers)``.
    """
    given = list(protocols)
    kinds = sorted({p for p in given if p is not None})
    if not kinds or None in given:
        known: frozenset[str] = known_params(None)
    else:
        known = frozenset().union(*(known_params(kind) for kind in kinds))
    if name in known:
        return None
    close = suggest_param(name, known)
    names = " and ".join(kinds) or "every provider type"
    fix = f"did you mean '{close}'?" if close else "use a name the provider takes, or remove it"
    return Finding(
        where, f"parameter '{name}' is unknown to {names}{owner} and is not sent", fix, warning=True
    )


# A provider of a role's chain: its id, type and model (None where not known).
ChainEntry = tuple[str, str | None, str | None]


def _limits_of(kind: str | None, model: str | None) -> ModelLimits | None:
    row = provider_types().get(kind) if kind is not None else None
    return model_limits(row.param_family, model) if row is not None else None


def vendor_limit_findings(
    where: ConfigPath, name: str, value: Any, chain: Iterable[ChainEntry], *, own: bool
) -> Iterator[Finding]:
    """One finding per provider in ``chain`` whose vendor, or model, refuses ``value`` for
    ``name``; ``own``: the value is in that provider's own params (an error)."""
    types = provider_types()
    for provider_id, kind, model in chain:
        row = types.get(kind) if kind is not None else None
        found = vendor_value_problem(row.param_family, name, value) if row is not None else None
        who = f"provider '{provider_id}' ({kind})"
        if found is None:
            limits = _limits_of(kind, model)
            found = limits.problem(name, value) if limits is not None else None
            who = f"provider '{provider_id}' ({kind}, model {model})"
        if found is not None:
            yield _refused(where, who, provider_id, *found, own=own)


def model_apart_findings(
    where: ConfigPath,
    params: Mapping[str, Any],
    chain: Iterable[tuple[ChainEntry, Mapping[str, Any]]],
    *,
    own: bool,
) -> Iterator[Finding]:
    """One finding per provider in ``chain`` (each with its own params, which ``params``
    override) whose model refuses two of the parameters together (temperature and top_p
    for some Claude models)."""
    for (provider_id, kind, model), base in chain:
        limits = _limits_of(kind, model)
        if limits is None or not limits.apart:
            continue
        merged = {**base, **params}
        if all(merged.get(name) is not None for name in limits.apart):
            _, problem, fix = limits.apart_problem()
            who = f"provider '{provider_id}' ({kind}, model {model})"
            yield _refused(where, who, provider_id, problem, fix, own=own)


def thinking_budget_findings(
    where: ConfigPath,
    params: Mapping[str, Any],
    chain: Iterable[tuple[ChainEntry, Mapping[str, Any]]],
    *,
    own: bool,
) -> Iterator[Finding]:
    """One finding per provider in ``chain`` (each with its own params, which ``params``
    override) whose vendor refuses the thinking budget for the max_tokens it would be sent;
    a budget below the vendor's least is the ``thinking`` value's own finding."""
    types = provider_types()
    for (provider_id, kind, _), base in chain:
        row = types.get(kind) if kind is not None else None
        merged = {**base, **params}
        if row is None or "thinking" not in merged:
            continue
        if vendor_value_problem(row.param_family, "thinking", merged["thinking"]) is not None:
            continue
        found = thinking_budget_problem(row.param_family, merged)
        if found is not None:
            yield _refused(
                where, f"provider '{provider_id}' ({kind})", provider_id, *found, own=own
            )


def _refused(
    where: ConfigPath, who: str, provider_id: str, problem: str, fix: str, *, own: bool
) -> Finding:
    skipped = "every call that sends it skips" if own else "this role's calls skip"
    return Finding(
        where,
        f"{who} would refuse this value: {problem}, so {skipped} '{provider_id}'",
        fix,
        warning=not own,
    )
