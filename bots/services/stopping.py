"""Stopping a bot inside its tick: its open orders cancelled, its position closed when the stop
asks for it, the bot marked ``stopped``; and the daily loss limit, which stops a bot itself.

A stop (``bot_stop``, the kill switch) only moves the bot to ``stopping``; the tick that holds
the bot carries the stop out here, so that a stop never races a tick over the bot's orders.

A stop always ends ``stopped``, also when the exchange is down: each exchange request is tried
once, with a short timeout (``BOT_STOP_EXCHANGE_TIMEOUT_SECONDS``), and after the first failure
no other is sent (each would wait as long). The orders it could not cancel stay in the books as
the exchange last had them, each marked and listed in the bot's log ("could not cancel order
X: exchange unreachable"); the next start reads them back. The ``stopped`` event says who asked.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial
from typing import Any

from django.conf import settings
from django.db.models import Sum
from django.utils import timezone

from accounts.models import User
from bots.decisions import minimum_problem, round_down
from bots.models import Bot, BotEvent, Order, Position
from bots.order_ids import stop_order_id
from bots.performance import day_start, trader_zone
from bots.services.books import position_of
from bots.services.equity import bot_equity_row
from bots.services.events import BotUpdates, bot_event, bot_set_status
from bots.services.markets import BotMarket, ticker_price
from bots.services.orders import market_order, order_cancel, order_send, orders_reconcile
from markets.exchanges.ccxt_exchange import CcxtExchange
from markets.exchanges.errors import ExchangeError

SYSTEM = "the system"


def stop_actor(bot: Bot, *, by: User | None, reason: str = "") -> str:
    """Who stops the bot, as its log says it: "the trader", "staff member <email>", or "the
    system because <reason>"."""
    if by is None:
        return f"{SYSTEM} because {reason}" if reason else SYSTEM
    if by.pk == bot.user_id:
        return "the trader"
    return f"staff member {by.email}"


def stop_finish(bot: Bot, market: BotMarket, updates: BotUpdates) -> int:
    """Cancel the bot's open orders, close the position when the stop asks for it, and mark
    the bot stopped, whatever the exchange answers; the number of orders placed (the closing
    one)."""
    if isinstance(market.exchange, CcxtExchange):
        market.exchange.set_timeout(settings.BOT_STOP_EXCHANGE_TIMEOUT_SECONDS)
    problem = _attempt(partial(orders_reconcile, bot, market, updates))
    for cid in _open_ids(bot, Order.Status.OPEN) if problem is None else ():
        problem = _attempt(partial(order_cancel, bot, market, cid, updates))
        if problem is not None:
            break
    bot.refresh_from_db(fields=["stop_flatten", "status", "stop_requested_by"])
    placed = 0
    if bot.stop_flatten and problem is None:
        closing: list[int] = []
        problem = _attempt(lambda: closing.append(_flatten(bot, market, updates)))
        placed = sum(closing)
    if placed and bot.last_candle_ms is not None:
        # The close realised the position: the curve's last point says so (same candle, newer).
        bot_equity_row(bot, position_of(bot), bot.last_candle_ms).save()
    if bot.stop_flatten and problem is None:
        # A stop that closes the position forgets the last signal: a signals bot started again
        # stays flat until a new one (it does not buy straight back in).
        Bot.objects.filter(pk=bot.pk).update(signal_target=None)
    uncancelled = _uncancelled(bot, problem, updates)
    bot_set_status(
        bot, Bot.Status.STOPPED, expected=(Bot.Status.STOPPING,), updates=updates,
        degraded_since=None, degraded_reason="", error_streak=0,
    )  # fmt: skip
    bot_event(bot, **_stopped_event(bot, placed, problem, uncancelled), updates=updates)
    return placed


def _attempt(call: Callable[[], Any]) -> str | None:
    """Run one step of a stop: None when it went through, else what went wrong."""
    try:
        call()
    except ExchangeError as error:
        return "exchange unreachable" if error.transient else str(error.message)
    return None


