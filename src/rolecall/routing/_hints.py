"""One line per failed provider: what went wrong, in the user's terms, and how to fix it."""

from __future__ import annotations

import time
from collections.abc import Sequence

from rolecall._secrets import redact
from rolecall.config._bedrock_config import BedrockConfig
from rolecall.config._vertex_config import VertexConfig
from rolecall.config.provider_models import LocalProviderConfig
from rolecall.config.registry import provider_types
from rolecall.config.schema import RolecallConfig
from rolecall.errors import ErrorKind, ProviderError
from rolecall.providers._bedrock_errors import is_clock_skew

__all__ = ["explain", "explain_all"]

_MAX_DETAIL = 300


def _key_name(config: RolecallConfig, provider_id: str) -> str:
    variable = config.key_env_var(provider_id)
    return variable if variable else f"the api_key of provider '{provider_id}'"


def _base_url(config: RolecallConfig, provider_id: str) -> str:
    provider = config.providers.get(provider_id)
    if provider is None:
        return f"provider '{provider_id}'"
    if isinstance(provider, LocalProviderConfig):
        return "the embedded model"
    row = provider_types().get(provider.type)
    default = row.default_base_url if row is not None else None
    return provider.base_url or default or f"provider '{provider_id}'"


def _model(config: RolecallConfig, provider_id: str) -> str:
    provider = config.providers.get(provider_id)
    return (provider.model if provider is not None else None) or "(default)"


def _google_cloud_fix(error: ProviderError, provider: VertexConfig) -> str | None:
    """Vertex AI's credentials are Google Cloud's (no key): their fixes name gcloud and IAM."""
    pid = error.provider
    if error.kind is ErrorKind.AUTH and provider.api_key is None:
        return (
            f"the Google Cloud credentials of provider '{pid}' were rejected: run `gcloud auth "
            f"application-default login`, or set providers.{pid}.credentials_file"
        )
    if error.kind is ErrorKind.PERMISSION:
        return (
            f"provider '{pid}' may not call model '{provider.model}' in project "
            f"'{provider.project}': enable the Vertex AI API there and grant the credentials "
            "roles/aiplatform.user"
        )
    if error.kind is ErrorKind.QUOTA:
        return f"project '{provider.project}' has billing disabled: enable billing for it"
    return None


def _aws_fix(error: ProviderError, provider: BedrockConfig) -> str | None:
    """Bedrock's credentials are usually AWS's (SigV4, no key): their fixes name the AWS
    chain, model access and the region."""
    pid = error.provider
    where = f"region '{provider.region}'" if provider.region else "its region"
    if is_clock_skew(error):
        return (
            f"AWS refused the signature of provider '{pid}' as made at the wrong time: this "
            "machine's clock is more than 5 minutes off; set it right (turn on network time "
            "sync), the credentials are not at fault"
        )
    if error.kind is ErrorKind.AUTH and provider.api_key is None:
        profile = f" (profile '{provider.profile}')" if provider.profile else ""
        return (
            f"the AWS credentials{profile} of provider '{pid}' were rejected: check "
            "AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY or run `aws sso login` (`aws sts get-caller-identity` "
            "shows who you are), or set AWS_BEARER_TOKEN_BEDROCK to a valid Bedrock API key"
        )
    if error.kind is ErrorKind.PERMISSION:
        return (
            f"provider '{pid}' may not invoke model '{provider.model}' in {where}: enable "
            "access to it in the Bedrock console, allow bedrock:InvokeModel and "
            "bedrock:InvokeModelWithResponseStream, or use its inference profile id (us.<id>)"
        )
    if error.kind is ErrorKind.NOT_FOUND:
        return (
            f"model '{provider.model}' is not offered in {where} at provider '{pid}': check "
            "the model or inference profile id for that region"
        )
    if error.kind is ErrorKind.QUOTA:
        return (
            f"provider '{pid}' used up its Bedrock quota in {where}: wait for the daily reset "
            "or ask for more in Service Quotas"
        )
    return None


