"""The value types and small models the config's sections share: durations, secrets,
URLs that may carry credentials, pricing, capability overrides.

They sit below ``schema`` and ``provider_models`` so that both can use them; ``schema``
re-exports them for the import paths that name them there.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from types import UnionType
from typing import Annotated, Any, Literal, get_args
from urllib.parse import parse_qs, urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)
from pydantic_core import PydanticCustomError

from rolecall._secrets import Secret, mask_url, register_secret, register_url_secrets
from rolecall.config._env import SECRET_NAME

__all__ = [
    "MAX_DURATION_SECONDS",
    "METRICS_URL_FIX",
    "REDIS_URL_FIX",
    "CapabilitiesConfig",
    "ConfigModel",
    "CredentialHeaders",
    "Duration",
    "MetricsUrl",
    "PricingConfig",
    "RedisUrl",
    "SecretStr",
    "UrlStr",
    "metrics_store_backend",
    "parse_duration",
]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
# No timeout, backoff or interval needs more than a day; past about 9.2e9 s the thread
# and socket waits behind them fail with OverflowError.
MAX_DURATION_SECONDS = 86_400.0


def parse_duration(value: Any) -> float:
    """``500ms``, ``1s``, ``2m``, ``1h`` or a plain number of seconds, as seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 500ms, 1s, 2m or a number of seconds")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    else:
        raise ValueError(
            f"invalid duration {value!r}: use a number with ms, s, m or h (500ms, 1s, 2m)"
        )
    if not math.isfinite(seconds):
        # .nan compares false with every bound (a nan backoff turns retries off), .inf waits
        # forever: neither is a duration.
        raise ValueError(
            f"invalid duration {value!r}: use a finite number of seconds or a duration "
            "such as 500ms, 1s, 2m"
        )
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    if seconds > MAX_DURATION_SECONDS:
        raise ValueError(
            f"duration {value!r} is over a day: use at most 24h ({MAX_DURATION_SECONDS:g} s)"
        )
    return seconds


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0, "maximum": MAX_DURATION_SECONDS},
                {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*(ms|s|m|h)?\s*$"},
            ],
            "description": "seconds, or a duration such as 500ms, 1s, 2m",
        }
    ),
]


def _to_secret(value: Any) -> Any:
    if isinstance(value, Secret) or value is None:
        return value
    if isinstance(value, str):
        return Secret(value)
    raise ValueError("expected a string (use ${VAR} to read it from the environment)")


SecretStr = Annotated[
    Secret,
    BeforeValidator(_to_secret),
    PlainSerializer(lambda s: str(s), return_type=str),
    WithJsonSchema({"type": "string", "description": "a key; write ${VAR} to read it from env"}),
]


# A URL that may carry credentials (user:password@, ?api_key=): they are masked from then on.
UrlStr = Annotated[str, AfterValidator(register_url_secrets)]

# "Bearer TOKEN", "Basic dXNlcjpwdw==": a server may echo the credential without its scheme.
_SCHEME_AND_CREDENTIAL = re.compile(r"\s*[A-Za-z][A-Za-z0-9._-]*\s+(\S+)\s*")


def _register_credential_headers(headers: dict[str, str]) -> dict[str, str]:
    # Written as is, such a value is as secret as one read from ${VAR} (registered when
    # the file is read), and as the api_key it often replaces.
    for name, value in headers.items():
        if SECRET_NAME.search(name):
            register_secret(value)
            scheme_and_credential = _SCHEME_AND_CREDENTIAL.fullmatch(value)
            if scheme_and_credential is not None:
                register_secret(scheme_and_credential.group(1))
    return headers


# A provider's extra headers: the values of credential ones (by name) are masked from then on.
CredentialHeaders = Annotated[dict[str, str], AfterValidator(_register_credential_headers)]

_POSTGRES_SCHEMES = ("postgresql://", "postgres://")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
METRICS_URL_FIX = "use sqlite:///path/to/file.db or postgresql://user@host/dbname"


def metrics_store_backend(url: str) -> Literal["sqlite", "postgresql"] | None:
    """The metrics store a URL names (None: unsupported); the one rule that both config
    validation and ``recording.store.open_store`` follow."""
    if url.startswith("sqlite:"):
        return "sqlite"
    if url.startswith(_POSTGRES_SCHEMES):
        return "postgresql"
    return None


