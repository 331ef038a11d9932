"""What the apps offer on the live connection: their kinds of channel, the snapshot that starts a
subscription to one, and who an API token is.

The ground floor knows no app: each app registers its kinds in its ``AppConfig.ready()``
(``bots`` registers ``bot``, ``backtests`` ``backtest`` and ``sweep``, ``markets`` ``candles``,
``accounts`` the token check). Two shapes of channel exist:

- an **object** channel, ``<kind>:<id>``, is one object of its owner's; its snapshot is read
  for the connection's user, and raises ``Http404`` for an object that is not theirs;
- a **market** channel, ``<kind>:<exchange>:<symbol>:<timeframe>``, is public; its snapshot
  raises ``AppError`` for a market the exchange does not list.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

# Builders are called with keywords: ``snapshot(user=..., pk=...)`` for an object,
# ``snapshot(exchange=..., symbol=..., timeframe=...)`` for a market.
ObjectSnapshot = Callable[..., Mapping[str, Any]]
MarketSnapshot = Callable[..., Mapping[str, Any]]
TokenCheck = Callable[[str], "tuple[Any, int] | None"]  # key -> (user, token id)


@dataclass(frozen=True)
class ObjectKind:
    name: str
    snapshot: ObjectSnapshot


@dataclass(frozen=True)
class MarketKind:
    name: str
    timeframes: Collection[str]
    snapshot: MarketSnapshot


_kinds: dict[str, ObjectKind | MarketKind] = {}
_token_check: list[TokenCheck] = []


def register_object_channel(kind: str, *, snapshot: ObjectSnapshot) -> None:
    _kinds[kind] = ObjectKind(kind, snapshot)


def register_market_channel(
    kind: str, *, timeframes: Collection[str], snapshot: MarketSnapshot
) -> None:
    _kinds[kind] = MarketKind(kind, tuple(timeframes), snapshot)


def register_token_check(check: TokenCheck) -> None:
    """How an API token is checked: ``check(key)`` is its ``(user, token id)``, or None."""
    _token_check[:] = [check]


def kind_of(name: str) -> ObjectKind | MarketKind | None:
    return _kinds.get(name)


def channel_forms() -> list[str]:
    """Every channel a client may name, object kinds first (for error messages)."""
    objects = [f"{k.name}:<id>" for k in _kinds.values() if isinstance(k, ObjectKind)]
    markets = [
        f"{k.name}:<exchange>:<symbol>:<timeframe>"
        for k in _kinds.values()
        if isinstance(k, MarketKind)
    ]
    return objects + markets


def token_holder(key: str) -> tuple[Any, int] | None:
    """The user and token id that API token ``key`` is, or None (also with no check known)."""
    return _token_check[0](key) if _token_check else None