def _fix(error: ProviderError, config: RolecallConfig) -> str:
    pid = error.provider
    kind = error.kind
    provider = config.providers.get(pid)
    cloud_fix = None
    if isinstance(provider, VertexConfig):
        cloud_fix = _google_cloud_fix(error, provider)
    elif isinstance(provider, BedrockConfig):
        cloud_fix = _aws_fix(error, provider)
    if cloud_fix is not None:
        return cloud_fix
    if kind is ErrorKind.AUTH:
        return f"{_key_name(config, pid)} was rejected: set a valid key"
    if kind is ErrorKind.PERMISSION:
        return (
            f"{_key_name(config, pid)} may not use model '{_model(config, pid)}': "
            "check the key's project, region or access"
        )
    if kind is ErrorKind.NOT_FOUND:
        return f"model '{_model(config, pid)}' not found at provider '{pid}': check the model name"
    if kind is ErrorKind.QUOTA:
        return f"provider '{pid}' has no credit/quota left: add credit or raise the spending limit"
    if kind is ErrorKind.RATE_LIMIT:
        if error.retry_after is not None:
            until = time.strftime("%H:%M:%S", time.localtime(time.time() + error.retry_after))
            return f"rate limited until {until}: wait, raise the limit, or add a fallback provider"
        return "rate limited: wait, raise the limit, or add a fallback provider"
    if kind is ErrorKind.OVERLOADED:
        return f"provider '{pid}' is overloaded: try later or add a fallback provider"
    if kind is ErrorKind.SERVER:
        return f"server error at provider '{pid}': try later or add a fallback provider"
    if kind is ErrorKind.TIMEOUT:
        return f"no answer from {_base_url(config, pid)} in time: raise the provider's timeout"
    if kind is ErrorKind.NETWORK:
        return f"could not reach {_base_url(config, pid)}: check base_url and the network"
    if kind is ErrorKind.TLS:
        return (
            f"TLS with {_base_url(config, pid)} failed: check the URL's scheme; for a certificate "
            "from a private or corporate CA, set SSL_CERT_FILE or SSL_CERT_DIR to its CA"
        )
    if kind is ErrorKind.CONTEXT_LENGTH:
        return (
            f"the prompt is too long for model '{_model(config, pid)}': shorten it or add a "
            "provider with a larger context window"
        )
    if kind is ErrorKind.CONTENT_FILTER:
        return "the answer was blocked by the provider's content filter: rephrase the prompt"
    if kind is ErrorKind.UNSUPPORTED:
        return (
            f"provider '{pid}' cannot take this request: add a provider that can to the chain, "
            "or leave the feature out"
        )
    if kind is ErrorKind.BAD_REQUEST:
        return "the provider rejected the request: check the params for this provider and role"
    return f"provider '{pid}' sent a malformed or empty reply: try again or use another model"


def explain(error: ProviderError, config: RolecallConfig) -> str:
    """``provider: fix (kind: original message)``, with secrets redacted."""
    detail = error.message
    if len(detail) > _MAX_DETAIL:
        detail = detail[: _MAX_DETAIL - 3] + "..."
    provider = config.providers.get(error.provider)
    if isinstance(provider, LocalProviderConfig) and error.kind is ErrorKind.NOT_FOUND:
        # A missing model file or runtime package: the message names the file or the
        # package and its fix; "check the model name" would send the user the wrong way.
        return redact(f"{error.provider}: {detail} ({error.kind.value})")
    return redact(f"{error.provider}: {_fix(error, config)} ({error.kind.value}: {detail})")


def explain_all(head: str, errors: Sequence[ProviderError], config: RolecallConfig) -> str:
    lines = [explain(error, config) for error in errors] or ["no provider was available"]
    return head + "\n" + "\n".join(f"  {line}" for line in lines)
