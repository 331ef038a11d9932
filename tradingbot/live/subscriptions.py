"""What a live connection may see: the user a token is, and the snapshot that starts each
subscription, read only after the channel has been found to be the user's.

Synchronous ORM code; the consumer calls it through ``database_sync_to_async``.
"""

from __future__ import annotations

from typing import Any

from django.http import Http404

from accounts.models import User
from accounts.services import api_token_authenticate
from backtests.events import backtest_snapshot, sweep_snapshot
from bots import selectors as bot_selectors
from bots.events import BotSnapshotData
from bots.services.events import event_data
from bots.services.ticks import order_data, position_data, trade_data
from markets import selectors as market_selectors
from markets.events import CandlesSnapshotData
from markets.models import ExchangeAccount
from markets.services import check_symbol
from tradingbot.errors import AppError
from tradingbot.live.protocol import Channel, Event, ProtocolError

SNAPSHOT_CANDLES = 200
SNAPSHOT_RECENT = 20


def token_holder(key: str) -> tuple[User, int] | None:
    """The user and token id that API token ``key`` is, or None."""
    found = api_token_authenticate(key=key)
    return None if found is None else (found[0], found[1].pk)


def subscription_snapshot(*, user: User, channel: Channel) -> Event:
    """The snapshot that starts a subscription to ``channel``.

    Raises ``ProtocolError`` ``not_found`` for an object that is not the user's (whether it
    exists or not, as the API's 404) and ``unknown_symbol`` for a market the exchange lacks.
    """
    try:
        data, object_id = _snapshot_of(user, channel)
    except Http404:
        raise ProtocolError(
            "not_found", f"no {channel.kind} {channel.object_id} of yours", channel=channel.name
        ) from None
    event: Event = {"type": f"{channel.kind}.snapshot", "channel": channel.name, "data": data}
    if object_id is not None:
        event["id"] = object_id
    return event


def _snapshot_of(user: User, channel: Channel) -> tuple[Any, int | None]:
    pk = channel.object_id
    if channel.kind == "bot":
        assert pk is not None
        return bot_snapshot(user=user, pk=pk), pk
    if channel.kind == "backtest":
        assert pk is not None
        return backtest_snapshot(user=user, pk=pk), pk
    if channel.kind == "sweep":
        assert pk is not None
        return sweep_snapshot(user=user, pk=pk), pk
    return candles_snapshot(channel), None


def bot_snapshot(*, user: User, pk: int) -> BotSnapshotData:
    bot = bot_selectors.bot_get(user=user, pk=pk)
    position = bot_selectors.bot_position(bot)
    open_orders = bot_selectors.bot_order_list(bot=bot, status="open")
    trades = bot_selectors.bot_trade_list(bot=bot)[:SNAPSHOT_RECENT]
    events = bot_selectors.bot_event_list(bot=bot)[:SNAPSHOT_RECENT]
    return {
        "status": bot.status,
        "last_error": bot.last_error,
        "symbol": bot.symbol,
        "timeframe": bot.timeframe,
        "last_candle_ms": bot.last_candle_ms,
        "position": None if position is None else position_data(position),
        "open_orders": [order_data(order) for order in open_orders],
        "recent_trades": [trade_data(trade) for trade in reversed(trades)],
        "recent_events": [event_data(event) for event in reversed(events)],
    }


def candles_snapshot(channel: Channel) -> CandlesSnapshotData:
    """Any user may watch any market the exchange lists: candles are public."""
    if channel.exchange not in ExchangeAccount.Exchange.values:
        raise ProtocolError(
            "unknown_symbol", f"unknown exchange {channel.exchange!r}", channel=channel.name
        )
    try:
        check_symbol(exchange=channel.exchange, symbol=channel.symbol)
    except AppError as exc:
        raise ProtocolError(exc.code, exc.message, channel=channel.name) from None
    candles = market_selectors.candles_recent(
        exchange=channel.exchange,
        symbol=channel.symbol,
        timeframe=channel.timeframe,
        limit=SNAPSHOT_CANDLES,
    )
    return {
        "exchange": channel.exchange,
        "symbol": channel.symbol,
        "timeframe": channel.timeframe,
        "candles": candles,
    }