def _open_ids(bot: Bot, *statuses: str) -> list[str]:
    return list(
        bot.orders.filter(status__in=statuses)
        .order_by("id")
        .values_list("client_order_id", flat=True)
    )


def _uncancelled(bot: Bot, problem: str | None, updates: BotUpdates) -> list[str]:
    """The orders still open (or of unknown fate) after the stop, each marked and logged."""
    cids = _open_ids(bot, *Order.OPEN_STATUSES)
    why = problem or "the exchange still reports it open"
    for cid in cids:
        Order.objects.filter(bot=bot, client_order_id=cid).update(
            error=f"could not cancel: {why}", updated_at=timezone.now()
        )
        bot_event(bot, "cancel_failed", f"could not cancel order {cid}: {why}",
                  level=BotEvent.Level.WARNING, data={"client_order_id": cid, "reason": why},
                  updates=updates)  # fmt: skip
    return cids


def _stopped_event(
    bot: Bot, placed: int, problem: str | None, uncancelled: list[str]
) -> dict[str, Any]:
    actor = bot.stop_requested_by or SYSTEM
    data: dict[str, Any] = {"by": actor, "uncancelled": uncancelled}
    if problem is None and not uncancelled:
        flattened = " and closed the position" if placed else ""
        message = f"Stopped by {actor}: open orders cancelled{flattened}."
        return {"kind": "stopped", "message": message, "data": data}
    why = problem or "still open on the exchange"
    left = [f"could not cancel {len(uncancelled)} order(s)"] if uncancelled else []
    kept = bot.stop_flatten and not placed and position_of(bot).qty > 0
    left += ["position not closed"] if kept else []
    if left:
        message = f"Stopped by {actor}; {' and '.join(left)}: {why}."
    else:
        message = f"Stopped by {actor}; the exchange could not be asked about open orders: {why}."
    return {"kind": "stopped", "message": message, "data": data,
            "level": BotEvent.Level.WARNING}  # fmt: skip


def _flatten(bot: Bot, market: BotMarket, updates: BotUpdates) -> int:
    """Close the whole position at market (sell; a perp's short: buy); 0 when there is none,
    or only dust."""
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
    # A perp's short is closed by a buy; a perp's close is reduce-only.
    side = Order.Side.BUY if bot.is_perp and position.side == "short" else Order.Side.SELL
    order = market_order(bot, cid, side, qty, "stop", bot.last_candle_ms or 0)
    sent = order_send(market, order, updates, reduce_only=bot.is_perp)
    return 1 if sent is not None else 0


def daily_loss_hit(bot: Bot, market: BotMarket, position: Position, updates: BotUpdates) -> bool:
    """Today's realised PnL plus the open position's unrealised PnL at or below minus the limit
    moves the bot to ``stopping`` with its position to close (the caller finishes the stop).
    "Today" is the trader's day (their time zone) on the market's clock: the day the
    dashboard's "realised today" counts (``bots.performance``)."""
    if bot.daily_loss_limit is None:
        return False
    now = datetime.fromtimestamp(market.now_ms() / 1000, tz=UTC)
    since = day_start(now, trader_zone(bot.user))
    realised = bot.trades.filter(time__gte=since).aggregate(total=Sum("pnl"))["total"]
    today = (realised or Decimal(0)) + position.unrealized_pnl
    if today > -bot.daily_loss_limit:
        return False
    actor = f"{SYSTEM} because the daily loss limit was reached"
    Bot.objects.filter(pk=bot.pk).update(
        status=Bot.Status.STOPPING, stop_flatten=True, stop_requested_by=actor
    )
    bot.status, bot.stop_flatten, bot.stop_requested_by = Bot.Status.STOPPING, True, actor
    bot_event(
        bot, "daily_loss_limit",
        f"Today's PnL {today.normalize():f} reached the daily loss limit of "
        f"{bot.daily_loss_limit.normalize():f}; stopping and closing the position.",
        level=BotEvent.Level.WARNING, data={"pnl_today": str(today)}, updates=updates,
    )  # fmt: skip
    return True
