"""Which proxy the environment names for a provider's URL, read as curl and requests read it.

- The proxy: ``https_proxy``/``HTTPS_PROXY`` for an ``https`` URL, ``http_proxy``/
  ``HTTP_PROXY`` for an ``http`` one, else ``all_proxy``/``ALL_PROXY``; the lower-case
  name wins (urllib's rules, which requests follows). A value without a scheme
  (``proxy.corp:3128``) is an ``http://`` proxy, as curl, requests and httpx take it; a
  SOCKS proxy is refused by name (the proxied client speaks HTTP to its proxy).
- ``NO_PROXY`` (or ``no_proxy``), entries split by commas or spaces: ``*`` exempts every
  host; ``example.com``, ``.example.com`` and ``*.example.com`` the domain and its
  subdomains; an IP address, with or without IPv6 brackets, or a CIDR block
  (``10.0.0.0/8``, ``fd00::/8``, as curl and requests take them); ``host:port`` that port
  only.
- Loopback hosts (``localhost``, ``*.localhost``, ``127.0.0.0/8``, ``::1``) are always
  reached directly: a proxy for the internet cannot reach a server on this machine
  (Ollama, vLLM), as Go's HTTP client decides too.
"""

from __future__ import annotations

import ipaddress
import urllib.request
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from rolecall._secrets import mask_url, register_url_secrets
from rolecall.providers._wire_message import WireRequestError

__all__ = ["EnvProxy", "env_proxy", "exempt"]

_IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True, slots=True)
class EnvProxy:
    """A proxy URL (with its scheme) and the variable that named it, for messages."""

    url: str
    variable: str


def env_proxy(url: str) -> EnvProxy | None:
    """The proxy the environment names for ``url``, or None to reach it directly.

    Raises :class:`WireRequestError` for a proxy of a scheme the client cannot speak.
    """
    parts = urlsplit(url)
    proxies = urllib.request.getproxies()
    if not proxies or exempt(parts, proxies.get("no", "")):
        return None
    for scheme in (parts.scheme, "all"):
        value = proxies.get(scheme)
        if value:
            return _checked(value, f"{scheme.upper()}_PROXY")
    return None


def _checked(value: str, variable: str) -> EnvProxy:
    proxy = value if "://" in value else f"http://{value}"
    register_url_secrets(proxy)
    scheme = proxy.partition("://")[0].lower()
    if scheme not in ("http", "https"):
        raise WireRequestError(
            f"{variable} names a {scheme} proxy ({mask_url(proxy)}), which rolecall cannot "
            f"use: set {variable} to an http:// proxy, or exempt the host in NO_PROXY"
        )
    return EnvProxy(proxy, variable)


def exempt(parts: SplitResult, no_proxy: str) -> bool:
    """Whether the URL's host is loopback or matches an entry of ``no_proxy``."""
    host = (parts.hostname or "").rstrip(".")
    try:
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme)
    except ValueError:  # a port out of range: the request fails on its own
        port = None
    address = _address(host)
    if _is_loopback(host, address):
        return True
    for entry in no_proxy.replace(",", " ").split():
        if entry == "*" or _matches(entry.lower(), host, port, address):
            return True
    return False


def _address(text: str) -> _IPAddress | None:
    try:
        return ipaddress.ip_address(text.removeprefix("[").removesuffix("]"))
    except ValueError:
        return None


def _is_loopback(host: str, address: _IPAddress | None) -> bool:
    if address is None:
        return host == "localhost" or host.endswith(".localhost")
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def _matches(entry: str, host: str, port: int | None, address: _IPAddress | None) -> bool:
    if "/" in entry:
        try:
            network = ipaddress.ip_network(entry.strip("[]"), strict=False)
        except ValueError:
            return False
        return address is not None and address in network
    name, wanted_port = _split_port(entry)
    if wanted_port is not None and wanted_port != port:
        return False
    entry_address = _address(name)
    if entry_address is not None or address is not None:
        return entry_address == address
    domain = name.lstrip("*").lstrip(".").rstrip(".")
    return bool(domain) and (host == domain or host.endswith(f".{domain}"))


def _split_port(entry: str) -> tuple[str, int | None]:
    """``host:port`` or ``[v6]:port`` apart; a bare IPv6 address keeps its colons."""
    if entry.startswith("["):
        name, _, rest = entry.partition("]")
        port = rest.removeprefix(":")
        return name + "]", int(port) if port.isdigit() else None
    name, colon, port = entry.rpartition(":")
    if colon and port.isdigit() and ":" not in name:
        return name, int(port)
    return entry, None
