"""``rolecall config``: validate, show and describe the config file."""

from __future__ import annotations

import asyncio
import sys
from typing import Any, Literal

import click

from rolecall._secrets import mask_url, redact
from rolecall._text import visible
from rolecall.cli._common import (
    EXIT_CREDENTIALS,
    EXIT_OK,
    EXIT_USAGE,
    config_option,
    exit_code_for,
    fail,
    json_option,
    print_json,
)
from rolecall.config._env import SECRET_NAME
from rolecall.config.load import ConfigReport, inspect_config, load_config
from rolecall.config.schema import RolecallConfig
from rolecall.errors import (
    ConfigError,
    ConfigIssue,
    CredentialsError,
    ProviderError,
    RolecallError,
)

__all__ = ["config"]

CredentialCheck = Literal["ok", "failed", "skipped", "unavailable"]
_MASK = "***"


@click.group("config")
def config() -> None:
    """Validate, show or describe the config file.

    \b
    Editors with a YAML language server can check rolecall.yaml as you type:
      rolecall config schema > rolecall.schema.json
    and put this on the first line of rolecall.yaml:
      # yaml-language-server: $schema=rolecall.schema.json
    """


@config.command("validate")
@click.argument("file", required=False, metavar="[FILE]")
@config_option
@click.option("--offline", is_flag=True, help="Skip the credential check (no network).")
@json_option
def validate(file: str | None, config_path: str | None, offline: bool, as_json: bool) -> None:
    """Report every config problem at once, then check each provider's credentials.

    FILE (or -c FILE) names the config; a provider that could not be checked
    (timeout, 5xx, 429, network) is a warning, not a failure.
    Exit codes: 0 valid, 2 config invalid, 3 credentials rejected.
    """
    if file is not None and config_path is not None and file != config_path:
        fail(f"two config files given ({file} and -c {config_path}): pass one")
    report = inspect_config(file if file is not None else config_path)
    check: CredentialCheck = "skipped"
    failures: list[ProviderError] = []
    if report.config is not None and not offline:
        check, failures = _check_credentials(report.config)
    rejected, unchecked = _split(failures)
    if as_json:
        print_json(_report_json(report, check, rejected, unchecked))
    else:
        _print_report(report, check, rejected, unchecked)
    if not report.valid:
        sys.exit(EXIT_USAGE)
    sys.exit(EXIT_CREDENTIALS if rejected else EXIT_OK)


def _split(failures: list[ProviderError]) -> tuple[list[ProviderError], list[ProviderError]]:
    if not failures:
        return [], []
    from rolecall.routing.credentials import split_failures

    return split_failures(failures)


def _check_credentials(loaded: RolecallConfig) -> tuple[CredentialCheck, list[ProviderError]]:
    try:
        from rolecall.routing.credentials import check_config_credentials
    except ImportError:
        return "unavailable", []
    try:
        failures = list(asyncio.run(check_config_credentials(loaded)))
    except CredentialsError as exc:
        failures = list(exc.errors)
    except RolecallError as exc:  # e.g. a provider's optional package is missing: exit 2
        fail(exc.message, exit_code_for(exc))
    if any(error.kind.disables_provider for error in failures):
        return "failed", failures
    return "ok", failures


def _issue_json(issue: ConfigIssue) -> dict[str, Any]:
    return {
        "location": issue.location,
        "line": issue.line,
        "problem": issue.problem,
        "fix": issue.fix,
    }


def _errors_json(errors: list[ProviderError]) -> list[dict[str, Any]]:
    return [
        {"provider": error.provider, "kind": error.kind.value, "message": error.message}
        for error in errors
    ]


def _report_json(
    report: ConfigReport,
    check: CredentialCheck,
    rejected: list[ProviderError],
    unchecked: list[ProviderError],
) -> dict[str, Any]:
    return {
        "valid": report.valid,
        "source": report.source,
        "errors": [_issue_json(issue) for issue in report.errors],
        "warnings": [_issue_json(issue) for issue in report.warnings],
        "credential_check": check,
        "credentials": _errors_json(rejected),
        "credentials_unchecked": _errors_json(unchecked),
    }


# A file broken on every line must not bury the summary under thousands of lines.
_SHOWN_ISSUES = 100


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _print_report(
    report: ConfigReport,
    check: CredentialCheck,
    rejected: list[ProviderError],
    unchecked: list[ProviderError],
) -> None:
    for issue in report.errors[:_SHOWN_ISSUES]:
        click.echo(str(issue))
    if len(report.errors) > _SHOWN_ISSUES:
        more = _plural(len(report.errors) - _SHOWN_ISSUES, "more problem")
        click.echo(f"... {more} (--json lists them all)")
    for issue in report.warnings[:_SHOWN_ISSUES]:
        click.echo(f"warning: {issue}")
    if len(report.warnings) > _SHOWN_ISSUES:
        more = _plural(len(report.warnings) - _SHOWN_ISSUES, "more warning")
        click.echo(f"... {more} (--json lists them all)")
    if report.config is None or report.errors:
        where = f" in {report.source}" if report.source else ""
        click.echo(f"config invalid: {_plural(len(report.errors), 'problem')}{where}")
        return
    loaded = report.config
    for error in unchecked:
        click.echo(
            visible(
                redact(
                    f"warning: {error.provider}: could not be checked ({error.kind.value}: "
                    f"{' '.join(error.message.split())}); its key was not confirmed"
                )
            ),
            err=True,
        )
    for error in rejected:
        variable = loaded.key_env_var(error.provider)
        hint = f" (key from ${variable})" if variable else ""
        click.echo(visible(redact(f"{error.provider}: {error.message}{hint}")))
    if rejected:
        click.echo(f"credential check failed for {_plural(len(rejected), 'provider')}")
        return
    summary = (
        f"config OK: {_plural(len(loaded.providers), 'provider')}, "
        f"{_plural(len(loaded.roles), 'role')}"
    )
    if check == "skipped":
        summary += " (credentials not checked: --offline)"
    elif check == "unavailable":
        summary += " (credential check unavailable)"
    click.echo(summary)


@config.command("show")
@config_option
@json_option
def show(config_path: str | None, as_json: bool) -> None:
    """Print the resolved config (${VAR} expanded, defaults filled in), secrets masked."""
    try:
        loaded = load_config(config_path)
    except ConfigError as exc:
        fail(exc.message, EXIT_USAGE)
    data = masked_config(loaded)
    if as_json:
        print_json(data)
        return
    import yaml

    click.echo(redact(yaml.safe_dump(data, sort_keys=False, allow_unicode=True)), nl=False)


def masked_config(loaded: RolecallConfig) -> dict[str, Any]:
    """The config as plain data with keys, credential headers and URL credentials masked."""
    data = loaded.model_dump(mode="json", exclude_none=True)
    for provider in data.get("providers", {}).values():
        if isinstance(provider.get("base_url"), str):
            provider["base_url"] = mask_url(provider["base_url"])
        headers = provider.get("headers", {})
        for name in headers:
            if SECRET_NAME.search(name):
                headers[name] = _MASK
    for section, field in (("metrics", "url"), ("state", "redis_url")):
        values = data.get(section, {})
        if isinstance(values.get(field), str):
            values[field] = mask_url(values[field])
    return data


@config.command("schema")
@json_option
def schema(as_json: bool) -> None:
    """Print the config file's JSON Schema (for editors and CI checks).

    \b
    rolecall config schema > rolecall.schema.json
    then start rolecall.yaml with:
      # yaml-language-server: $schema=rolecall.schema.json
    """
    from rolecall.config.json_schema import config_json_schema

    print_json(config_json_schema())
