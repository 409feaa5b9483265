"""Masked secrets and the redaction every outgoing text passes through.

Every :class:`Secret` registers its value here when it is created, so that
:func:`redact` can strip it from any text (a server's error body that echoes the
key, an exception message, a log line, an answer) without the caller knowing
which keys exist. Credentials written inside a URL (``http://user:pass@host``,
``?api_key=...``) are registered by :func:`register_url_secrets` when the config
is loaded, and :func:`mask_url` shows such a URL with them masked.

A vendor or a model may echo a key in another form than it was sent, so each
secret is masked in every form that gives it away: as written, in any letter
case, percent-encoded, escaped inside a JSON string, and base64-encoded (standard
and URL-safe alphabets, at each of the three byte alignments a key can take inside
a longer encoded text).

Redaction runs on every answer and stream chunk, so its cost matters: a text
shorter than the shortest needle is returned at once; a longer one is lower-cased
once and searched for one needle per secret and form family (plain text, and
base64 at each alignment: fast substring searches); the costly case-insensitive
pattern of every form only runs when a needle is found, that is, when a secret
is really there.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, quote_plus, unquote, unquote_plus, urlsplit, urlunsplit

__all__ = [
    "Secret",
    "forget_secret",
    "mask_url",
    "redact",
    "redact_answer",
    "register_secret",
    "register_url_secrets",
    "secret_forms",
]

_MASK = "***"
_lock = threading.Lock()
_known: set[str] = set()
_forms: set[str] = set()
_needles: set[str] = set()
# Values this short would redact ordinary words; real keys are far longer.
_MIN_SECRET_LEN = 6
# Query parameters whose values are credentials (api_key, key, token, sig, X-Amz-Signature...).
_SECRET_PARAM = re.compile(r"key|token|sig|secret|passw|pwd|auth|credential|session", re.I)
# Schemes whose lone user name (no password) is a name, not a token: registered as a
# secret, a role called ``postgres`` (or Redis's ACL user ``default``) would mask that
# word in every answer and message. redis-py reads ``redis://x@host`` as the user ``x``
# with no password and then sends no AUTH at all, so a token written there is not used
# as one either; a password alone is ``redis://:pw@host``, masked as any password.
_NAMED_USER_SCHEMES = frozenset({"postgresql", "postgres", "redis", "rediss"})
# user:password@ after a scheme; the password is masked even when it was never registered.
_URL_PASSWORD = re.compile(r"://([^\s/?#@:]*):([^\s/?#@]+)@")
# A key a vendor shows masked in its own way (OpenAI's 401: ``sk-****...abcd``): the
# characters it leaves are still the key's, and whoever reads our errors may not hold it.
_VENDOR_MASKED = re.compile(r"[A-Za-z0-9_-]{0,12}\*{4,}[A-Za-z0-9_-]{0,8}")
# Characters percent-encoding leaves alone: a run of them survives every text form of a key.
_UNRESERVED_RUN = re.compile(r"[a-z0-9._~-]+")
# Characters the two base64 alphabets agree on.
_BASE64_COMMON_RUN = re.compile(r"[A-Za-z0-9]+")


@dataclass(frozen=True, slots=True)
class _Masker:
    """Lower-cased needles for the cheap pre-check, and the pattern that masks every form."""

    needles: tuple[str, ...]
    shortest: int  # a text shorter than every needle holds no secret (most stream chunks)
    pattern: re.Pattern[str]


_masker: _Masker | None = None


class Secret:
    """A credential whose ``repr`` and ``str`` never show its value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value
        if len(value) >= _MIN_SECRET_LEN:
            _register(value)

    def get(self) -> str:
        """The real value; call it only where the request header is built."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return _MASK

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self) -> Any:  # pragma: no cover - pickling keeps the value masked in reprs only
        return (Secret, (self._value,))


def _base64_core(encode: Callable[[bytes], bytes], raw: bytes, shift: int) -> str:
    """The base64 characters fixed by ``raw`` alone when ``shift`` bytes precede it."""
    encoded = encode(b"\0" * shift + raw).decode("ascii")
    start = -(-8 * shift // 6)  # the first character with no bit of the preceding bytes
    end = 8 * (shift + len(raw)) // 6  # the last character with no bit of what follows
    return encoded[start:end]


def _text_forms(value: str) -> set[str]:
    """``value`` as written, percent-encoded, and as a JSON string holds it: text redacted
    once encoded (``--json`` output, a vendor's error body) has ``\\"``, ``\\\\``, ``\\u00e9``
    or, from some encoders, ``\\/`` where the value has ``"``, ``\\``, ``é`` or ``/``."""
    forms = {value, quote(value, safe=""), quote_plus(value, safe="")}
    for ascii_only in (True, False):
        escaped = json.dumps(value, ensure_ascii=ascii_only)[1:-1]
        forms.update((escaped, escaped.replace("/", "\\/")))
    return forms


def secret_forms(value: str) -> set[str]:
    """The texts that give ``value`` away: as is, percent-encoded, JSON-escaped, base64 at
    each alignment.

    Letter case is left to the matching (it ignores case for the plain forms).
    """
    forms = _text_forms(value)
    raw = value.encode("utf-8")
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        forms.update(_base64_core(encode, raw, shift) for shift in range(3))
    return {form for form in forms if len(form) >= _MIN_SECRET_LEN}


def _longest(runs: list[str]) -> str:
    return max(runs, key=len, default="")


def _needles_for(value: str) -> set[str]:
    """Lower-cased substrings that every form of ``value`` contains (one per family).

    A family whose shared run is too short to be telling adds its whole forms instead.
    """
    needles: set[str] = set()
    text_run = _longest(_UNRESERVED_RUN.findall(value.lower()))
    if len(text_run) >= _MIN_SECRET_LEN:
        needles.add(text_run)
    else:
        needles.update(form.lower() for form in _text_forms(value))
    raw = value.encode("utf-8")
    for shift in range(3):
        core = _base64_core(base64.b64encode, raw, shift)
        run = _longest(_BASE64_COMMON_RUN.findall(core))
        if len(run) >= _MIN_SECRET_LEN:
            needles.add(run.lower())
        else:
            needles.add(core.lower())
            needles.add(_base64_core(base64.urlsafe_b64encode, raw, shift).lower())
    return {needle for needle in needles if len(needle) >= _MIN_SECRET_LEN}


def _register(value: str) -> None:
    with _lock:
        if value in _known:
            return
        _known.add(value)
        _forms.update(secret_forms(value))
        _needles.update(_needles_for(value))
        _rebuild()


def _rebuild() -> None:
    """The masker for the current forms and needles; called with ``_lock`` held."""
    global _masker
    if not _forms:
        _masker = None
        return
    # Longest first so a form that contains another is masked whole.
    alternatives = sorted(_forms, key=len, reverse=True)
    pattern = re.compile("|".join(re.escape(v) for v in alternatives), re.IGNORECASE)
    needles = tuple(sorted(_needles, key=len, reverse=True))
    _masker = _Masker(needles, len(needles[-1]) if needles else 0, pattern)


@contextmanager
def _scoped_registry() -> Iterator[None]:
    """Secrets registered inside the block are forgotten after it (for tests that fuzz keys)."""
    global _masker
    with _lock:
        saved = set(_known), set(_forms), set(_needles), _masker
    try:
        yield
    finally:
        with _lock:
            for live, kept in zip((_known, _forms, _needles), saved[:3], strict=True):
                live.clear()
                live.update(kept)
            _masker = saved[3]


def register_secret(value: str) -> None:
    """Treat ``value`` as secret from now on (for values that are not :class:`Secret`)."""
    if len(value) >= _MIN_SECRET_LEN:
        _register(value)


def forget_secret(value: str) -> None:
    """Stop masking ``value``: a rotated credential (an expired access token), so that a
    process that refreshes a token every hour does not mask a growing list of dead ones."""
    with _lock:
        if value not in _known:
            return
        _known.discard(value)
        _forms.clear()
        _needles.clear()
        for kept in _known:
            _forms.update(secret_forms(kept))
            _needles.update(_needles_for(kept))
        _rebuild()


def _split_userinfo(netloc: str) -> tuple[str | None, str | None, str]:
    """(user, password, host[:port]); user None without an ``@``, password None without ``:``."""
    userinfo, at, host = netloc.rpartition("@")
    if not at:
        return None, None, netloc
    user, colon, password = userinfo.partition(":")
    return user, (password if colon else None), host


def _url_credentials(url: str) -> list[str]:
    """The password (or a lone user name: a token) and secret-looking query values of ``url``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    found: list[str] = []
    user, password, _ = _split_userinfo(parts.netloc)
    if password is None and parts.scheme.lower() in _NAMED_USER_SCHEMES:
        user = None  # postgresql://app@host/db: a role name, never a credential
    if user is not None:
        value = password if password is not None else user
        found += [value, unquote(value)]
    for item in parts.query.split("&") if parts.query else ():
        name, eq, value = item.partition("=")
        if eq and value and _SECRET_PARAM.search(unquote_plus(name)):
            found += [value, unquote_plus(value)]
    return found


def register_url_secrets(url: str) -> str:
    """Register the credentials written inside ``url``; returns ``url`` (a validator's shape)."""
    for value in _url_credentials(url):
        register_secret(value)
    return url


def _mask_param(item: str) -> str:
    name, eq, value = item.partition("=")
    if eq and value and _SECRET_PARAM.search(unquote_plus(name)):
        return f"{name}={_MASK}"
    return item


def mask_url(url: str) -> str:
    """``url`` for display: the password (or lone user name) and secret query values masked.

    Everything else is kept character for character (no ``urlunsplit``, which turns
    ``sqlite:////abs.db`` into ``sqlite://abs.db``), so a shown URL pasted back into a
    config names the same place.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact(url)
    head, hash_mark, fragment = url.partition("#")
    before, question_mark, query = head.partition("?")
    user, password, host = _split_userinfo(parts.netloc)
    if user is not None:
        netloc = f"{user}:{_MASK}@{host}" if password is not None else f"{_MASK}@{host}"
        authority = f"//{parts.netloc}"
        if authority not in before:  # urlsplit dropped characters (tabs, newlines): rebuild
            query = "&".join(_mask_param(item) for item in parts.query.split("&"))
            return redact(urlunsplit(parts._replace(netloc=netloc, query=query)))
        before = before.replace(authority, f"//{netloc}", 1)
    if query:
        query = "&".join(_mask_param(item) for item in query.split("&"))
    return redact(before + question_mark + query + hash_mark + fragment)


def redact_answer(text: str) -> str:
    """``text`` with every known secret, in every form, replaced by ``***``.

    For answer text (replies, stream chunks): only registered secrets are touched,
    so a connection string in generated code stays as the model wrote it. A secret
    split across two stream chunks is not seen by a per-chunk call.
    """
    masker = _masker
    if masker is None or len(text) < masker.shortest:
        return text
    lowered = text.lower()
    for needle in masker.needles:
        if needle in lowered:
            return masker.pattern.sub(_MASK, text)
    return text


def redact(text: str) -> str:
    """``text`` with every known secret, every URL password and every key a vendor showed
    partly masked replaced by ``***``."""
    if not text:
        return text
    text = redact_answer(text)
    if "://" in text:
        text = _URL_PASSWORD.sub(rf"://\g<1>:{_MASK}@", text)
    if "****" in text:
        text = _VENDOR_MASKED.sub(_MASK, text)
    return text
