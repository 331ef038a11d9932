"""A bot's stop-loss and take-profit, resting on the exchange as trigger orders (issue 16).

- Placed as soon as an entry has filled, in the tick that sent it (``protect_entry``), at the
  levels ``bots.decisions.protection`` computes from the entry FILL price; afterwards every
  tick's decision says which must exist (it keeps, cancels and re-places them).
- On the paper exchange they fire inside the candle, by the engine's rule
  (``markets.exchanges.paper_triggers``): before a tick reconciles, the candles closed since its
  last decision are matched against them (``triggers_match``); a replay bot does this candle
  by candle as it catches up, so its stops land on the candle where the backtest's do. A real
  exchange fires them itself; the tick's reconcile reads them back like any order.
- A trigger that filled since the last decision (``trigger_exit``) ended the trade: the bot
  cancels what is left (the other trigger: one-cancels-the-other by the bot) and stays flat
  until the signal changes, as after the engine's stop.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pandas as pd
from django.db.models import Q

from bots.decisions import OpenTrigger, RiskSettings, Trigger, protection, round_down
from bots.models import Bot, Order, Position, Trade
from bots.services.books import position_of
from bots.services.events import BotUpdates
from bots.services.markets import BotMarket
from bots.services.orders import triggers_place
from markets.exchanges.base import MarketRules
from markets.exchanges.paper import PaperExchange
from markets.models import TRIGGER_ORDER_TYPES


def risk_of(bot: Bot) -> RiskSettings:
    return RiskSettings(
        order_size_kind=bot.order_size_kind,
        order_size=bot.order_size,
        max_position=bot.max_position,
        stop_loss_pct=bot.stop_loss_pct,
        take_profit_pct=bot.take_profit_pct,
    )


def triggers_match(bot: Bot, market: BotMarket, candles: pd.DataFrame) -> int:
    """Let the paper exchange fire the bot's trigger orders on the candles closed since its
    last decision (the newest only, before its first); the number that fired. A real exchange
    fires them itself: nothing to do."""
    if not isinstance(market.exchange, PaperExchange):
        return 0
    resting = bot.orders.filter(status__in=Order.OPEN_STATUSES, order_type__in=TRIGGER_ORDER_TYPES)
    if not resting.exists():  # (a pending one may rest on the exchange: a lost answer)
        return 0
    times = candles["open_time"]
    new = candles[times > bot.last_candle_ms] if bot.last_candle_ms is not None else candles[-1:]
    rows = new[["open_time", "open", "high", "low"]].itertuples(index=False, name=None)
    return len(market.exchange.match_trigger_orders(bot.symbol, list(rows)))


def open_triggers(bot: Bot, open_ids: tuple[str, ...]) -> tuple[OpenTrigger, ...]:
    """The protective trigger orders among the bot's open orders, as the decision sees them."""
    if not open_ids:
        return ()
    orders = bot.orders.filter(
        client_order_id__in=open_ids, order_type__in=TRIGGER_ORDER_TYPES, price__isnull=False
    ).order_by("id")
    return tuple(
        OpenTrigger(o.client_order_id, Trigger(o.reason, o.side, o.qty, Decimal(o.price or 0)))
        for o in orders
    )


def trigger_exit(bot: Bot, step_ms: int) -> str | None:
    """``stop_loss`` / ``take_profit`` when a trigger order of the bot filled since the close of
    the candle it last decided on (any time, before its first decision); ``liquidation`` when
    a perp position was liquidated then (it ends the trade the same way)."""
    fills = Trade.objects.filter(
        Q(order__order_type__in=TRIGGER_ORDER_TYPES) | Q(order__reason="liquidation"), bot=bot
    )
    if bot.last_candle_ms is not None:
        since = datetime.fromtimestamp((bot.last_candle_ms + step_ms) / 1000, tz=UTC)
        fills = fills.filter(time__gte=since)
    return fills.order_by("-time", "-id").values_list("order__reason", flat=True).first()


def protect_entry(
    bot: Bot, market: BotMarket, rules: MarketRules, candle_ms: int, updates: BotUpdates,
    *, stamp: str | None = None,
) -> int:  # fmt: skip
    """Right after an entry filled: place its stop-loss and take-profit (the decision of the
    next tick would, a candle late); the number placed."""
    position = position_of(bot)
    qty = round_down(position.qty, rules.amount_step)
    side = -1 if bot.is_perp and position.side == Position.Side.SHORT else 1
    wanted = protection(qty, position.entry_price, risk_of(bot), rules, side=side)
    return triggers_place(bot, market, wanted, candle_ms, updates, stamp=stamp)
