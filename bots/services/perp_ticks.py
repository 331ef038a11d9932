"""The parts of a tick that differ for a perp bot (``ticks`` calls in; the rules are in
``bots.perp_decisions``, the books in ``perp_books`` and ``perp_sync``).

- The candles closed since the last decision: on the paper exchange, funding, liquidation and
  the trigger orders candle by candle (``perp_sync.perp_candles_settle``); a spot bot's stop
  triggers (``protection.triggers_match``).
- Before an order that opens a position: the exchange's position mode (one-way), margin mode
  and leverage are set, idempotently (a call that asks for what is set changes nothing).
- A flip: the decision's ``place`` closes (reduce-only); once that has filled, the opening order
  (``then``) is decided again on the balance and position the exchange now reports, and sent
  under its own id (``order_ids.open_order_id``). A skip of that second order is kept on the
  decision, so the tick's event records it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import cast

import pandas as pd

from bots.decisions import Decision, PerpTerms, TickInputs
from bots.models import Bot, Position
from bots.perp_decisions import decide_perp
from bots.services.books import position_of
from bots.services.events import BotUpdates
from bots.services.markets import BotMarket
from bots.services.orders import orders_execute, place_send
from bots.services.perp_sync import perp_candles_settle
from bots.services.protection import triggers_match
from markets.exchanges.base import PerpExchange
from markets.perp import DEFAULT_TIERS
from markets.selectors import perp_market


def candles_settle(bot: Bot, market: BotMarket, candles: pd.DataFrame, updates: BotUpdates) -> None:
    """Let the paper exchange act on the candles closed since the last decision: a perp's
    funding, liquidation and triggers, a spot bot's triggers (a stop fires inside its candle)."""
    if bot.is_perp:
        perp_candles_settle(bot, market, candles, updates)
    else:
        triggers_match(bot, market, candles)


def perp_terms(bot: Bot, position: Position) -> PerpTerms:
    """The bot's leverage and buffer, the market's maintenance tiers (the catalog's, else the
    default), the margin the position holds."""
    market = perp_market(exchange=bot.exchange_account.exchange, symbol=bot.symbol)
    return PerpTerms(
        leverage=bot.leverage, liquidation_buffer_pct=bot.liquidation_buffer_pct,
        tiers=market.tiers if market is not None else DEFAULT_TIERS, margin=position.margin,
    )  # fmt: skip


def perp_setup(bot: Bot, market: BotMarket) -> None:
    """One-way mode, the bot's margin mode and leverage on its symbol (idempotent)."""
    exchange = cast(PerpExchange, market.exchange)
    exchange.set_position_mode_one_way(bot.symbol)
    exchange.set_margin_mode(bot.symbol, bot.margin_mode)
    exchange.set_leverage(bot.symbol, bot.leverage)


def perp_execute(
    bot: Bot, market: BotMarket, decision: Decision, at_market: Callable[[], TickInputs],
    candle_ms: int, updates: BotUpdates, *, stamp: str | None = None,
) -> tuple[Decision, int]:  # fmt: skip
    """Carry out a perp decision (module docstring); the decision as carried out (a flip's
    opening order as sized after the close) and the number of orders placed. ``at_market``
    reads the exchange's prices and balance again."""
    if decision.place is not None and not decision.place.reduce_only:
        perp_setup(bot, market)
    placed = orders_execute(bot, market, decision, candle_ms, updates, stamp=stamp)
    if decision.then is None:
        return decision, placed
    position = position_of(bot)
    if position.qty > 0:  # the close did not fill: no opening on top of it
        return dataclasses.replace(decision, then=None), placed
    flat = dataclasses.replace(
        at_market(), position_qty=position.qty, entry_price=None, open_order_ids=(),
        open_triggers=(), trigger_exit=None, perp=perp_terms(bot, position),
    )  # fmt: skip
    again = decide_perp(flat)
    decision = dataclasses.replace(decision, then=again.place, skip=again.skip)
    if again.place is not None:
        perp_setup(bot, market)
        placed += place_send(bot, market, again.place, candle_ms, updates, stamp=stamp)
    return decision, placed
