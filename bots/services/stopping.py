"""Stopping a bot inside its tick: its open orders cancelled, its position closed when the stop
asks for it, the bot marked ``stopped``; and the daily loss limit, which stops a bot itself.

A stop (``bot_stop``, the kill switch) only moves the bot to ``stopping``; the tick that holds
the bot carries the stop out here, so that a stop never races a tick over the bot's orders.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from django.db.models import Sum

from bots.decisions import minimum_problem, round_down
from bots.models import Bot, BotEvent, Order, Position
from bots.order_ids import stop_order_id
from bots.services.books import position_of
from bots.services.events import BotUpdates, bot_event, bot_set_status
from bots.services.markets import BotMarket, ticker_price
from bots.services.orders import market_order, order_send, orders_cancel_open, orders_reconcile


def stop_finish(bot: Bot, market: BotMarket, updates: BotUpdates) -> int:
    """Cancel the bot's open orders, close the position when the stop asks for it, and mark
    the bot stopped; the number of orders placed (the closing one)."""
    orders_reconcile(bot, market, updates)
    orders_cancel_open(bot, market, updates)
    bot.refresh_from_db(fields=["stop_flatten", "status"])
    placed = 0
    if bot.stop_flatten:
        placed = _flatten(bot, market, updates)
    bot_set_status(bot, Bot.Status.STOPPED, expected=(Bot.Status.STOPPING,), updates=updates)
    flattened = " and closed the position" if placed else ""
    bot_event(bot, "stopped", f"Stopped: open orders cancelled{flattened}.", updates=updates)
    return placed


def _flatten(bot: Bot, market: BotMarket, updates: BotUpdates) -> int:
    """Sell the whole position at market; 0 when there is none, or only dust."""
    position = position_of(bot)
    if position.qty <= 0:
        return 0
    rules = market.exchange.market_rules(bot.symbol)
    qty = round_down(position.qty, rules.amount_step)
    bid = ticker_price(market.exchange.fetch_ticker(bot.symbol), "bid")
    problem = minimum_problem(qty, bid, rules)
    if problem is not None:  # dust: no exchange would take it
        bot_event(bot, "below_minimum", f"position not closed: {problem}",
                  level=BotEvent.Level.WARNING, updates=updates)  # fmt: skip
        return 0
    cid = stop_order_id(bot.pk, bot.orders.count())
    order = market_order(bot, cid, Order.Side.SELL, qty, "stop", bot.last_candle_ms or 0)
    return 1 if order_send(market, order, updates) is not None else 0


def daily_loss_hit(bot: Bot, market: BotMarket, position: Position, updates: BotUpdates) -> bool:
    """Today's realised PnL plus the open position's unrealised PnL at or below minus the limit
    moves the bot to ``stopping`` with its position to close (the caller finishes the stop).
    "Today" is the market's UTC day."""
    if bot.daily_loss_limit is None:
        return False
    day_start = datetime.fromtimestamp(market.now_ms() / 1000, tz=UTC).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    realised = bot.trades.filter(time__gte=day_start).aggregate(total=Sum("pnl"))["total"]
    today = (realised or Decimal(0)) + position.unrealized_pnl
    if today > -bot.daily_loss_limit:
        return False
    Bot.objects.filter(pk=bot.pk).update(status=Bot.Status.STOPPING, stop_flatten=True)
    bot.status, bot.stop_flatten = Bot.Status.STOPPING, True
    bot_event(
        bot, "daily_loss_limit",
        f"Today's PnL {today.normalize():f} reached the daily loss limit of "
        f"{bot.daily_loss_limit.normalize():f}; stopping and closing the position.",
        level=BotEvent.Level.WARNING, data={"pnl_today": str(today)}, updates=updates,
    )  # fmt: skip
    return True
