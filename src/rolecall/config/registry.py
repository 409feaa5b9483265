"""The provider types: one row per ``type:`` a config may name.

Every fact about a type lives in its row, and every module that needs one reads it
here: config validation (the type's keys and its ``type:`` choices), the adapters
(default address), ``build_provider`` (the adapter class, the extra it needs), call
parameters (the ``KNOWN_PARAMS`` family) and capabilities, the failure hints,
OpenTelemetry (``gen_ai.provider.name``), discovery and ``rolecall init`` (key variables,
example model), ``rolecall sim`` (the wire dialect it serves) and the README's table.

Adding a type takes a config model, an adapter module and one row:

1. ``config/_azure_config.py``::

       class AzureOpenAIConfig(ProviderConfig):
           type: Literal["azure-openai"]
           deployment: str = Field(min_length=1)   # required keys are required here

2. ``providers/azure_openai.py`` with a class implementing ``providers.base.Provider``,
   taking ``(provider_id, config)``;
3. a ``ProviderType(name="azure-openai", adapter="rolecall.providers.azure_openai:...",
   config_model=AzureOpenAIConfig, ...)`` row in ``_BUILTIN`` below.

A third-party package adds a type without editing rolecall: an entry point in the group
``rolecall.provider_types`` that loads to a :class:`ProviderType` (read once, on the
first look-up; one that fails to load is skipped with a warning).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from types import MappingProxyType

from rolecall.config._azure_config import AzureOpenAIConfig
from rolecall.config._bedrock_config import BedrockConfig
from rolecall.config._vertex_config import DEFAULT_LOCATION, VertexConfig, vertex_root
from rolecall.config.provider_models import (
    LocalProviderConfig,
    OpenAICompatibleConfig,
    ProviderConfig,
    VendorAPIConfig,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "ProviderType",
    "provider_type",
    "provider_types",
    "register",
    "unregister",
]

ENTRY_POINT_GROUP = "rolecall.provider_types"
log = logging.getLogger("rolecall.config")


@dataclass(frozen=True, slots=True)
class ProviderType:
    """Everything rolecall knows about one provider type."""

    name: str  # the config's `type:` value, e.g. "openai", "azure-openai"
    adapter: str  # "rolecall.providers.openai:OpenAIProvider", imported lazily
    config_model: type[ProviderConfig]  # the pydantic model that validates an entry
    default_base_url: str | None  # where it is reached when no base_url is given
    # Env vars discovery and init look for, in order (() : no key). A provider of a type
    # that lists some and has no api_key gets a warning from `config validate`.
    key_env_vars: tuple[str, ...]
    example_model: str  # for init proposals, docs and the fix of a missing model
    genai_system: str  # OpenTelemetry gen_ai.provider.name (and gen_ai.system) value
    param_family: str  # which KNOWN_PARAMS set in config/params.py it takes
    capabilities: Mapping[str, bool]  # default capabilities (tools, images, json_schema, ...)
    sim_dialect: str | None  # `rolecall sim --protocol <x>` serving its wire format
    extra: str | None = None  # pip extra the adapter needs ("local", "azure", ...)
    extra_module: str | None = None  # importing this module fails -> MissingExtra(extra)
    description: str = ""


def _capabilities(*names: str) -> Mapping[str, bool]:
    # A capability left out is one the type lacks (config/params.py lists them all).
    return MappingProxyType(dict.fromkeys(names, True))


# n > 1 is nowhere: every adapter returns one choice.
_HOSTED = ("tools", "images", "json_schema", "thinking")

_BUILTIN: tuple[ProviderType, ...] = (
    ProviderType(
        name="openai",
        adapter="rolecall.providers.openai:OpenAIProvider",
        config_model=VendorAPIConfig,
        default_base_url="https://api.openai.com/v1",
        key_env_vars=("OPENAI_API_KEY",),
        example_model="gpt-4.1",
        genai_system="openai",
        param_family="openai",
        capabilities=_capabilities(*_HOSTED, "logprobs"),
        sim_dialect="openai",
        description="OpenAI's API",
    ),
    ProviderType(
        name="anthropic",
        adapter="rolecall.providers.anthropic:AnthropicProvider",
        config_model=VendorAPIConfig,
        default_base_url="https://api.anthropic.com",
        key_env_vars=("ANTHROPIC_API_KEY",),
        example_model="claude-sonnet-4-5",
        genai_system="anthropic",
        param_family="anthropic",
        capabilities=_capabilities(*_HOSTED),
        sim_dialect="anthropic",
        description="Anthropic's Messages API",
    ),
    ProviderType(
        name="google",
        adapter="rolecall.providers.google:GoogleProvider",
        config_model=VendorAPIConfig,
        default_base_url="https://generativelanguage.googleapis.com",
        key_env_vars=("GEMINI_API_KEY", "GOOGLE_API_KEY"),
        example_model="gemini-2.5-pro",
        genai_system="gcp.gemini",
        param_family="google",
        capabilities=_capabilities(*_HOSTED, "logprobs"),
        sim_dialect="google",
        description="Google's Gemini API",
    ),
    ProviderType(
        name="openai-compatible",
        adapter="rolecall.providers.openai:OpenAIProvider",
        config_model=OpenAICompatibleConfig,
        default_base_url=None,
        key_env_vars=(),
        example_model="llama3.2",
        genai_system="openai",
        param_family="openai-compatible",
        capabilities=_capabilities(*_HOSTED, "logprobs"),
        sim_dialect="openai",
        description="a server speaking OpenAI's Chat Completions (Ollama, vLLM, Groq...)",
    ),
    ProviderType(
        name="azure-openai",
        adapter="rolecall.providers.azure_openai:AzureOpenAIProvider",
        config_model=AzureOpenAIConfig,
        default_base_url=None,
        key_env_vars=("AZURE_OPENAI_API_KEY",),
        example_model="gpt-4o",
        genai_system="azure.ai.openai",
        param_family="openai",
        capabilities=_capabilities(*_HOSTED, "logprobs"),
        sim_dialect="azure-openai",
        extra="azure",
        extra_module="azure.identity",
        description="a deployment on Azure OpenAI",
    ),
    ProviderType(
        name="local",
        adapter="rolecall.providers.local:LocalProvider",
        config_model=LocalProviderConfig,
        default_base_url=None,
        key_env_vars=(),
        example_model="SmolLM2-135M-Instruct",
        genai_system="rolecall.local",
        param_family="local",
        capabilities=_capabilities("json_schema"),
        sim_dialect=None,
        extra="local",
        extra_module="mistralrs",
        description="the embedded local model",
    ),
    ProviderType(
        name="vertex",
        adapter="rolecall.providers.vertex:VertexProvider",
        config_model=VertexConfig,
        default_base_url=vertex_root(DEFAULT_LOCATION),  # each entry's follows its location
        key_env_vars=(),  # Application Default Credentials, not a key
        example_model="gemini-2.5-flash",
        genai_system="gcp.vertex_ai",
        param_family="google",
        capabilities=_capabilities(*_HOSTED, "logprobs"),
        sim_dialect="vertex",
        extra="vertex",
        extra_module="google.auth",
        description="Gemini on Google Cloud's Vertex AI",
    ),
    ProviderType(
        name="bedrock",
        adapter="rolecall.providers.bedrock:BedrockProvider",
        config_model=BedrockConfig,
        default_base_url=None,  # https://bedrock-runtime.{region}.amazonaws.com, from region
        # The AWS credential chain (SigV4) is the normal case, not a key: `config validate`
        # must not warn for a missing api_key. A Bedrock API key still works, from api_key
        # or AWS_BEARER_TOKEN_BEDROCK (the adapter reads it, as botocore does).
        key_env_vars=(),
        example_model="us.anthropic.claude-sonnet-4-5-20250929-v1:0",
        genai_system="aws.bedrock",
        param_family="bedrock",
        capabilities=_capabilities(*_HOSTED),
        sim_dialect="bedrock",
        extra="bedrock",
        extra_module="botocore",
        description="Amazon Bedrock's Converse API (SigV4 or a Bedrock API key)",
    ),
)

# Reentrant: a plugin's module may look a type up while its entry point loads.
_lock = threading.RLock()
_plugins: dict[str, ProviderType] | None = None  # None until the entry points are read
_registered: dict[str, ProviderType] = {}
_merged: Mapping[str, ProviderType] | None = None


def register(ptype: ProviderType) -> None:
    """Add ``ptype``, or replace the type of that name, for the rest of the process."""
    global _merged
    if not isinstance(ptype, ProviderType):
        raise TypeError(f"register() takes a ProviderType, not {type(ptype).__name__}")
    with _lock:
        _registered[ptype.name] = ptype
        _merged = None


def unregister(name: str) -> None:
    """Take back a type added with :func:`register` (a test's own type, say)."""
    global _merged
    with _lock:
        _registered.pop(name, None)
        _merged = None


def provider_types() -> Mapping[str, ProviderType]:
    """Every type by name: the built-ins, then plugins' entry points, then :func:`register`'s."""
    merged = _merged
    if merged is not None:
        return merged
    return _merge()


def provider_type(name: str) -> ProviderType:
    """The type called ``name``; KeyError naming the known types."""
    types = provider_types()
    try:
        return types[name]
    except KeyError:
        raise KeyError(f"unknown provider type {name!r}; known types: {', '.join(types)}") from None


def _merge() -> Mapping[str, ProviderType]:
    global _merged, _plugins
    with _lock:
        if _plugins is None:
            _plugins = {}  # a look-up while the plugins load sees the built-ins
            _plugins = _load_entry_points()
        table = {row.name: row for row in _BUILTIN}
        table.update(_plugins)
        table.update(_registered)
        _merged = MappingProxyType(table)
        return _merged


def _load_entry_points() -> dict[str, ProviderType]:
    builtin = {row.name for row in _BUILTIN}
    found: dict[str, ProviderType] = {}
    for point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            loaded = point.load()
        except Exception as exc:  # a broken plugin must not stop rolecall
            log.warning("provider type plugin %r cannot be loaded (%s); skipped", point.value, exc)
            continue
        if not isinstance(loaded, ProviderType):
            log.warning(
                "provider type plugin %r is a %s, not a rolecall ProviderType; skipped",
                point.value,
                type(loaded).__name__,
            )
        elif loaded.name in builtin:
            log.warning(
                "provider type plugin %r would replace the built-in type %r; skipped",
                point.value,
                loaded.name,
            )
        else:
            found[loaded.name] = loaded
    return found