def _supported_metrics_url(url: str) -> str:
    if metrics_store_backend(url) is None:
        # Only the scheme is shown: the rest of a URL may carry a password.
        scheme = _SCHEME.match(url)
        what = f"scheme '{scheme.group(1)}:'" if scheme else "(it has no scheme)"
        raise ValueError(f"unsupported metrics store URL {what}: {METRICS_URL_FIX}")
    return url


# metrics.url: a URL the metrics store can open, checked when the config is read rather
# than when the first record is written (and lost).
MetricsUrl = Annotated[
    str, AfterValidator(register_url_secrets), AfterValidator(_supported_metrics_url)
]


REDIS_URL_FIX = "use redis://HOST:PORT/DB, rediss:// for TLS or unix:///PATH"
_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
_REDIS_DB = re.compile(r"^/?\d*$")


def _supported_redis_url(url: str) -> str:
    # Only the scheme and the part at fault are shown: the rest may carry a password.
    if not url.lower().startswith(_REDIS_SCHEMES):
        scheme = _SCHEME.match(url)
        what = f"scheme '{scheme.group(1)}:'" if scheme else "(it has no scheme)"
        raise ValueError(f"unsupported Redis URL {what}: {REDIS_URL_FIX}")
    try:
        parts = urlsplit(url)
        if parts.scheme.lower() != "unix":
            parts.port  # noqa: B018 - raises ValueError for a port that is no port
    except ValueError as exc:
        raise ValueError(f"not a usable Redis URL ({exc}): {REDIS_URL_FIX}") from None
    if parts.scheme.lower() != "unix" and not _REDIS_DB.match(parts.path):
        raise ValueError(f"the database after the host must be a number: {REDIS_URL_FIX}")
    _check_redis_options(url, parts.query)
    return url


# Query options redis-py reads as numbers. It applies them when it first connects, so a
# bad value would only show up then: as a warning and health kept in one process.
_REDIS_WHOLE_OPTIONS = frozenset(
    {"db", "socket_read_size", "max_connections", "health_check_interval", "ssl_min_version"}
)
_REDIS_SECONDS_OPTIONS = frozenset({"socket_timeout", "socket_connect_timeout", "timeout"})


def _check_redis_options(url: str, query: str) -> None:
    """Refuse a query option's value that redis-py would refuse. Only the option's name
    is shown: a value (a password) may be secret."""
    for name, values in parse_qs(query).items():
        value = values[0].strip()
        if name in _REDIS_WHOLE_OPTIONS and not value.isdigit():
            raise ValueError(f"the option {name}= must be a whole number, as in {name}=1")
        if name in _REDIS_SECONDS_OPTIONS and not _positive_seconds(value):
            raise ValueError(f"the option {name}= must be seconds above 0, as in {name}=0.5")
        if name == "protocol" and value not in ("2", "3"):
            raise ValueError("the option protocol= must be 2 or 3 (the RESP version)")
    try:
        from redis.asyncio.connection import parse_url
    except ImportError:
        return  # the light check above is all there is; building the tracker says why
    try:
        options = parse_url(url)
    except ValueError as exc:  # its own message names the option, never the value
        raise ValueError(f"{str(exc).rstrip('.')}: fix or remove that option") from None
    # A name redis-py does not know it passes on to the connection, which refuses it only
    # when it first connects.
    known = _redis_url_options(options.get("connection_class"))
    unknown = sorted(name for name in parse_qs(query) if name not in known)
    if unknown:
        scheme = url.partition("://")[0].lower()
        raise ValueError(
            f"redis-py takes no query option {', '.join(unknown)} in a {scheme}:// URL: "
            f"remove it, or use one of {', '.join(sorted(known))}"
        )


# Options a URL gives as text that redis-py takes as strings (it parses the others it knows:
# URL_QUERY_ARGUMENT_PARSERS); its other connection arguments are objects no URL can give.
_REDIS_TEXT_OPTIONS = frozenset(
    {
        "client_name", "encoding", "encoding_errors", "lib_name", "lib_version", "password",
        "username", "ssl_ca_certs", "ssl_ca_data", "ssl_ca_path", "ssl_cert_reqs",
        "ssl_certfile", "ssl_ciphers", "ssl_keyfile", "ssl_password",
    }
)  # fmt: skip


