"""Payloads of the bots' live events (``data`` of ``bot.*`` messages), and their builders.

Decimals travel as strings, so that no float rounds a price or a quantity; times are epoch ms.
``docs/websocket.md`` shows an example of each.

Each builder sits below the ``TypedDict`` it fills. This module reads (selectors) but writes
nothing, and imports no service: the app's ``ready()`` may import it.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypedDict

from bots import selectors
from markets.events import CandleData, candle_data
from markets.selectors import PRICE_FIELDS

if TYPE_CHECKING:
    import pandas as pd

    from accounts.models import User
    from bots.models import Bot, BotEvent, Order, Position, Trade

SNAPSHOT_RECENT = 20  # trades and events a snapshot carries


def decimal_text(value: Decimal | None) -> str | None:
    """A Decimal as it travels: its plain digits, without exponent or trailing zeros."""
    return None if value is None else f"{value.normalize():f}"


def _epoch_ms(moment: Any) -> int:
    return int(moment.timestamp() * 1000)


class BotStatusData(TypedDict):
    """``bot.status``: the bot moved to ``status`` (running, stopping, stopped, error), or its
    health changed: ``state`` is what to show (``degraded`` for a running bot whose exchange
    keeps failing, else the status), ``health`` ``ok`` or ``degraded`` with ``health_reason``
    (the last failure)."""

    status: str
    state: str
    health: str
    health_reason: str
    last_error: str


def status_data(bot: Bot) -> BotStatusData:
    return {
        "status": bot.status, "state": bot.state, "health": bot.health,
        "health_reason": bot.degraded_reason if bot.is_degraded else "",
        "last_error": bot.last_error,
    }  # fmt: skip


class BotTickData(TypedDict):
    """``bot.tick``: a tick ran (``last_tick_at``, epoch ms), the bot is due again at
    ``next_tick_at`` (epoch ms), and the newest candle it has acted on opened at
    ``last_candle_ms`` (null before its first)."""

    last_tick_at: int
    next_tick_at: int | None
    last_candle_ms: int | None


def tick_data(
    *, last_tick_at: datetime, next_tick_at: datetime | None, last_candle_ms: int | None
) -> BotTickData:
    return {
        "last_tick_at": _epoch_ms(last_tick_at),
        "next_tick_at": None if next_tick_at is None else _epoch_ms(next_tick_at),
        "last_candle_ms": last_candle_ms,
    }


class OrderData(TypedDict):
    """``bot.order``: an order was placed, adopted, filled, cancelled or rejected."""

    client_order_id: str
    side: str
    order_type: str
    price: str | None
    qty: str | None
    filled_qty: str | None
    average_price: str | None
    status: str
    reason: str


def order_data(order: Order) -> OrderData:
    return {
        "client_order_id": order.client_order_id, "side": order.side,
        "order_type": order.order_type, "price": decimal_text(order.price),
        "qty": decimal_text(order.qty), "filled_qty": decimal_text(order.filled_qty),
        "average_price": decimal_text(order.average_price), "status": order.status,
        "reason": order.reason,
    }  # fmt: skip


class TradeData(TypedDict):
    """``bot.trade``: a fill."""

    side: str
    qty: str | None
    price: str | None
    fee: str | None
    pnl: str | None
    time: int


def trade_data(trade: Trade) -> TradeData:
    return {
        "side": trade.side, "qty": decimal_text(trade.qty), "price": decimal_text(trade.price),
        "fee": decimal_text(trade.fee), "pnl": decimal_text(trade.pnl),
        "time": _epoch_ms(trade.time),
    }  # fmt: skip


class PositionData(TypedDict):
    """``bot.position``: the position after a tick (``pnl`` realised)."""

    symbol: str
    side: str
    qty: str | None
    entry_price: str | None
    pnl: str | None
    unrealized_pnl: str | None
    mark_price: str | None
    leverage: int
    margin: str | None
    liquidation_price: str | None
    funding: str | None


def position_data(position: Position) -> PositionData:
    return {
        "symbol": position.symbol, "side": position.side, "qty": decimal_text(position.qty),
        "entry_price": decimal_text(position.entry_price), "pnl": decimal_text(position.pnl),
        "unrealized_pnl": decimal_text(position.unrealized_pnl),
        "mark_price": decimal_text(position.mark_price), "leverage": position.leverage,
        "margin": decimal_text(position.margin),
        "liquidation_price": decimal_text(position.liquidation_price),
        "funding": decimal_text(position.funding),
    }  # fmt: skip


class BotEventData(TypedDict):
    """``bot.event``: one line of the bot's own log."""

    id: int
    time: int
    level: str
    kind: str
    message: str
    data: dict[str, Any]


def event_data(event: BotEvent) -> BotEventData:
    return {
        "id": event.pk, "time": _epoch_ms(event.time), "level": event.level,
        "kind": event.kind, "message": event.message, "data": event.data,
    }  # fmt: skip


def bot_candle_data(bot: Bot, candles: pd.DataFrame) -> CandleData:
    """``bot.candle``: the newest candle of ``candles`` (a frame of closed candles, oldest
    first), the one the tick acted on. The payload is the markets' ``CandleData``."""
    newest = candles.iloc[-1]
    return candle_data(
        exchange=bot.exchange_account.exchange,
        symbol=bot.symbol,
        timeframe=bot.timeframe,
        candle=[int(newest["open_time"]), *(float(newest[k]) for k in PRICE_FIELDS)],
    )


class BotSnapshotData(TypedDict):
    """``bot.snapshot``: what a subscriber needs to be current, sent when it subscribes
    (``state``, ``health`` and ``health_reason`` as in ``bot.status``)."""

    status: str
    state: str
    health: str
    health_reason: str
    last_error: str
    symbol: str
    timeframe: str
    last_candle_ms: int | None
    last_tick_at: int | None
    next_tick_at: int | None
    position: PositionData | None
    open_orders: list[OrderData]
    recent_trades: list[TradeData]
    recent_events: list[BotEventData]


def _next_tick_ms(bot: Bot) -> int | None:
    """When the bot is due next; null when it is not running."""
    if not bot.is_active or bot.next_tick_at is None:
        return None
    return _epoch_ms(bot.next_tick_at)


def bot_snapshot(*, user: User, pk: int) -> BotSnapshotData:
    """The snapshot of the user's bot ``pk`` (404 when it is not the user's): recent trades and
    events oldest first, as the live events that follow it will add them."""
    bot = selectors.bot_get(user=user, pk=pk)
    position = selectors.bot_position(bot)
    open_orders = selectors.bot_order_list(bot=bot, status="open")
    trades = selectors.bot_trade_list(bot=bot)[:SNAPSHOT_RECENT]
    events = selectors.bot_event_list(bot=bot)[:SNAPSHOT_RECENT]
    return {
        **status_data(bot),
        "symbol": bot.symbol,
        "timeframe": bot.timeframe,
        "last_candle_ms": bot.last_candle_ms,
        "last_tick_at": None if bot.last_tick_at is None else _epoch_ms(bot.last_tick_at),
        "next_tick_at": _next_tick_ms(bot),
        "position": None if position is None else position_data(position),
        "open_orders": [order_data(order) for order in open_orders],
        "recent_trades": [trade_data(trade) for trade in reversed(trades)],
        "recent_events": [event_data(event) for event in reversed(events)],
    }
