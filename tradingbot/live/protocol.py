"""The live-updates protocol (``/ws/``): what a client may send, what it gets back, and limits.

Pure code: parsing a client's text frame, naming channels and their groups, and counting bad
messages. The consumer does the talking; ``docs/websocket.md`` documents every message.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, NotRequired, TypedDict

from tradingbot.events import market_channel, market_group, object_group
from tradingbot.live import channels

# Daphne (autobahn) lets an application close only with 1000 or 3000-4999.
CLOSE_UNAUTHENTICATED = 4401
CLOSE_TOO_MANY_BAD_MESSAGES = 4008
CLOSE_MESSAGE_TOO_BIG = 4009
CLOSE_UNAVAILABLE = 4503  # the channel layer (Redis) cannot be reached
# Closes the server's WebSocket protocol makes by itself, before the consumer sees the message
# (tradingbot.live.daphne_server), and the reason the connection's log line gives for each.
PROTOCOL_CLOSE_REASONS = {
    1002: "protocol_error",  # a malformed frame
    1007: "invalid_utf8",  # a text frame that is not UTF-8
    1009: "message_too_big",  # over --websocket-max-message-size (or -frame-size)
}

AUTH_TIMEOUT_SECONDS = 5.0
MAX_TEXT_BYTES = 64 * 1024
BAD_MESSAGES_PER_MINUTE = 20
MAX_SUBSCRIPTIONS = 100


# --- client to server --------------------------------------------------------------------------


@dataclass(frozen=True)
class Ping:
    pass


@dataclass(frozen=True)
class Auth:
    token: str


@dataclass(frozen=True)
class Subscribe:
    channel: Channel


@dataclass(frozen=True)
class Unsubscribe:
    channel: Channel


ClientMessage = Ping | Auth | Subscribe | Unsubscribe


class ProtocolError(ValueError):
    """A message the server cannot act on; ``code`` goes back to the client."""

    def __init__(self, code: str, message: str, *, channel: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.channel = channel


@dataclass(frozen=True)
class Channel:
    """An object's channel, ``<kind>:<id>`` (``bot:7``), or a market's,
    ``<kind>:<exchange>:<symbol>:<timeframe>`` (``candles:bitget:BTC/USDT:5m``): the kinds are
    the ones the apps registered (``tradingbot.live.channels``)."""

    kind: str
    object_id: int | None = None
    exchange: str = ""
    symbol: str = ""
    timeframe: str = ""

    @property
    def name(self) -> str:
        if self.object_id is None:
            return market_channel(self.kind, self.exchange, self.symbol, self.timeframe)
        return f"{self.kind}:{self.object_id}"

    @property
    def group(self) -> str:
        """The channel-layer group its events are sent to."""
        if self.object_id is None:
            return market_group(self.kind, self.exchange, self.symbol, self.timeframe)
        return object_group(self.kind, self.object_id)


def channel_parse(text: Any) -> Channel:
    if not isinstance(text, str) or not text or len(text) > 200:
        raise ProtocolError("invalid_channel", "channel must be a non-empty string")
    name, _, rest = text.partition(":")
    kind = channels.kind_of(name)
    if isinstance(kind, channels.ObjectKind):
        if not rest.isdigit() or len(rest) > 18:
            raise ProtocolError("invalid_channel", f"use {name}:<id>", channel=text)
        return Channel(name, object_id=int(rest))
    if isinstance(kind, channels.MarketKind):
        return _market_channel_parse(kind, rest, text)
    raise ProtocolError(
        "invalid_channel", f"channel must be {_one_of(channels.channel_forms())}", channel=text
    )


def _market_channel_parse(kind: channels.MarketKind, rest: str, text: str) -> Channel:
    exchange, _, market = rest.partition(":")
    symbol, _, timeframe = market.rpartition(":")
    if not exchange or not symbol:
        raise ProtocolError(
            "invalid_channel", f"use {kind.name}:<exchange>:<symbol>:<timeframe>", channel=text
        )
    if timeframe not in kind.timeframes:
        raise ProtocolError(
            "invalid_channel",
            f"unknown timeframe {timeframe!r}; use one of {', '.join(kind.timeframes)}",
            channel=text,
        )
    return Channel(kind.name, exchange=exchange, symbol=symbol, timeframe=timeframe)


def _one_of(forms: list[str]) -> str:
    return forms[0] if len(forms) == 1 else f"{', '.join(forms[:-1])} or {forms[-1]}"


def message_parse(text: str) -> ClientMessage:
    """Read one text frame. A bare ``ping`` and the legacy ``{"action": "ping"}`` are pings."""
    if text.strip().lower() == "ping":
        return Ping()
    try:
        message = json.loads(text)
    except ValueError:
        raise ProtocolError("invalid_message", "not JSON; see docs/websocket.md") from None
    if not isinstance(message, dict):
        raise ProtocolError("invalid_message", 'a message is a JSON object with a "type"')
    kind = message.get("type")
    if kind is None and message.get("action") == "ping":
        return Ping()
    if kind == "ping":
        return Ping()
    if kind == "auth":
        token = message.get("token")
        if not isinstance(token, str) or not token:
            raise ProtocolError("invalid_message", 'auth needs a "token" string')
        return Auth(token)
    if kind in ("subscribe", "unsubscribe"):
        channel = channel_parse(message.get("channel"))
        return Subscribe(channel) if kind == "subscribe" else Unsubscribe(channel)
    raise ProtocolError("invalid_message", "type must be one of ping, auth, subscribe, unsubscribe")


class BadMessageCounter:
    """Bad messages within the last minute; more than the limit closes the connection."""

    def __init__(
        self,
        limit: int = BAD_MESSAGES_PER_MINUTE,
        window_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window = window_seconds
        self.clock = clock
        self._times: deque[float] = deque()
        self.total = 0

    def add(self) -> bool:
        """Count one; True when the limit is now exceeded."""
        now = self.clock()
        self._times.append(now)
        self.total += 1
        while self._times and self._times[0] <= now - self.window:
            self._times.popleft()
        return len(self._times) > self.limit


# --- server to client --------------------------------------------------------------------------


class Pong(TypedDict):
    type: Literal["pong"]


class AuthOk(TypedDict):
    type: Literal["auth.ok"]
    user: int


class Unsubscribed(TypedDict):
    type: Literal["unsubscribed"]
    channel: str


class Error(TypedDict):
    type: Literal["error"]
    code: str
    message: str
    channel: NotRequired[str]


class Event(TypedDict):
    """An update, or a snapshot that starts a subscription: ``data`` is the app's payload."""

    type: str  # "<app>.<event>", e.g. "bot.status", "candles.closed", "bot.snapshot"
    channel: str
    id: NotRequired[int]
    data: dict[str, Any]


def pong() -> Pong:
    return {"type": "pong"}


def error(code: str, message: str, *, channel: str | None = None) -> Error:
    body: Error = {"type": "error", "code": code, "message": message}
    if channel is not None:
        body["channel"] = channel
    return body


def admits(
    event: dict[str, Any], *, group: str, user_id: int, own_group: str, subscribed: set[str]
) -> bool:
    """Whether an event that reached a connection through ``group`` goes on to its client.

    Checked on every event, so that no path can hand one user another's data: an object's event
    carries its owner, and a public market's (candles) carries none and goes to subscribers only.
    An object's event reaches the owner's group and the object's; a subscriber takes it from the
    object's group and everyone else from the user's, so that it arrives once.
    """
    channel = event.get("channel")
    owner = event.get("owner")
    if owner is None:
        return channel in subscribed
    if owner != user_id:
        return False
    if group == own_group:
        return channel not in subscribed
    return channel in subscribed


def client_view(event: dict[str, Any]) -> dict[str, Any]:
    """The event as the client sees it: without the owner the server checks."""
    return {key: event[key] for key in ("type", "channel", "id", "data") if key in event}