def _redis_url_options(connection_class: object) -> set[str]:
    """The query options a Redis URL whose connections are ``connection_class`` can carry:
    those redis-py reads from a URL that the class (or its pool: ``max_connections``) takes."""
    import inspect

    from redis.asyncio.connection import URL_QUERY_ARGUMENT_PARSERS, Connection

    cls = connection_class if isinstance(connection_class, type) else Connection
    taken = {"max_connections"}
    for klass in cls.__mro__:
        if "__init__" in klass.__dict__:
            taken.update(inspect.signature(klass.__dict__["__init__"]).parameters)
    return (set(URL_QUERY_ARGUMENT_PARSERS) | _REDIS_TEXT_OPTIONS) & taken


def _positive_seconds(value: str) -> bool:
    try:
        seconds = float(value)
    except ValueError:
        return False
    return 0 < seconds < math.inf


# state.redis_url: checked when the config is read, not at the first call that needs it.
RedisUrl = Annotated[
    str, AfterValidator(register_url_secrets), AfterValidator(_supported_redis_url)
]


def _number_kind(annotation: Any) -> str | None:
    """The pydantic error type for a field that takes a plain int or float (or None)."""
    args = get_args(annotation) if isinstance(annotation, UnionType) else (annotation,)
    if int in args:
        return "int_type"
    if float in args:
        return "float_type"
    return None


class ConfigModel(BaseModel):
    """A section of the config: unknown keys rejected, both spellings of an aliased key
    accepted, frozen once read."""

    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        arbitrary_types_allowed=True,
        frozen=True,
        # No .nan or .inf in any number field (weights, pricing, multiplier, durations).
        allow_inf_nan=False,
    )

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # A URL's password or token and a credential header never show in a repr (a
        # notebook, a log line, a traceback's locals): masked as `config show` masks them.
        for name, value in super().__repr_args__():
            if isinstance(value, str) and "://" in value:
                value = mask_url(value)
            elif name == "headers" and isinstance(value, dict):
                value = {k: "***" if SECRET_NAME.search(k) else v for k, v in value.items()}
            yield name, value

    @field_validator("*", mode="before")
    @classmethod
    def _no_true_or_false_for_a_number(cls, value: Any, info: ValidationInfo) -> Any:
        # Lax mode reads `threads: true` as 1 and `max_attempts: false` as 0: a mistake
        # taken silently. Numbers given as text stay accepted (they come from ${VAR}).
        if isinstance(value, bool) and info.field_name is not None:
            kind = _number_kind(cls.model_fields[info.field_name].annotation)
            if kind is not None:
                raise PydanticCustomError(kind, "Input should be a number")
        return value


class PricingConfig(ConfigModel):
    input_per_mtok: float = Field(ge=0, description="USD per million input tokens")
    output_per_mtok: float = Field(ge=0, description="USD per million output tokens")
    cache_read_per_mtok: float | None = Field(
        default=None, ge=0, description="USD per million cached input tokens read (default: input)"
    )
    cache_write_per_mtok: float | None = Field(
        default=None, ge=0, description="USD per million input tokens written to the cache"
    )

    def cost_usd(
        self, input_tokens: int, output_tokens: int, cached: int = 0, cache_creation: int = 0
    ) -> float:
        """USD for one call; ``input_tokens`` counts every input token, cached ones included."""
        read = self.input_per_mtok if self.cache_read_per_mtok is None else self.cache_read_per_mtok
        write = (
            self.input_per_mtok if self.cache_write_per_mtok is None else self.cache_write_per_mtok
        )
        uncached = max(input_tokens - cached - cache_creation, 0)
        return (
            uncached * self.input_per_mtok
            + cached * read
            + cache_creation * write
            + output_tokens * self.output_per_mtok
        ) / 1_000_000


class CapabilitiesConfig(ConfigModel):
    """What a provider can take, over its type's defaults (``images: false`` for a text model)."""

    tools: bool | None = None
    images: bool | None = None
    json_schema: bool | None = None
    thinking: bool | None = None
    logprobs: bool | None = None
    n: bool | None = Field(default=None, description="n > 1 (several choices)")

    def overrides(self) -> dict[str, bool]:
        return {name: value for name, value in self.model_dump().items() if value is not None}
