"""Close position now: the trader closes a bot's open position at market, whatever the bot's
status (spot or perp, paper or live).

The close goes through the tick's crash-safe order pipeline (``orders``): the order is written
``pending`` under a client order id of its own (``order_ids.close_order_id``) before it is sent,
and the exchange's answer is booked as any fill is. So that it never races a tick over the
bot's orders, it holds the bot's tick lease while it works (``lease.lease_claim_for_close``);
while a tick holds the bot it waits a moment for it, then answers 409 ``bot_busy``.

In order: the orders the books still hold as pending or open are read back (a trigger that
filled meanwhile may have closed the position already), the quantity is checked against the
market's minimums (dust is refused before anything is cancelled), the open orders (the
position's stop-loss / take-profit triggers) are cancelled, then one market order closes the
whole position (a sell; a perp short's: a buy; a perp's is reduce-only).

Afterwards a running bot keeps running, and stays flat until its strategy gives a NEW signal,
as after a stop-loss (``Bot.risk_exit_target``): it does not buy straight back into the signal
it was holding. A stopped bot stays stopped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from accounts.models import User
from bots.decisions import minimum_problem, round_down
from bots.models import Bot, Order, Position
from bots.order_ids import close_order_id
from bots.services.books import position_of
from bots.services.events import BotUpdates, bot_event
from bots.services.lease import lease_claim_for_close, lease_release
from bots.services.markets import BotMarket, ticker_price
from bots.services.orders import market_order, order_cancel, order_send, orders_reconcile
from tradingbot.errors import AppError
from tradingbot.logconfig import context

logger = logging.getLogger("bots.bot")

CLAIM_TRIES, CLAIM_PAUSE_SECONDS = 30, 0.1  # a tick in progress: wait up to 3 s for it
REASON = "close"  # the closing order's reason, as the books and the API show it


def bot_close_position(*, bot: Bot, by: User, clock: Callable[[], float] = time.time) -> Order:
    """Close the bot's open position at market (see the module docstring); the closing order,
    as booked (``closed`` once the exchange filled it).

    409 ``no_position`` when the bot holds nothing, ``below_minimum`` when what it holds is too
    small for the exchange to take, ``bot_busy`` when a tick holds the bot; 409
    ``order_rejected`` when the exchange refuses the order (the bot's log says why); the
    exchange's own errors (unreachable: 503) as they come.
    """
    _require_position(position_of(bot))
    token = _claim(bot)
    updates = BotUpdates()
    try:
        bot.refresh_from_db()
        order = _close(bot, BotMarket.of(bot, clock=clock), by, updates)
    finally:
        lease_release(bot.pk, token)
        updates.publish()
    return order


def _require_position(position: Position) -> None:
    if position.qty <= 0:
        raise AppError("no_position", "The bot has no open position to close.", 409)


def _claim(bot: Bot) -> str:
    for attempt in range(CLAIM_TRIES):
        token = lease_claim_for_close(bot.pk)
        if token is not None:
            return token
        if attempt < CLAIM_TRIES - 1:
            time.sleep(CLAIM_PAUSE_SECONDS)
    raise AppError("bot_busy", "The bot is in the middle of a tick; try again in a moment.", 409)


def _close(bot: Bot, market: BotMarket, by: User, updates: BotUpdates) -> Order:
    orders_reconcile(bot, market, updates)
    position = position_of(bot)
    _require_position(position)  # a trigger that filled meanwhile closed it
    side = Order.Side.BUY if bot.is_perp and position.side == "short" else Order.Side.SELL
    rules = market.exchange.market_rules(bot.symbol)
    qty = round_down(position.qty, rules.amount_step)
    ticker = market.exchange.fetch_ticker(bot.symbol)
    price = ticker_price(ticker, "ask" if side == Order.Side.BUY else "bid")
    problem = minimum_problem(qty, price, rules)
    if problem is not None:
        raise AppError("below_minimum", f"The position is too small to close: {problem}.", 409)
    resting = bot.orders.filter(status=Order.Status.OPEN).values_list("client_order_id", flat=True)
    for cid in resting:  # its stop-loss / take-profit: they would reserve what is sold
        order_cancel(bot, market, cid, updates)
    order = market_order(
        bot, close_order_id(bot.pk, bot.orders.count()), side, qty, REASON, bot.last_candle_ms or 0
    )
    if order_send(market, order, updates, reduce_only=bot.is_perp) is None:
        refused = Order.objects.filter(client_order_id=order.client_order_id).first()
        why = refused.error if refused is not None and refused.error else "the exchange refused it"
        raise AppError("order_rejected", f"The position was not closed: {why}.", 409)
    order.refresh_from_db()
    _after_close(bot, position, order, by, updates)
    return order


def _after_close(bot: Bot, before: Position, order: Order, by: User, updates: BotUpdates) -> None:
    """No re-entry on the signal that was held (as after a stop-loss); the bot's log and one
    log line."""
    held_for = -1 if before.side == Position.Side.SHORT else 1
    Bot.objects.filter(pk=bot.pk).update(risk_exit_target=held_for)
    bot.risk_exit_target = held_for
    actor = "the trader" if by.pk == bot.user_id else f"staff member {by.email}"
    at = f" at {order.average_price.normalize():f}" if order.average_price is not None else ""
    filled = "closed" if order.status == Order.Status.CLOSED else "sent to close"
    then = (
        "the bot keeps running and enters again on a new signal"
        if bot.is_active
        else f"the bot stays {bot.status}"
    )
    bot_event(
        bot, "position_closed",
        f"Position {filled} at market by {actor}: {order.side} {order.qty.normalize():f}"
        f"{at}; {then}.",
        data={"client_order_id": order.client_order_id, "by": actor}, updates=updates,
    )  # fmt: skip
    logger.info(
        "bot.position_closed",
        extra=context(
            bot_id=bot.pk, symbol=bot.symbol, action=order.side,
            client_order_id=order.client_order_id, order_status=order.status,
            qty=str(order.qty), price=str(order.average_price or ""),
        ),
    )  # fmt: skip
