"""A perp bot and the exchange's position: funding, liquidation and reconciliation per tick.

- Candles closed since the last decision (paper only; a real exchange does this itself):
  ``perp_candles_settle`` replays them one by one on the paper exchange, in the engine's order
  (rule P2/P3): the funding at the candle's open first (charged and read into the books, so
  that a close inside the candle counts it), then, inside the candle, the stop-loss trigger or
  the liquidation, whichever level is nearer the entry (the price passes it first).
  The liquidations it returns are booked at once (``liquidation_book``).
- Every tick, after the orders are reconciled, ``perp_position_sync`` reads the position with
  ``fetch_positions([symbol])`` (the paper exchange first charges the funding due now, so that a
  close in this tick counts the funding of its own candle's open, as the engine's rule P2) and
  reconciles the books with it: the funding received since the last read, the entry, quantity,
  leverage, margin, liquidation price and mark. An exchange flat while the books hold a position
  that no order of the bot explains was liquidated: booked as a closing trade at the
  liquidation price.
- Exactly once: a liquidation is an ``Order`` under ``order_ids.liquidation_order_id`` (unique),
  written with its trade and the flat position in one transaction; a second read of the same
  liquidation finds the books flat, or the id taken.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

import pandas as pd
from django.db import IntegrityError, transaction

from bots.models import Bot, BotEvent, Order, Position
from bots.order_ids import liquidation_order_id
from bots.services.books import position_of
from bots.services.events import BotUpdates, bot_event
from bots.services.markets import BotMarket
from bots.services.orders import book_result
from bots.services.perp_books import funding_read, perp_unrealized, sign_of
from markets.exchanges.base import Position as ExchangePosition
from markets.exchanges.paper import PaperExchange
from markets.models import TRIGGER_ORDER_TYPES
from tradingbot.logconfig import context

logger = logging.getLogger("bots.tick")


def new_candles(bot: Bot, candles: pd.DataFrame) -> pd.DataFrame:
    """The candles closed since the bot's last decision (the newest only, before its first)."""
    times = candles["open_time"]
    return candles[times > bot.last_candle_ms] if bot.last_candle_ms is not None else candles[-1:]


def perp_candles_settle(
    bot: Bot, market: BotMarket, candles: pd.DataFrame, updates: BotUpdates
) -> int:
    """Replay the new candles on the paper exchange (module docstring); the liquidations."""
    exchange = market.exchange
    if not isinstance(exchange, PaperExchange):
        return 0
    rows = new_candles(bot, candles)[["open_time", "open", "high", "low", "close"]]
    stop_first = stop_nearer_than_liquidation(bot)
    booked = 0
    for row in rows.itertuples(index=False, name=None):
        # The funding at the candle's open, read into the books before a trigger or a
        # liquidation in the candle closes the position (its trade pnl counts it: rule P2).
        exchange.settle_funding_due(bot.symbol, until_ms=int(row[0]))
        funding_sync(bot, exchange)
        if stop_first:
            exchange.match_trigger_orders(bot.symbol, [row[:4]])
        for liquidation in exchange.settle_perps(bot.symbol, [row], timeframe=bot.timeframe):
            booked += 1 if liquidation_book(bot, market, liquidation, updates) else 0
        if not stop_first:
            exchange.match_trigger_orders(bot.symbol, [row[:4]])
    return booked


def funding_sync(bot: Bot, exchange: Any) -> None:
    """Book the funding the exchange reports for the held position since the last read."""
    if position_of(bot).qty <= 0:
        return
    found = [p for p in exchange.fetch_positions([bot.symbol]) if p.symbol == bot.symbol]
    if not found or found[0].funding is None:
        return
    with transaction.atomic():
        position = position_of(bot, lock=True)
        if position.qty > 0 and found[0].side == position.side:
            funding_read(position, found[0].funding)
            position.save()


def stop_nearer_than_liquidation(bot: Bot) -> bool:
    """Whether the resting stop-loss of the position lies nearer its entry than its
    liquidation price (then a candle that reaches both fills the stop)."""
    position = position_of(bot)
    stop = (
        bot.orders.filter(
            status__in=Order.OPEN_STATUSES, order_type__in=TRIGGER_ORDER_TYPES,
            reason="stop_loss",
        ).values_list("price", flat=True).first()
    )  # fmt: skip
    if stop is None or position.entry_price is None:
        return False
    if position.liquidation_price is None:
        return True
    entry = position.entry_price
    return abs(stop - entry) < abs(position.liquidation_price - entry)


