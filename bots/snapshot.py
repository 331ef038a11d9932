"""The snapshot that starts a subscription to ``bot:<id>``."""

from __future__ import annotations

from accounts.models import User
from bots import selectors
from bots.events import BotSnapshotData
from bots.services.events import event_data
from bots.services.ticks import order_data, position_data, trade_data

SNAPSHOT_RECENT = 20


def bot_snapshot(user: User, pk: int) -> BotSnapshotData:
    """What a subscriber needs to be current; ``Http404`` for a bot not the user's."""
    bot = selectors.bot_get(user=user, pk=pk)
    position = selectors.bot_position(bot)
    open_orders = selectors.bot_order_list(bot=bot, status="open")
    trades = selectors.bot_trade_list(bot=bot)[:SNAPSHOT_RECENT]
    events = selectors.bot_event_list(bot=bot)[:SNAPSHOT_RECENT]
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
