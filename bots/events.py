"""Payloads of the bots' live events (``data`` of ``bot.*`` messages).

Decimals travel as strings, so that no float rounds a price or a quantity; times are epoch ms.
``docs/websocket.md`` shows an example of each.
"""

from __future__ import annotations

from typing import Any, TypedDict


class BotStatusData(TypedDict):
    """``bot.status``: the bot moved to ``status`` (running, stopping, stopped, error)."""

    status: str
    last_error: str


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


class TradeData(TypedDict):
    """``bot.trade``: a fill."""

    side: str
    qty: str | None
    price: str | None
    fee: str | None
    pnl: str | None
    time: int


class PositionData(TypedDict):
    """``bot.position``: the position after a tick (``pnl`` realised)."""

    symbol: str
    qty: str | None
    entry_price: str | None
    pnl: str | None
    unrealized_pnl: str | None
    mark_price: str | None


class BotEventData(TypedDict):
    """``bot.event``: one line of the bot's own log."""

    id: int
    time: int
    level: str
    kind: str
    message: str
    data: dict[str, Any]


class BotSnapshotData(TypedDict):
    """``bot.snapshot``: what a subscriber needs to be current, sent when it subscribes."""

    status: str
    last_error: str
    symbol: str
    timeframe: str
    last_candle_ms: int | None
    position: PositionData | None
    open_orders: list[OrderData]
    recent_trades: list[TradeData]
    recent_events: list[BotEventData]
