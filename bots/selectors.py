"""Reads of the bots app: candles for charts and engines, and the bots of a user.

Bots are always read scoped to their owner: another user's bot is a 404, indistinguishable from
one that does not exist. What a bot holds (positions, orders, trades, events) is read through
the bot, once it has been found that way.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import NamedTuple, TypedDict

import numpy as np
import pandas as pd
from django.db.models import FloatField, QuerySet
from django.db.models.functions import Cast
from django.shortcuts import get_object_or_404

from accounts.models import User
from bots.exchanges.markets import get_catalog
from bots.models import Bot, BotEvent, Candle, Order, Position, Trade
from bots.timeframes import timeframe_ms
from tradingbot.errors import AppError

PRICE_FIELDS = ("open", "high", "low", "close", "volume")
# Charts want floats: let the database cast, instead of building 1,000 Decimals per request.
AS_FLOATS = {f"{name}_f": Cast(name, FloatField()) for name in PRICE_FIELDS}


def candles_recent(
    *,
    exchange: str,
    symbol: str,
    timeframe: str,
    limit: int = 200,
    before: int | None = None,
    now_ms: int | None = None,
) -> list[list[float]]:
    """The most recent ``limit`` closed candles (opened before ``before`` if given), ascending,
    as ``[open_time_ms, open, high, low, close, volume]`` rows for charts.

    A candle is closed when its open time plus the timeframe has passed.
    """
    now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
    newest_open = now_ms - timeframe_ms(timeframe)
    if before is not None:
        newest_open = min(newest_open, before - 1)
    rows = (
        Candle.objects.filter(
            exchange=exchange, symbol=symbol, timeframe=timeframe, open_time__lte=newest_open
        )
        .order_by("-open_time")
        .annotate(**AS_FLOATS)
        .values_list("open_time", *AS_FLOATS)[:limit]
    )
    return [list(row) for row in reversed(rows)]


FRAME_COLUMNS = ("open_time", "open", "high", "low", "close", "volume")


def candles_in_period(
    *, exchange: str, symbol: str, timeframe: str, start_ms: int, end_ms: int
) -> QuerySet[Candle]:
    """The stored candles opened in [start_ms, end_ms), as a queryset (for counting)."""
    return Candle.objects.filter(
        exchange=exchange,
        symbol=symbol,
        timeframe=timeframe,
        open_time__gte=start_ms,
        open_time__lt=end_ms,
    )


def candles_frame(
    *, exchange: str, symbol: str, timeframe: str, start_ms: int, end_ms: int
) -> pd.DataFrame:
    """The candles opened in [start_ms, end_ms) as a float DataFrame ascending by open_time,
    with the columns strategies and the backtest engine take (``FRAME_COLUMNS``)."""
    rows = (
        candles_in_period(
            exchange=exchange, symbol=symbol, timeframe=timeframe, start_ms=start_ms, end_ms=end_ms
        )
        .order_by("open_time")
        .annotate(**AS_FLOATS)
        .values_list("open_time", *AS_FLOATS)
    )
    values = np.array(list(rows), dtype=np.float64).reshape(-1, len(FRAME_COLUMNS))
    frame = pd.DataFrame(values, columns=list(FRAME_COLUMNS))
    frame["open_time"] = values[:, 0].astype(np.int64)
    return frame


# --- bots ---------------------------------------------------------------------------------------


# The bot's own position is shown with the bot; prefetching them all keeps a page of bots at two
# queries (a bot moved to another market keeps its old position row too).
def _bots(user: User) -> QuerySet[Bot]:
    return Bot.objects.filter(user=user).prefetch_related("positions")


def bot_list(*, user: User, status: str | None = None) -> QuerySet[Bot]:
    """The user's bots, newest first, optionally only those in ``status``."""
    bots = _bots(user).order_by("-created_at", "-id")
    if status:
        bots = bots.filter(status=status)
    return bots


def bot_get(*, user: User, pk: int) -> Bot:
    """The user's bot, or 404."""
    return get_object_or_404(_bots(user), pk=pk)