def liquidation_book(
    bot: Bot, market: BotMarket, result: dict[str, Any], updates: BotUpdates, *,
    key: str | None = None,
) -> Order | None:  # fmt: skip
    """Book the exchange's liquidation ``result`` (a ccxt-shaped order) of the bot's position
    as its closing trade, with a warning event; None when there is nothing (left) to book."""
    rules = market.exchange.market_rules(bot.symbol)
    with transaction.atomic():
        position = position_of(bot, lock=True)
        if position.qty <= 0:
            return None
        cid = liquidation_order_id(bot.pk, key or str(result.get("id")))
        order = Order(
            bot=bot, client_order_id=cid, symbol=bot.symbol, order_type=Order.Type.MARKET,
            side=Order.Side.SELL if sign_of(position) > 0 else Order.Side.BUY,
            qty=position.qty, reason="liquidation", candle_ms=bot.last_candle_ms or 0,
        )  # fmt: skip
        try:
            with transaction.atomic():
                order.save(force_insert=True)
        except IntegrityError:
            return None  # booked before
        book_result(bot, order, result, updates, base=rules.base)
        price = order.average_price
        bot_event(
            bot, "liquidation",
            f"{position.side} position of {position.qty.normalize():f} liquidated at "
            f"{(price or Decimal(0)).normalize():f}",
            level=BotEvent.Level.WARNING,
            data={"client_order_id": cid, "price": str(price), "qty": str(position.qty)},
            updates=updates,
        )  # fmt: skip
    logger.warning(
        "bot.liquidation",
        extra=context(bot_id=bot.pk, symbol=bot.symbol, client_order_id=cid, price=str(price)),
    )
    return order


def perp_position_sync(bot: Bot, market: BotMarket, updates: BotUpdates) -> Position:
    """Read the exchange's position and reconcile the books with it (module docstring)."""
    exchange: Any = market.exchange
    if isinstance(exchange, PaperExchange):
        exchange.settle_funding_due(bot.symbol)
    found = [p for p in exchange.fetch_positions([bot.symbol]) if p.symbol == bot.symbol]
    held = found[0] if found else None
    position = position_of(bot)
    if held is None:
        if position.qty > 0 and not _orders_pending(bot):
            _vanished(bot, market, position, updates)
            return position_of(bot)
        return position  # flat on both sides: nothing to write (nor to lock)
    if position.qty <= 0 or held.side != position.side:
        return position  # the exchange's position is not (yet) in the books: orders explain it
    with transaction.atomic():
        position = position_of(bot, lock=True)
        if position.qty > 0 and held.side == position.side:
            _adopt(position, held)
            position.save()
    return position


def _orders_pending(bot: Bot) -> bool:
    """An order of the bot still open that could explain a flat exchange (not a trigger)."""
    open_orders = bot.orders.filter(status__in=Order.OPEN_STATUSES)
    return open_orders.exclude(order_type__in=TRIGGER_ORDER_TYPES).exists()


def _adopt(position: Position, held: ExchangePosition) -> None:
    """Take the exchange's figures into the books' position (the same side)."""
    if held.funding is not None:
        funding_read(position, held.funding)
    position.qty = held.contracts
    position.entry_price = held.entry_price or position.entry_price
    position.leverage = int(held.leverage or position.leverage)
    position.margin = held.margin if held.margin is not None else position.margin
    position.liquidation_price = held.liquidation_price
    if held.mark_price is not None:
        position.mark_price = held.mark_price
        position.unrealized_pnl = perp_unrealized(position, held.mark_price)


def _vanished(bot: Bot, market: BotMarket, position: Position, updates: BotUpdates) -> None:
    """The exchange holds nothing while the books hold a position no order explains: it was
    liquidated (a crash came between the exchange's liquidation and its booking, or a real
    exchange liquidated it). Booked at the liquidation price last read, with the taker fee."""
    price = position.liquidation_price or position.mark_price or position.entry_price
    assert price is not None
    fee = position.qty * price * market.exchange.market_rules(bot.symbol).taker_fee
    when = market.now_ms()
    result = {
        "id": "", "status": "closed", "filled": float(position.qty), "average": str(price),
        "price": str(price), "fee": {"cost": str(fee), "currency": market.exchange.market_rules(
            bot.symbol).quote}, "lastTradeTimestamp": when,
    }  # fmt: skip
    liquidation_book(bot, market, result, updates, key=str(when // 1000))
