"""Provider health shared by every process through Redis (``state.redis_url``).

:class:`RedisHealth` is a :class:`~rolecall.health.memory.ProviderHealth` (the local truth
of this process, so ``is_available``, ``state`` and selection stay in-memory
lookups) that also mirrors what it learns to Redis and adopts what other
processes learnt:

- an unavailable mark (bad key, no permission, unknown model, no quota) is
  ``SET`` with a long expiry (``unavailable_ttl``);
- a rate-limit cooldown is ``SET`` with the time left until the vendor's reset as
  its expiry (only ever extended), so no process calls the provider before then;
- an open circuit is ``SET`` for ``open_for`` seconds; once it expires, one
  process at a time probes the provider (``SET NX`` on a probe key).

Keys are ``{key_prefix}:health:{provider}:{fingerprint}:{field}``, where the
fingerprint hashes what decides whether calls can succeed (type, model, key,
endpoint, headers): a config with a new key starts with a clean slate, and no
secret is ever written to Redis. Expiries are Redis's own, so hosts whose clocks
disagree still agree on when a cooldown ends.

Other processes' findings arrive two ways: ``admit`` (already async) reads the
provider's keys in one pipelined round trip when the local view says it is
available, and a background task polls every provider every ``poll_interval``
seconds so the synchronous lookups follow too.

A Redis outage never fails or slows a call: one warning, then in-memory health only,
with a quiet reconnect attempt in the background every ``reconnect_after`` seconds
(see ``_redis_state``). The first connection is made in the background as well, from
when the tracker is built (in an event loop) or first used: a call made before Redis
first answered goes by this process's health alone.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rolecall._secrets import Secret, redact, register_url_secrets
from rolecall.config.schema import REDIS_URL_FIX, ProviderConfig, RolecallConfig
from rolecall.errors import (
    MAX_RETRY_AFTER,
    ConfigError,
    ConfigIssue,
    MissingExtra,
    ProviderError,
)
from rolecall.health._redis_state import RedisState, Write
from rolecall.health._shared_errors import (
    error_from_json,
    error_to_json,
    is_error_json,
    json_object,
)
from rolecall.health.host import HostHealth, host_table
from rolecall.health.memory import Admission, HealthTracker, ProviderHealth, SharedProbe

if TYPE_CHECKING:
    from redis.asyncio.client import Pipeline

__all__ = ["RedisHealth", "make_health", "provider_fingerprint"]

log = logging.getLogger("rolecall.health")

_SCHEMES = ("redis", "rediss", "unix")
# Cuts a key's expiry to ARGV[1] ms when it is longer (or missing: a key without one).
_CUT = """
local ttl = redis.call('PTTL', KEYS[1])
if ttl > tonumber(ARGV[1]) or ttl == -1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return ttl
"""
# Where the provider id alone is all we know (a provider injected without config).
_NO_FINGERPRINT = "-"


def make_health(
    config: RolecallConfig, clock: Callable[[], float] = time.monotonic
) -> HealthTracker:
    """The tracker ``config`` asks for: shared through Redis when ``state.redis_url`` is set,
    else through the host's table in a worker of ``rolecall serve --workers N``.

    Raises :class:`MissingExtra` when that needs the ``redis`` package and it is missing.
    """
    url = config.state.redis_url
    if not url:
        table = host_table()
        if table is not None:
            fingerprints = {pid: provider_fingerprint(pc) for pid, pc in config.providers.items()}
            return HostHealth(table, fingerprints=fingerprints, clock=clock)
        return ProviderHealth(clock=clock)
    return RedisHealth(
        url,
        key_prefix=config.state.key_prefix,
        fingerprints={pid: provider_fingerprint(pc) for pid, pc in config.providers.items()},
        clock=clock,
    )


def provider_fingerprint(provider: ProviderConfig) -> str:
    """A short hash of what decides whether the provider's calls can succeed: the keys
    every type has that pick the endpoint and credential, and the type's own keys
    (``model_path``, a deployment, a region)."""
    key = provider.api_key.get() if provider.api_key is not None else None
    own = sorted(set(type(provider).model_fields) - set(ProviderConfig.model_fields))
    own_values = {name: _plain(getattr(provider, name)) for name in own}
    identity = [
        provider.type,
        provider.model,
        key,
        provider.base_url,
        sorted(provider.headers.items()),
        own_values,
    ]
    encoded = json.dumps(identity, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(encoded).hexdigest()[:16]


def _plain(value: object) -> object:
    # A secret of a type's own (a cloud credential) counts by its value, like api_key.
    return value.get() if isinstance(value, Secret) else value


@dataclass(frozen=True, slots=True)
class _Keys:
    unavailable: str
    cooldown: str
    circuit: str
    probe: str

    @property
    def all(self) -> tuple[str, ...]:
        return (self.unavailable, self.cooldown, self.circuit, self.probe)


class RedisHealth(ProviderHealth):
    """A :class:`ProviderHealth` whose marks, cooldowns and open circuits all processes share."""

    def __init__(
        self,
        url: str,
        *,
        key_prefix: str = "rolecall",
        fingerprints: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
        failure_threshold: int = 5,
        open_for: float = 30.0,
        latency_alpha: float = 0.3,
        unavailable_ttl: float = 3600.0,
        poll_interval: float = 0.5,
        timeout: float = 0.5,
        reconnect_after: float = 30.0,
    ) -> None:
        super().__init__(
            clock=clock,
            failure_threshold=failure_threshold,
            open_for=open_for,
            latency_alpha=latency_alpha,
        )
        _check_url(url)
        _require_redis()
        _check_options(url)
        self._prefix = key_prefix
        self._fingerprints = dict(fingerprints or {})
        self._unavailable_px = max(int(unavailable_ttl * 1000), 1)
        self._keys: dict[str, _Keys] = {}
        self._refreshing: dict[str, asyncio.Future[None]] = {}
        # Bumped by every local change that is mirrored (per provider) and by reset(), so
        # a read that was in flight meanwhile is not adopted over the newer local truth.
        self._versions: dict[str, int] = {}
        self._epoch = 0
        self._store = RedisState(
            url,
            clock=clock,
            poll=self._poll,
            poll_interval=poll_interval,
            timeout=timeout,
            reconnect_after=reconnect_after,
        )
        # Connecting starts now when an event loop runs (a router built in async code), so
        # Redis has usually answered by the first call, which never waits on it either way.
        self._store.usable()

    @property
    def shared(self) -> bool:
        """True while Redis is reachable (or due for a reconnect attempt)."""
        return not self._store.down

    async def connect(self) -> bool:
        """Wait until Redis has answered once (a caller that wants shared health from its
        first call, at startup); True when it is usable. Calls never wait on it."""
        return await self._store.connect()

    def keys(self, provider_id: str) -> tuple[str, ...]:
        """The Redis keys that hold the provider's shared health."""
        return self._keys_for(provider_id).all

    def _keys_for(self, provider_id: str) -> _Keys:
        keys = self._keys.get(provider_id)
        if keys is None:
            fingerprint = self._fingerprints.get(provider_id, _NO_FINGERPRINT)
            base = f"{self._prefix}:health:{provider_id}:{fingerprint}:"
            keys = self._keys[provider_id] = _Keys(
                base + "unavailable", base + "cooldown", base + "circuit", base + "probe"
            )
        return keys

    # ---- admission: adopt what other processes learnt -------------------------------------

    async def admit(self, provider_id: str) -> Admission | None:
        if self._store.usable() and self.is_available(provider_id):
            await self._refresh(provider_id)
            entry = self._entry(provider_id)
            if self._state(entry, self._clock()) == "half_open" and not entry.probing:
                return await self._admit_probe(provider_id)
        return await super().admit(provider_id)

    async def _admit_probe(self, provider_id: str) -> Admission | None:
        probe_key = self._keys_for(provider_id).probe
        px = max(int(self.open_for * 1000), 1)

        def claim(pipe: Pipeline) -> None:
            pipe.set(probe_key, "1", nx=True, px=px)
            # A probe lasts one open period at most: a key left with a longer expiry (by a
            # crashed or foreign process) is cut to it, so probing resumes after that.
            pipe.eval(_CUT, 1, probe_key, px)

        result = await self._store.run(claim)
        if result is not None and not result[0]:
            return None  # another process is probing
        admission = await super().admit(provider_id)
        if admission is None or result is None:
            return admission

        def release_shared() -> None:
            self._store.enqueue(Write("delete", (probe_key,)))

        return SharedProbe(admission, release_shared)

    async def _refresh(self, provider_id: str) -> None:
        """Read the provider's shared state (one round trip; concurrent callers share it)."""
        loop = asyncio.get_running_loop()
        shared = self._refreshing.get(provider_id)
        if shared is not None and not shared.done() and shared.get_loop() is loop:
            await asyncio.shield(shared)
            return
        done: asyncio.Future[None] = loop.create_future()
        self._refreshing[provider_id] = done
        try:
            await self._fetch((provider_id,))
        finally:
            if not done.done():
                done.set_result(None)
            if self._refreshing.get(provider_id) is done:
                del self._refreshing[provider_id]

    async def _poll(self) -> None:
        await self._fetch(tuple(dict.fromkeys([*self._fingerprints, *self._entries])))

    async def _fetch(self, provider_ids: tuple[str, ...]) -> None:
        if not provider_ids:
            return
        keys = [self._keys_for(pid) for pid in provider_ids]
        epoch = self._epoch
        versions = [self._versions.get(pid, 0) for pid in provider_ids]

        def read(pipe: Pipeline) -> None:
            for k in keys:
                pipe.get(k.unavailable)
                pipe.pttl(k.cooldown)
                pipe.get(k.circuit)
                pipe.pttl(k.circuit)

        values = await self._store.run(read)
        if values is None or epoch != self._epoch:
            return
        for index, pid in enumerate(provider_ids):
            if self._versions.get(pid, 0) != versions[index]:
                continue
            unavailable, cooldown_ms, circuit, circuit_ms = values[4 * index : 4 * index + 4]
            # A value we never write (another app's, a corrupt one) is no finding.
            self._adopt(
                pid,
                unavailable if is_error_json(unavailable) else None,
                cooldown_ms if isinstance(cooldown_ms, int) else -2,
                circuit if is_error_json(circuit) else None,
                circuit_ms if isinstance(circuit_ms, int) else -2,
            )

    def _adopt(
        self,
        provider_id: str,
        unavailable: str | None,
        cooldown_ms: int,
        circuit: str | None,
        circuit_ms: int,
    ) -> None:
        """Take on another process's findings; they only ever add restrictions.

        Expiries beyond what this module writes (a vendor's longest reset, one open
        period) are cut to it, in Redis too: a stray key cannot keep a provider away
        for ever."""
        now = self._clock()
        keys = self._keys_for(provider_id)
        longest = int(MAX_RETRY_AFTER * 1000)
        if cooldown_ms > longest:
            cooldown_ms = longest
            self._store.enqueue(Write("set", (keys.cooldown,), "1", longest))
        longest = max(int(self.open_for * 1000), 1)
        if circuit is not None and circuit_ms > longest:
            circuit_ms = longest
            self._store.enqueue(Write("set", (keys.circuit,), circuit, longest))
        if unavailable is None and cooldown_ms <= 0 and (circuit is None or circuit_ms <= 0):
            return
        entry = self._entry(provider_id)
        if unavailable is not None and entry.unavailable is None:
            error = error_from_json(unavailable, provider_id, origin="process")
            entry.unavailable = error
            log.warning(
                "provider %s is skipped until the config changes: %s: %s (seen by another process)",
                provider_id,
                error.kind.value,
                error.message,
            )
        if cooldown_ms > 0:
            entry.cool_until = max(entry.cool_until, now + cooldown_ms / 1000.0)
        if circuit is not None and circuit_ms > 0:
            opened_at = now - self.open_for + circuit_ms / 1000.0
            if entry.opened_at is None or opened_at > entry.opened_at:
                if entry.opened_at is None:
                    log.info("provider %s: circuit opened by another process", provider_id)
                entry.opened_at = opened_at
            data = json_object(circuit)
            failures = data.get("failures")
            if isinstance(failures, int) and not isinstance(failures, bool):
                entry.consecutive_failures = max(entry.consecutive_failures, failures)
            if entry.last_failure is None:
                entry.last_failure = error_from_json(circuit, provider_id, origin="process")

    # ---- outcomes: mirror what this process learnt -----------------------------------------

    def _mirror(self, provider_id: str, write: Write) -> None:
        self._versions[provider_id] = self._versions.get(provider_id, 0) + 1
        self._store.enqueue(write)

    def mark_unavailable(self, provider_id: str, error: ProviderError) -> None:
        entry = self._entries.get(provider_id)
        fresh = entry is None or entry.unavailable is None
        super().mark_unavailable(provider_id, error)
        if fresh:
            self._mirror(
                provider_id,
                Write(
                    "set",
                    (self._keys_for(provider_id).unavailable,),
                    error_to_json(error),
                    self._unavailable_px,
                ),
            )

    def cool_down(self, provider_id: str, until: float) -> None:
        super().cool_down(provider_id, until)
        remaining = until - self._clock()
        if remaining > 0:
            px = max(math.ceil(remaining * 1000), 1)
            keys = self._keys_for(provider_id)
            self._mirror(provider_id, Write("extend", (keys.cooldown,), "1", px))

    def record_failure(self, provider_id: str, error: ProviderError) -> None:
        entry = self._entry(provider_id)
        before = entry.opened_at
        super().record_failure(provider_id, error)
        keys = self._keys_for(provider_id)
        if entry.opened_at is not None and entry.opened_at != before:
            px = max(int(self.open_for * 1000), 1)
            body = error_to_json(error, failures=entry.consecutive_failures)
            self._mirror(provider_id, Write("set", (keys.circuit,), body, px))
            self._mirror(provider_id, Write("delete", (keys.probe,)))
        elif before is not None and entry.opened_at is None:
            # The provider answered (the request was the problem): the circuit closes.
            self._mirror(provider_id, Write("delete", (keys.circuit, keys.probe)))

    def record_success(self, provider_id: str, latency_ms: float) -> None:
        entry = self._entries.get(provider_id)
        was_open = entry is not None and entry.opened_at is not None
        super().record_success(provider_id, latency_ms)
        if was_open:
            keys = self._keys_for(provider_id)
            self._mirror(provider_id, Write("delete", (keys.circuit, keys.probe)))

    def reset(self) -> None:
        """Forget everything, here and in Redis (after a config reload)."""
        provider_ids = dict.fromkeys([*self._fingerprints, *self._entries])
        super().reset()
        self._epoch += 1
        stale = tuple(key for pid in provider_ids for key in self._keys_for(pid).all)
        if stale:
            self._store.enqueue(Write("delete", stale))

    def snapshot(self) -> dict[str, dict[str, Any]]:
        out = super().snapshot()
        for row in out.values():
            row["shared"] = self.shared
        return out

    async def aclose(self) -> None:
        """Send pending writes and close the connection (the router does this on close)."""
        await self._store.aclose()


def _check_url(url: str) -> None:
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if scheme not in _SCHEMES:
        raise ConfigError(
            [
                ConfigIssue(
                    location="state.redis_url",
                    problem="is not a Redis URL",
                    fix=REDIS_URL_FIX,
                )
            ]
        )
    register_url_secrets(url)  # a tracker built without a config still masks them


def _check_options(url: str) -> None:
    """What redis-py itself refuses in the URL (a query option's value), as a config error
    rather than a traceback at the first call."""
    from redis.asyncio.connection import parse_url

    try:
        parse_url(url)
    except ValueError as exc:
        raise ConfigError(
            [
                ConfigIssue(
                    location="state.redis_url",
                    problem=f"not a usable Redis URL ({redact(str(exc))})",
                    fix=REDIS_URL_FIX,
                )
            ]
        ) from None


def _require_redis() -> None:
    try:
        import redis.asyncio  # noqa: F401
    except ImportError as exc:
        raise MissingExtra("redis", "redis", "shared provider health") from exc