def bot_position(bot: Bot) -> Position | None:
    """The bot's position on its current symbol (None before the first is written); reads the
    prefetched rows when there are some."""
    return next((p for p in bot.positions.all() if p.symbol == bot.symbol), None)


def bot_position_list(*, bot: Bot) -> QuerySet[Position]:
    """The bot's positions (one per market it has traded), most recently updated first."""
    return Position.objects.filter(bot=bot).order_by("-updated_at", "-id")


# "open" is what the books still wait on: decided but unconfirmed, or resting on the exchange.
ORDER_STATUS_FILTERS = {"open": Order.OPEN_STATUSES}


def bot_order_list(*, bot: Bot, status: str | None = None) -> QuerySet[Order]:
    """The bot's orders, newest first; ``status="open"`` means pending or open, any other
    status filters exactly."""
    orders = Order.objects.filter(bot=bot).order_by("-created_at", "-id")
    if status:
        orders = orders.filter(status__in=ORDER_STATUS_FILTERS.get(status, (status,)))
    return orders


def bot_trade_list(*, bot: Bot) -> QuerySet[Trade]:
    """The bot's fills, newest first."""
    return Trade.objects.filter(bot=bot).order_by("-time", "-id")


def bot_event_list(*, bot: Bot, level: str | None = None) -> QuerySet[BotEvent]:
    """The bot's log, newest first, optionally only one level."""
    events = BotEvent.objects.filter(bot=bot).order_by("-time", "-id")
    if level:
        events = events.filter(level=level)
    return events


# --- pages ----------------------------------------------------------------------------------------

CHART_CANDLES = 200


class MarketPlaces(NamedTuple):
    """Decimal places a market's prices and amounts are shown with (its precision steps)."""

    price: int
    qty: int


def market_places(*, exchange: str, symbol: str) -> MarketPlaces:
    """From the exchange's market rules; 2 and 8 for a market the catalogue does not list."""
    try:
        rules = get_catalog(exchange).rules(symbol)
    except AppError:
        return MarketPlaces(2, 8)
    return MarketPlaces(_places(rules.price_step, 2), _places(rules.amount_step, 8))


def _places(step: Decimal | None, fallback: int) -> int:
    if step is None or step <= 0:
        return fallback
    exponent = step.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else fallback


class ChartMarker(TypedDict):
    time: int  # the open time (ms) of the candle the fill happened in
    side: str
    price: float
    qty: float


class BotChart(TypedDict):
    candles: list[list[float]]
    markers: list[ChartMarker]
    entry_price: float | None
    timeframe_ms: int


def bot_chart(bot: Bot) -> BotChart:
    """The bot's most recent candles (up to its own clock: a replay's last candle) with its
    fills in that window as markers, and the open position's entry price."""
    step = timeframe_ms(bot.timeframe)
    before = None
    if bot.data_source == Bot.DataSource.REPLAY:
        clock = bot.last_candle_ms if bot.last_candle_ms is not None else bot.replay_start_ms
        before = None if clock is None else clock + 1
    candles = candles_recent(
        exchange=bot.exchange_account.exchange, symbol=bot.symbol, timeframe=bot.timeframe,
        limit=CHART_CANDLES, before=before,
    )  # fmt: skip
    markers: list[ChartMarker] = []
    if candles:
        since = datetime.fromtimestamp(candles[0][0] / 1000, tz=UTC)
        trades = bot_trade_list(bot=bot).filter(time__gte=since).reverse()
        markers = [_marker(trade, step) for trade in trades]
    position = bot_position(bot)
    entry = position.entry_price if position is not None and position.qty > 0 else None
    return {
        "candles": candles, "markers": markers, "timeframe_ms": step,
        "entry_price": None if entry is None else float(entry),
    }  # fmt: skip


def _marker(trade: Trade, step: int) -> ChartMarker:
    ms = int(trade.time.timestamp() * 1000)
    return {
        "time": ms // step * step, "side": trade.side,
        "price": float(trade.price), "qty": float(trade.qty),
    }  # fmt: skip
