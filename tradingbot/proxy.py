"""The client's address and scheme behind a reverse proxy, believed only from trusted proxies.

daphne's ``--proxy-headers`` believes ``X-Forwarded-For`` from anyone, so a client could name any
address it liked: a fresh one per login attempt defeats the per-address throttle, and the access
log records the forgery. This ASGI middleware wraps the whole application (HTTP and WebSocket):
only when the TCP peer is in ``settings.TRUSTED_PROXIES`` does it replace ``scope["client"]``
with the right-most ``X-Forwarded-For`` address that is not itself a trusted proxy (each proxy
appends the address it was reached from, so everything left of that is the client's own say),
and ``scope["scheme"]`` with the last ``X-Forwarded-Proto``. Everything downstream (Django's
``REMOTE_ADDR``, ``request.is_secure()``, the login throttle, the access log) reads the scope.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from functools import cache
from typing import Any

from django.conf import settings

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_SCHEMES = {
    "http": {"http": "http", "https": "https"},
    "websocket": {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"},
}


@cache
def _networks(trusted: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(item, strict=False) for item in trusted)


def _address(text: str) -> Address | None:
    """An address as proxies write it: ``1.2.3.4``, ``1.2.3.4:5``, ``2001:db8::1``, ``[::1]:80``."""
    text = text.strip()
    if text.startswith("["):
        text = text[1 : text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(address: Address | None, networks: Iterable[Network]) -> bool:
    return address is not None and any(address in network for network in networks)


def forwarded_client(peer: str, forwarded_for: list[str], trusted: tuple[str, ...]) -> str:
    """The client's address: ``peer`` unless it is a trusted proxy, else the right-most
    ``X-Forwarded-For`` entry that is not a trusted proxy. An entry that is no address stops the
    walk at the last proxy passed (nothing left of a garbled hop can be believed)."""
    networks = _networks(trusted)
    current = _address(peer)
    if not _trusted(current, networks):
        return peer
    hops = [hop for header in forwarded_for for hop in header.split(",") if hop.strip()]
    client = peer
    for hop in reversed(hops):
        address = _address(hop)
        if address is None:
            break
        client = str(address)
        if not _trusted(address, networks):
            break
    return client


def _headers(scope: dict[str, Any], name: bytes) -> list[str]:
    return [value.decode("latin-1") for key, value in scope.get("headers", []) if key == name]


class TrustedProxyMiddleware:
    """ASGI middleware: see the module's docstring. Reads ``TRUSTED_PROXIES`` on every
    connection, so tests may change it."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        trusted = tuple(settings.TRUSTED_PROXIES)
        client = scope.get("client")
        if trusted and client and scope["type"] in _SCHEMES:
            scope = self._resolved(scope, client[0], trusted)
        return await self.app(scope, receive, send)

    def _resolved(self, scope: dict[str, Any], peer: str, trusted: tuple[str, ...]) -> dict:
        if not _trusted(_address(peer), _networks(trusted)):
            return scope
        address = forwarded_client(peer, _headers(scope, b"x-forwarded-for"), trusted)
        scope = {**scope, "client": (address, 0)}
        protos = [
            p.strip().lower() for h in _headers(scope, b"x-forwarded-proto") for p in h.split(",")
        ]
        scheme = _SCHEMES[scope["type"]].get(protos[-1]) if protos else None
        if scheme:
            scope["scheme"] = scheme
        return scope
