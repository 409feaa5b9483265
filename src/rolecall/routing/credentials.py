"""The startup credential check: every configured provider, concurrently, bounded in time.

Each adapter's ``check_credentials`` confirms its key (and model where the vendor
allows) without spending tokens. A provider that does not answer within the
total timeout (``credential_check_timeout``) counts as a TIMEOUT failure naming it.

Only a wrong setup stops the start: a rejected key, a missing permission, an
unknown model or no quota (:attr:`ErrorKind.disables_provider`). Anything else
(timeout, 5xx, 429, network) says nothing about the credentials; :func:`split_failures`
sets those apart so the caller can warn, cool the provider down and go on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping, Sequence

from rolecall._secrets import redact
from rolecall.config.schema import ProviderConfig, RolecallConfig
from rolecall.errors import ErrorKind, ProviderError
from rolecall.providers.base import Provider

_MAX_DETAIL = 200

__all__ = [
    "check_config_credentials",
    "check_providers",
    "checked_provider_ids",
    "split_failures",
    "transient_warning",
    "used_provider_ids",
]


def _build_provider(provider_id: str, config: ProviderConfig) -> Provider:
    """The adapter for one configured provider (imported on first use: it pulls in aiohttp)."""
    from rolecall.providers import build_provider as build

    return build(provider_id, config)


def used_provider_ids(config: RolecallConfig) -> list[str]:
    """Providers some role can reach (chains and default), or all of them when no roles."""
    if not config.roles:
        return list(config.providers)
    used: dict[str, None] = {}
    for role in config.roles:
        used.update(dict.fromkeys(config.chain(role)))
    if config.default_provider:
        used[config.default_provider] = None
    return [pid for pid in used if pid in config.providers]


def checked_provider_ids(config: RolecallConfig, roles: Collection[str] | None = None) -> list[str]:
    """Every configured provider, those some role reaches first; with ``roles``, only the
    providers their chains reach.

    A provider no role names is still reachable (``--provider``, the gateway's
    ``model``), so a wrong key there is caught at the start too. A front end that calls
    ``roles`` alone (the workflow) passes them: a key it would never use cannot stop it.
    """
    if roles is not None:
        reached = (pid for role in roles for pid in config.chain(role))
        return [pid for pid in dict.fromkeys(reached) if pid in config.providers]
    ids = dict.fromkeys(used_provider_ids(config))
    ids.update(dict.fromkeys(config.providers))
    return list(ids)


def split_failures(
    errors: Sequence[ProviderError],
) -> tuple[list[ProviderError], list[ProviderError]]:
    """``(rejected, transient)``: wrong credentials or model, and failures that say nothing."""
    rejected = [error for error in errors if error.kind.disables_provider]
    transient = [error for error in errors if not error.kind.disables_provider]
    return rejected, transient


def transient_warning(error: ProviderError, cooldown: float) -> str:
    """One line: the provider could not be checked, why, and that calls go on without it."""
    detail = " ".join(error.message.split())
    if len(detail) > _MAX_DETAIL:
        detail = detail[: _MAX_DETAIL - 3] + "..."
    return redact(
        f"provider '{error.provider}' could not be checked at startup ({error.kind.value}: "
        f"{detail}); it cools down for {cooldown:g} s while the others answer"
    )


async def _check_one(provider_id: str, provider: Provider) -> ProviderError | None:
    try:
        await provider.check_credentials()
    except ProviderError as error:
        if not error.provider:
            error.provider = provider_id
        return error
    except Exception as error:  # an adapter bug must not hide the other providers' results
        return ProviderError(
            f"credential check failed: {type(error).__name__}: {error}",
            kind=ErrorKind.BAD_RESPONSE,
            provider=provider_id,
        )
    return None


async def check_providers(
    providers: Mapping[str, Provider],
    timeout: float = 10.0,  # noqa: ASYNC109 - a total budget across concurrent checks
) -> list[ProviderError]:
    """Check every provider at once; the failures, in the mapping's order."""
    if not providers:
        return []
    tasks = {
        provider_id: asyncio.ensure_future(_check_one(provider_id, provider))
        for provider_id, provider in providers.items()
    }
    try:
        await asyncio.wait(tasks.values(), timeout=timeout)
    finally:
        pending = [task for task in tasks.values() if not task.done()]
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
    errors: list[ProviderError] = []
    for provider_id, task in tasks.items():
        if task.cancelled():
            errors.append(
                ProviderError(
                    f"provider '{provider_id}' did not answer the credential check "
                    f"within {timeout:g} s (raise credential_check_timeout if it is slow)",
                    kind=ErrorKind.TIMEOUT,
                    provider=provider_id,
                )
            )
        elif (error := task.result()) is not None:
            errors.append(error)
    return errors


async def check_config_credentials(
    config: RolecallConfig,
    providers: Mapping[str, Provider] | None = None,
    roles: Collection[str] | None = None,
) -> list[ProviderError]:
    """Check every provider ``config`` defines (or ``roles`` reach, see
    :func:`checked_provider_ids`), building (and then closing) those not given."""
    given = providers or {}
    built: dict[str, Provider] = {}
    try:
        to_check: dict[str, Provider] = {}
        for provider_id in checked_provider_ids(config, roles):
            provider = given.get(provider_id)
            if provider is None:
                provider = built[provider_id] = _build_provider(
                    provider_id, config.providers[provider_id]
                )
            to_check[provider_id] = provider
        return await check_providers(to_check, timeout=config.credential_check_timeout)
    finally:
        for provider in built.values():
            await provider.aclose()
