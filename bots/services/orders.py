"""A tick's orders: sending, cancelling, reading back, reconciling with the exchange, adopting.

An order, a market order or a protective trigger order (stop-loss / take-profit, resting on the
exchange; ``Order.is_trigger``, read and cancelled as one), is written ``pending`` under its
deterministic client order id (``bots.order_ids``) BEFORE it is sent, so a second tick on the
same candle finds the decision taken, and a crash after sending is repaired by the next tick's
reconcile (which reads every order the books hold as pending or open back by that id) instead
of sending again. An answer that holds only the
order's ids (Bitget's) is read back at once, so a fill or a cancel is booked in the tick that
made it. Funds and minimums refuse an order: it is booked ``rejected`` and recorded as an event.

Every answer of the exchange is booked by ``books.order_apply_result``. Each booked order gets a
log line (``bot.order``) and is recorded in the tick's ``BotUpdates`` with its fills and, when
it filled, the position they moved.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any, cast

from django.db import IntegrityError, transaction

from bots.decisions import Decision, Place, Trigger
from bots.models import Bot, BotEvent, Order, Trade
from bots.order_ids import client_order_id, is_bot_order, open_order_id, trigger_order_id
from bots.services import notices
from bots.services.books import order_apply_result, position_of
from bots.services.events import BotUpdates, bot_event
from bots.services.markets import BotMarket
from markets.exchanges.base import PerpExchange
from markets.exchanges.errors import (
    BelowMinimumError,
    ExchangeError,
    InsufficientFundsError,
    InvalidOrderError,
    OrderNotFoundError,
)
from tradingbot import metrics
from tradingbot.logconfig import context

logger = logging.getLogger("bots.tick")

# The order type of each protective trigger (``bots.decisions.Trigger.reason``).
TRIGGER_TYPES = {"stop_loss": Order.Type.STOP_MARKET, "take_profit": Order.Type.TAKE_PROFIT_MARKET}


def orders_execute(
    bot: Bot, market: BotMarket, decision: Decision, candle_ms: int, updates: BotUpdates,
    *, stamp: str | None = None,
) -> int:  # fmt: skip
    """Cancel and place what the decision says; the number of orders placed. ``stamp``: the
    decision was taken on a signal (``order_ids.signal_stamp``), its ids carry the signal."""
    for cid in decision.cancels:
        order_cancel(bot, market, cid, updates)
    placed = triggers_place(bot, market, decision.triggers, candle_ms, updates, stamp=stamp)
    if decision.place is None:
        return placed
    return placed + place_send(bot, market, decision.place, candle_ms, updates, stamp=stamp)


def place_send(
    bot: Bot, market: BotMarket, place: Place, candle_ms: int, updates: BotUpdates,
    *, stamp: str | None = None,
) -> int:  # fmt: skip
    """Send the decision's market order under its id; 1 when it was placed. A perp bot's
    order that opens a position has an id of its own (``open_order_id``), so a flip's close and
    open on one candle are two orders, each sent once."""
    if bot.is_perp and not place.reduce_only:
        position_side = "long" if place.side == Order.Side.BUY else "short"
        cid = open_order_id(bot.pk, candle_ms, position_side, stamp=stamp)
    else:
        cid = client_order_id(bot.pk, candle_ms, place.side, stamp=stamp)
    order = market_order(bot, cid, place.side, place.qty, place.reason, candle_ms)
    return 1 if order_send(market, order, updates, reduce_only=place.reduce_only) else 0


def triggers_place(
    bot: Bot, market: BotMarket, triggers: tuple[Trigger, ...], candle_ms: int,
    updates: BotUpdates, *, stamp: str | None = None,
) -> int:  # fmt: skip
    """Place the protective trigger orders (``bots.decisions.protection``) under the ids of
    this candle (or signal: ``stamp``); the number placed."""
    placed = 0
    for trigger in triggers:
        cid = trigger_order_id(bot.pk, candle_ms, trigger.reason, stamp=stamp)
        order = Order(
            bot=bot, client_order_id=cid,
            symbol=bot.symbol, side=trigger.side, order_type=TRIGGER_TYPES[trigger.reason],
            price=trigger.price, qty=trigger.qty, reason=trigger.reason, candle_ms=candle_ms,
        )  # fmt: skip
        placed += 1 if order_send(market, order, updates) else 0
    return placed


def market_order(bot: Bot, cid: str, side: str, qty: Decimal, reason: str, candle_ms: int) -> Order:
    """A market order of the bot, not written yet (``order_send`` writes it)."""
    return Order(
        bot=bot, client_order_id=cid, symbol=bot.symbol, side=side, order_type=Order.Type.MARKET,
        qty=qty, reason=reason, candle_ms=candle_ms,
    )  # fmt: skip


def order_send(
    market: BotMarket, order: Order, updates: BotUpdates, *, reduce_only: bool = False
) -> Order | None:
    """Write the order, send it, book the answer. None when this decision was already taken
    (its client order id is in the books) or the exchange refused the order. ``reduce_only``:
    a perp order that may only close."""
    bot, cid = order.bot, order.client_order_id
    try:
        with transaction.atomic():
            order.save(force_insert=True)
    except IntegrityError:
        logger.info(
            "bot.order_duplicate",
            extra=context(bot_id=bot.pk, symbol=bot.symbol, action=order.side, client_order_id=cid),
        )
        return None
    try:
        result = _create(market, order, reduce_only=reduce_only)
    except BelowMinimumError as error:  # refused before anything was sent
        _rejected(bot, order, error, updates)
        return None
    except InvalidOrderError as error:
        # Exchanges word "this client id is taken" differently (the paper exchange says
        # duplicate_client_order_id, Bitget an invalid order): if an order under our id exists,
        # it is the one we sent before, and it is adopted instead of refused.
        placed = _placed_before(market, order)
        if placed is None:
            _rejected(bot, order, error, updates)
            return None
        result = placed
    except InsufficientFundsError as error:
        _rejected(bot, order, error, updates)
        return None
    _book_read_back(bot, market, order, result, updates)
    return order


def _create(market: BotMarket, order: Order, *, reduce_only: bool) -> dict[str, Any]:
    """Send the order: a market order (a perp's through ``create_perp_order``), or a
    protective trigger order (reduce-only)."""
    cid, symbol = order.client_order_id, order.symbol
    if order.is_trigger:
        assert order.price is not None
        return market.exchange.create_trigger_order(
            symbol, order.order_type, order.side, order.qty, order.price, reduce_only=True,
            client_order_id=cid,
        )  # fmt: skip
    if order.bot.is_perp:
        perps = cast(PerpExchange, market.exchange)
        return perps.create_perp_order(
            symbol, Order.Type.MARKET, order.side, order.qty, reduce_only=reduce_only,
            client_order_id=cid,
        )  # fmt: skip
    return market.exchange.create_order(
        symbol, Order.Type.MARKET, order.side, order.qty, client_order_id=cid
    )


def _placed_before(market: BotMarket, order: Order) -> dict[str, Any] | None:
    try:
        return market.exchange.fetch_order(
            None, order.symbol, client_order_id=order.client_order_id, trigger=order.is_trigger
        )
    except OrderNotFoundError:
        return None


def _rejected(bot: Bot, order: Order, error: ExchangeError, updates: BotUpdates) -> None:
    Order.objects.filter(pk=order.pk).update(status=Order.Status.REJECTED, error=error.message)
    count_order_outcome(Order.Status.REJECTED)
    bot_event(
        bot, error.code, f"{order.side} order refused: {error.message}",
        level=BotEvent.Level.WARNING, data={"client_order_id": order.client_order_id},
        updates=updates,
    )  # fmt: skip


def order_cancel(bot: Bot, market: BotMarket, cid: str, updates: BotUpdates) -> None:
    """Cancel the bot's order ``cid`` and book how it ended (cancelled, or filled meanwhile)."""
    order = bot.orders.get(client_order_id=cid)
    trigger = order.is_trigger
    try:
        result = market.exchange.cancel_order(order.exchange_order_id, bot.symbol, trigger=trigger)
    except (OrderNotFoundError, InvalidOrderError):
        # Filled or gone meanwhile: whatever it is now, read it back.
        result = market.exchange.fetch_order(None, bot.symbol, client_order_id=cid, trigger=trigger)
    _book_read_back(bot, market, order, result, updates)


def orders_cancel_open(bot: Bot, market: BotMarket, updates: BotUpdates) -> None:
    """Cancel every order the books hold as open on the exchange."""
    open_ids = bot.orders.filter(status=Order.Status.OPEN).values_list("client_order_id", flat=True)
    for cid in open_ids:
        order_cancel(bot, market, cid, updates)


def _read_back(bot: Bot, market: BotMarket, order: Order, result: dict[str, Any]) -> dict[str, Any]:
    """The order as the exchange now has it, when its answer held the ids only (Bitget answers
    a new or a cancelled order so): the books must not wait a candle for the fill or the cancel.
    If it cannot be read yet, the ids are kept and the next tick's reconcile reads it."""
    if result.get("status") is not None:
        return result
    order_id = str(result.get("id") or "") or None
    cid = order.client_order_id
    try:
        return market.exchange.fetch_order(
            order_id, bot.symbol, client_order_id=cid, trigger=order.is_trigger
        )
    except ExchangeError:
        return result


def _book_read_back(
    bot: Bot, market: BotMarket, order: Order, result: dict[str, Any], updates: BotUpdates
) -> None:
    """Book the order as the exchange has it after ``result`` (its answer to a send or a
    cancel), and report it."""
    result = _read_back(bot, market, order, result)
    _book(bot, order, result, updates, base=market.exchange.market_rules(bot.symbol).base)


def _book(
    bot: Bot, order: Order, result: dict[str, Any], updates: BotUpdates, *, base: str,
    adopted: bool = False,
) -> None:  # fmt: skip
    """Bring the order up to date with the exchange's ``result``, and report it."""
    trades = order_apply_result(order, result, base=base)
    order.refresh_from_db()
    _report_order(bot, order, trades, updates, adopted=adopted)


def book_result(
    bot: Bot, order: Order, result: dict[str, Any], updates: BotUpdates, *, base: str
) -> None:
    """Book what the exchange says of ``order`` (an answer, or a liquidation that the books
    write as an order of the bot), and report it."""
    _book(bot, order, result, updates, base=base)


def _report_order(
    bot: Bot, order: Order, trades: list[Trade], updates: BotUpdates, *, adopted: bool
) -> None:
    verb = "adopted" if adopted else "placed"
    logger.info(
        "bot.order",
        extra=context(
            bot_id=bot.pk,
            symbol=bot.symbol,
            action=f"{order.side}_{verb}",
            client_order_id=order.client_order_id,
            order_status=order.status,
            qty=str(order.qty),
            filled=str(order.filled_qty),
            price=str(order.average_price or ""),
        ),
    )
    count_order_outcome(order.status)
    updates.order(bot, order)
    for trade in trades:
        updates.trade(bot, trade)
    notices.trades_filled(bot, order, trades)
    if trades:  # a fill moved the position (a stop's flatten, a fill found on reconcile)
        updates.position(bot, position_of(bot))


# --- reconciling with the exchange -------------------------------------------------------------


def orders_reconcile(bot: Bot, market: BotMarket, updates: BotUpdates) -> tuple[str, ...]:
    """Adopt what the exchange holds for every order the books have as pending or open; the
    client ids of the orders still open afterwards."""
    base = market.exchange.market_rules(bot.symbol).base
    still_open = []
    for order in bot.orders.filter(status__in=Order.OPEN_STATUSES).order_by("id"):
        try:
            result = market.exchange.fetch_order(
                order.exchange_order_id or None, bot.symbol,
                client_order_id=order.client_order_id, trigger=order.is_trigger,
            )  # fmt: skip
        except OrderNotFoundError:
            _never_arrived(bot, order, updates)
            continue
        _book(bot, order, result, updates, base=base, adopted=True)
        if order.status == Order.Status.OPEN:
            still_open.append(order.client_order_id)
    if first_tick_since_a_change(bot):
        still_open.extend(_adopt_unknown_open_orders(bot, market, updates))
    return tuple(still_open)


def first_tick_since_a_change(bot: Bot) -> bool:
    """Every status change (start, stop, error) stamps ``updated_at``; a tick does not."""
    return bot.last_tick_at is None or bot.last_tick_at <= bot.updated_at


def _never_arrived(bot: Bot, order: Order, updates: BotUpdates) -> None:
    """An order the exchange does not know.

    A pending one never reached it (the crash or the network failure came before the send): its
    row is removed, which frees its ``client_order_id`` so that the same decision may be sent
    again under the same id (should the lost request arrive after all, the exchange refuses the
    second one as a duplicate and the tick adopts the first). An open one that vanished is
    closed in the books.
    """
    metrics.ORDERS.inc(outcome="failed" if order.status == Order.Status.PENDING else "cancelled")
    if order.status == Order.Status.PENDING:
        order.delete()
        message = f"{order.side} order {order.client_order_id} never reached the exchange"
    else:
        Order.objects.filter(pk=order.pk).update(
            status=Order.Status.CANCELED, error="the exchange no longer knows this order"
        )
        message = f"{order.side} order {order.client_order_id} is gone from the exchange"
    bot_event(
        bot, "order_not_found", message, level=BotEvent.Level.WARNING,
        data={"client_order_id": order.client_order_id}, updates=updates,
    )  # fmt: skip


def _adopt_unknown_open_orders(bot: Bot, market: BotMarket, updates: BotUpdates) -> list[str]:
    """Open orders on the exchange that carry this bot's id prefix but are missing from the
    books (a database restored from an older backup) are taken into the books. Asked on the
    first tick after a start, not on every tick: a live account has a request budget."""
    adopted = []
    for result in market.exchange.fetch_open_orders(bot.symbol):
        cid = str(result.get("clientOrderId") or "")
        if not is_bot_order(bot.pk, cid) or Order.objects.filter(client_order_id=cid).exists():
            continue
        order = Order.objects.create(
            bot=bot, client_order_id=cid, symbol=bot.symbol, side=result.get("side") or "buy",
            order_type=result.get("type") or Order.Type.LIMIT,
            price=Decimal(str(result["price"])) if result.get("price") else None,
            qty=Decimal(str(result.get("amount") or 0)), reason="adopted", candle_ms=0,
        )  # fmt: skip
        order_apply_result(order, result, base=market.exchange.market_rules(bot.symbol).base)
        bot_event(bot, "order_adopted", f"open order {cid} found on the exchange and adopted",
                  updates=updates)  # fmt: skip
        adopted.append(cid)
    return adopted


# How an order ended, as the orders metric counts it (statuses still open are not counted).
ORDER_OUTCOMES: dict[str, str] = {
    Order.Status.CLOSED: "filled", Order.Status.CANCELED: "cancelled",
    Order.Status.REJECTED: "rejected",
}  # fmt: skip


def count_order_outcome(status: str) -> None:
    if status in ORDER_OUTCOMES:
        metrics.ORDERS.inc(outcome=ORDER_OUTCOMES[status])
