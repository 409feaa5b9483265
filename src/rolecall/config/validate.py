"""Every problem in a config document in one pass: schema errors and cross-field checks.

The schema (``schema.py``) checks each value on its own; its errors become
:class:`ConfigIssue` (location, line, problem, fix) in ``_schema_errors``. This
module adds the checks that look across the file: references, chains, roles,
parameter ranges.
The cross-field checks read the raw data, so they run even where the schema
failed, and the user sees everything at once.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from rolecall.config._locations import (
    ConfigPath,
    LineMap,
    drop_covered,
    format_location,
    make_issue,
    sort_issues,
)
from rolecall.config._provider_checks import (
    ChainEntry,
    Finding,
    base_url_findings,
    key_findings,
    model_apart_findings,
    param_name_finding,
    thinking_budget_findings,
    vendor_limit_findings,
)
from rolecall.config._schema_errors import did_you_mean, role_key_issue, schema_issues
from rolecall.config.params import finite_number, param_value_problem
from rolecall.config.registry import provider_types
from rolecall.config.schema import (
    BUILTIN_ROLES,
    CRITICAL_ROLE_KEYS,
    PROVIDER_ID,
    RetryConfig,
    RolecallConfig,
    parse_duration,
)
from rolecall.errors import ConfigIssue

__all__ = ["EXTENSION_PREFIX", "did_you_mean", "validate_document"]

EXTENSION_PREFIX = "x-"

_ID = re.compile(PROVIDER_ID)
ID_RULE = "use lowercase letters, digits, '.', '_' and '-', starting with a letter or digit"


def validate_document(
    data: Any, lines: LineMap | None = None
) -> tuple[RolecallConfig | None, list[ConfigIssue], list[ConfigIssue]]:
    """``(config or None, errors, warnings)``; the config only when there is no error."""
    lines = lines if lines is not None else LineMap()
    if not isinstance(data, dict):
        issue = ConfigIssue(
            "", "the top level must be a mapping (providers:, roles:, ...)", "start with providers:"
        )
        return None, [issue], []
    # Top-level "x-..." keys hold YAML anchors for reuse (as in Compose files); not settings.
    data = {k: v for k, v in data.items() if not str(k).startswith(EXTENSION_PREFIX)}
    checker = _Checker(data, lines)
    config: RolecallConfig | None = None
    try:
        config = RolecallConfig.model_validate(data)
    except ValidationError as exc:
        checker.errors.extend(schema_issues(exc.errors(), data, lines))
    checker.cross_checks()
    errors = sort_issues(checker.errors)
    warnings = sort_issues(drop_covered(checker.warnings, errors))
    return (config if not errors else None), errors, warnings


def _slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-._")
    return slug or "my-provider"


class _Checker:
    def __init__(self, data: dict[str, Any], lines: LineMap) -> None:
        self.data = data
        self.lines = lines
        self.errors: list[ConfigIssue] = []
        self.warnings: list[ConfigIssue] = []

    def error(self, path: ConfigPath, problem: str, fix: str | None = None) -> None:
        self.errors.append(make_issue(path, problem, fix, self.lines))

    def warn(self, path: ConfigPath, problem: str, fix: str | None = None) -> None:
        self.warnings.append(make_issue(path, problem, fix, self.lines))

    def report(self, finding: Finding | None) -> None:
        if finding is not None:
            report = self.warn if finding.warning else self.error
            report(finding.path, finding.problem, finding.fix)

    def _spec(self, provider_id: str) -> Mapping[str, Any]:
        providers = self.data.get("providers")
        spec = providers.get(provider_id) if isinstance(providers, dict) else None
        return spec if isinstance(spec, dict) else {}

    def _protocol(self, provider_id: str) -> str | None:
        """The type of a defined provider; None when it is not known (undefined, invalid)."""
        kind = self._spec(provider_id).get("type")
        return kind if isinstance(kind, str) else None

    def _entry(self, provider_id: str) -> ChainEntry:
        """A provider's id, type and model (None where not known)."""
        model = self._spec(provider_id).get("model")
        return provider_id, self._protocol(provider_id), model if isinstance(model, str) else None

    def _own_params(self, provider_id: str) -> Mapping[str, Any]:
        spec = self._spec(provider_id)
        params = spec.get("params", spec.get("parameters"))
        return params if isinstance(params, dict) else {}

    def cross_checks(self) -> None:
        providers = self.data.get("providers")
        ids: set[str] | None = None  # None: provider ids unknown, so references go unchecked
        if isinstance(providers, dict):
            ids = {key for key in providers if isinstance(key, str)}
            if not providers:
                self.error(
                    ("providers",),
                    "no providers are defined",
                    "add at least one, e.g. local: {type: local}",
                )
            for provider_id, spec in providers.items():
                if isinstance(provider_id, str):  # other keys: the schema reports them
                    self._provider(provider_id, spec)
        default = self.data.get("default_provider")
        has_default = isinstance(default, str) and bool(default)
        if has_default:
            self._reference(("default_provider",), str(default), ids)
        roles = self.data.get("roles")
        if isinstance(roles, dict):
            for name, spec in roles.items():
                if isinstance(name, str):
                    self._role(name, spec, ids, has_default=has_default)
        if not has_default and (roles is None or isinstance(roles, dict)):
            unassigned = [role for role in BUILTIN_ROLES if role not in (roles or {})]
            if unassigned:
                names = ", ".join(unassigned)
                self.warn(
                    ("roles",),
                    f"no provider for built-in role{'s' if len(unassigned) > 1 else ''} {names} "
                    "and no default_provider; the workflow will fail there",
                    f"assign roles.{unassigned[0]}.provider (and the rest) or set default_provider",
                )
        self._retry()
        self._gateway_keys()
        self._gateway_aliases(ids, roles if isinstance(roles, dict) else {})

    def _reference(self, path: ConfigPath, ref: str, ids: set[str] | None) -> bool:
        if ids is None or ref in ids:
            return True
        suggestion = did_you_mean(ref, ids)
        if suggestion:
            fix = f"did you mean '{suggestion}'?"
        elif ids:
            fix = f"define it under providers: or use one of: {', '.join(sorted(ids))}"
        else:
            fix = "define it under providers:"
        self.error(path, f"provider '{ref}' is not defined", fix)
        return False

    def _provider(self, provider_id: str, spec: Any) -> None:
        path: ConfigPath = ("providers", provider_id)
        if not _ID.match(provider_id):
            self.error(
                path,
                f"provider id '{provider_id}' is not valid",
                f"{ID_RULE} (e.g. '{_slug(provider_id)}')",
            )
        if not isinstance(spec, dict):
            return
        # Keys a type requires (model, base_url...) are its config model's to say: the
        # schema reports them missing. A type with key variables wants an api_key.
        kind = spec.get("type") if isinstance(spec.get("type"), str) else None
        row = provider_types().get(kind) if kind is not None else None
        if (
            row is not None
            and row.key_env_vars
            and spec.get("api_key") in (None, "")
            and not row.config_model.signs_in_without_key(spec)
        ):
            self.warn(
                (*path, "api_key"),
                f"no api_key: the {kind} API will reject every call",
                f"add api_key: ${{{row.key_env_vars[0]}}}",
            )
        calls = spec.get("max_concurrency")
        if kind == "local" and isinstance(calls, int) and not isinstance(calls, bool) and calls > 1:
            self.warn(
                (*path, "max_concurrency"),
                f"max_concurrency {calls} has no effect: the embedded model runs one request at "
                "a time, and the other calls wait for it",
                "remove max_concurrency (it is 1 for type: local)",
            )
        for finding in (*base_url_findings(path, spec), *key_findings(path, provider_id, spec)):
            self.report(finding)
        for key in ("params", "parameters"):
            if isinstance(spec.get(key), dict):
                self._params((*path, key), spec[key], in_role=False, chain=[provider_id])

    def _params(
        self,
        path: ConfigPath,
        params: Mapping[str, Any],
        *,
        in_role: bool,
        chain: list[str],
    ) -> None:
        owner = " (this role's providers)" if in_role else ""
        typed = [self._entry(ref) for ref in chain]
        protocols = [kind for _, kind, _ in typed]
        for name, value in params.items():
            where = (*path, name)
            if name in CRITICAL_ROLE_KEYS:
                if in_role:
                    self.errors.append(role_key_issue(where, name, self.lines))
                else:
                    self.error(
                        where, f"'{name}' does not belong in params", "set it on the provider"
                    )
                continue
            if isinstance(name, str):
                self.report(param_name_finding(where, name, protocols, owner))
            problem = param_value_problem(str(name), value)
            if problem is not None:
                self.error(where, *problem)
            elif isinstance(name, str):
                for finding in vendor_limit_findings(where, name, value, typed, own=not in_role):
                    self.report(finding)
        with_own = [(entry, self._own_params(entry[0]) if in_role else {}) for entry in typed]
        for finding in model_apart_findings(path, params, with_own, own=not in_role):
            self.report(finding)
        for finding in thinking_budget_findings(path, params, with_own, own=not in_role):
            self.report(finding)

    def _role(self, name: str, spec: Any, ids: set[str] | None, *, has_default: bool) -> None:
        path: ConfigPath = ("roles", name)
        if not _ID.match(name):
            self.error(path, f"role name '{name}' is not valid", ID_RULE)
        elif name not in BUILTIN_ROLES and (close := did_you_mean(name, BUILTIN_ROLES)):
            self.warn(
                path,
                f"'{name}' is a custom role, not the built-in '{close}'",
                f"rename it to '{close}' if that was meant",
            )
        if not isinstance(spec, dict):
            return
        entries: list[tuple[ConfigPath, str]] = []
        if isinstance(spec.get("provider"), str):
            entries.append(((*path, "provider"), spec["provider"]))
        for field in ("providers", "fallback"):
            items = spec.get(field)
            if isinstance(items, list):
                entries.extend(
                    ((*path, field, index), item)
                    for index, item in enumerate(items)
                    if isinstance(item, str)
                )
        first: dict[str, ConfigPath] = {}
        for where, ref in entries:
            self._reference(where, ref, ids)
            earlier = first.setdefault(ref, where)
            if earlier is where:
                continue
            if earlier[-1] == "provider" and where[-2] == "fallback":
                self.error(
                    where,
                    f"the fallback list repeats the primary provider '{ref}'",
                    "remove it: the primary is always tried first",
                )
            else:
                self.error(
                    where,
                    f"'{ref}' appears twice in this role's chain "
                    f"(also at {format_location(earlier)})",
                    "remove the repeat",
                )
        provider = spec.get("provider")
        unreadable = provider is not None and not isinstance(provider, str)  # schema reports it
        if not entries and not has_default and not unreadable:
            self.error(
                path,
                f"role '{name}' has no provider and there is no default_provider",
                f"set roles.{name}.provider or default_provider",
            )
        self._weights(path, spec, list(first), ids)
        default = self.data.get("default_provider")
        chain = list(dict.fromkeys([*first, *([default] if isinstance(default, str) else [])]))
        for key in ("params", "parameters"):
            if isinstance(spec.get(key), dict):
                self._params((*path, key), spec[key], in_role=True, chain=chain)

    def _weights(
        self, path: ConfigPath, spec: dict[str, Any], chain: list[str], ids: set[str] | None
    ) -> None:
        weights = spec.get("weights")
        weights = weights if isinstance(weights, dict) else {}
        for provider_id, weight in weights.items():
            if not isinstance(provider_id, str):
                continue
            where = (*path, "weights", provider_id)
            if self._reference(where, provider_id, ids) and provider_id not in chain:
                self.error(
                    where,
                    f"weight for '{provider_id}', which is not one of this role's providers",
                    f"add it to {format_location((*path, 'providers'))} or remove its weight",
                )
            if isinstance(weight, bool):
                got = str(weight).lower()
                self.error(where, f"a weight should be a number (got {got})", "use 0 or more")
            elif finite_number(weight) and weight < 0:
                self.error(where, f"a weight cannot be negative (got {weight})", "use 0 or more")
        strategy = spec.get("strategy", "fallback")
        if strategy != "weighted":
            if weights:
                self.warn(
                    (*path, "weights"),
                    "weights are ignored unless strategy is weighted",
                    "add strategy: weighted, or remove weights",
                )
            return
        if not weights:
            example = ", ".join(f"{p}: 1" for p in chain) or "gpt: 3, claude: 1"
            self.error(
                (*path, "strategy"),
                "strategy weighted needs weights",
                f"add weights: {{{example}}}",
            )
            return
        drawn = _drawn(spec, chain)
        for provider_id in weights:
            if provider_id in chain and provider_id not in drawn:
                self.warn(
                    (*path, "weights", provider_id),
                    f"'{provider_id}' is not drawn by weight: beside providers, the primary is "
                    "always first and fallback entries always after",
                    f"remove its weight, or move it into {format_location((*path, 'providers'))}",
                )
        missing = [p for p in drawn if p not in weights]
        if missing:
            self.error(
                (*path, "weights"),
                f"no weight for {', '.join(repr(p) for p in missing)}",
                "give every provider of the role a weight",
            )
        values = list(weights.values())
        if values and all(finite_number(w) for w in values) and sum(values) <= 0:
            self.error(
                (*path, "weights"), "the weights add up to 0", "give some provider weight > 0"
            )

    def _retry(self) -> None:
        retry = self.data.get("retry")
        if not isinstance(retry, dict):
            return
        fields = RetryConfig.model_fields
        try:
            initial = parse_duration(
                retry.get("initial_backoff", fields["initial_backoff"].default)
            )
            maximum = parse_duration(retry.get("max_backoff", fields["max_backoff"].default))
        except ValueError:
            return  # the schema already reports the bad duration
        if initial > maximum:
            self.error(
                ("retry", "initial_backoff"),
                f"initial_backoff ({initial:g}s) is longer than max_backoff ({maximum:g}s)",
                "make initial_backoff at most max_backoff",
            )

    def _gateway_aliases(self, ids: set[str] | None, roles: dict[Any, Any]) -> None:
        """Each alias names a role or a provider, as a request's ``model`` would."""
        gateway = self.data.get("gateway")
        aliases = gateway.get("model_aliases") if isinstance(gateway, dict) else None
        if not isinstance(aliases, dict) or ids is None:
            return
        role_names = set(BUILTIN_ROLES) | {name for name in roles if isinstance(name, str)}
        targets = ids | role_names
        for alias, target in aliases.items():
            where = ("gateway", "model_aliases", str(alias))
            if isinstance(target, str) and target != alias and alias in targets:
                # The alias is looked up first, for the model and the x-rolecall-role header.
                what = "role" if alias in role_names else "provider"
                self.warn(
                    where,
                    f"the alias '{alias}' hides the {what} '{alias}': requests for "
                    f"'{alias}' go to '{target}'",
                    "rename the alias, or remove it",
                )
            if isinstance(target, str) and target in aliases and target not in targets:
                self.error(
                    where,
                    f"alias target '{target}' is itself an alias; aliases do not chain",
                    f"point it at what '{target}' names: {aliases[target]}",
                )
            elif isinstance(target, str) and target not in targets:
                suggestion = did_you_mean(target, targets)
                fix = (
                    f"did you mean '{suggestion}'?"
                    if suggestion
                    else f"use a role or provider id: {', '.join(sorted(targets))}"
                )
                self.error(
                    where,
                    f"alias target '{target}' is neither a role nor a provider",
                    fix,
                )

    def _gateway_keys(self) -> None:
        """An empty or blank key (often an unset or empty ${VAR}) is no key at all."""
        gateway = self.data.get("gateway")
        keys = gateway.get("keys") if isinstance(gateway, dict) else None
        if not isinstance(keys, list):
            return
        for index, key in enumerate(keys):
            if isinstance(key, str) and not key.strip():
                self.warn(
                    ("gateway", "keys", index),
                    "this gateway key is empty or blank (an unset or empty variable?), so it "
                    "is not a key; with no other key the gateway only listens on loopback",
                    "set the variable it reads (e.g. ROLECALL_GATEWAY_KEY) or remove the entry",
                )


def _drawn(spec: dict[str, Any], chain: list[str]) -> list[str]:
    """The providers a weighted role draws from (the router's pool): its ``providers``
    but the primary when it has some, else its whole chain."""
    providers = spec.get("providers")
    if not (isinstance(providers, list) and providers):
        return chain
    primary = spec.get("provider")
    return [p for p in dict.fromkeys(providers) if isinstance(p, str) and p != primary]
