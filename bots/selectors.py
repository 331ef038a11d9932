"""Reads of the bots app: the bots of a user and what they hold.

Bots are always read scoped to their owner: another user's bot is a 404, indistinguishable from
one that does not exist. What a bot holds (positions, orders, trades, events) is read through
the bot, once it has been found that way.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, NamedTuple, TypedDict

import pandas as pd
from django.db.models import Count, QuerySet
from django.shortcuts import get_object_or_404
from django.utils import timezone

from accounts.models import User
from bots.models import Bot, BotEvent, Order, Position, Signal, Trade
from markets.selectors import FRAME_COLUMNS, candles_recent
from markets.timeframes import timeframe_ms
from strategies.plots import indicator_chart
from strategies.registry import UnknownStrategyError
from strategies.registry import active as active_strategies


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


def bot_signal_list(*, bot: Bot) -> QuerySet[Signal]:
    """The signals the bot's webhook received, newest first, with the order each placed."""
    return Signal.objects.filter(bot=bot).select_related("order").order_by("-received_at", "-id")


# --- pages ----------------------------------------------------------------------------------------

CHART_CANDLES = 200
# Candles read before the chart's first one so that the strategy's indicators are already
# warmed up where the chart begins (the built-ins' longest default warm-up is 35 candles; a
# longer one starts part-way along the chart).
INDICATOR_WARMUP = 300


class ChartMarker(TypedDict):
    time: int  # the open time (ms) of the candle the fill happened in
    side: str
    price: float
    qty: float


class BotChart(TypedDict):
    candles: list[list[float]]
    markers: list[ChartMarker]
    entry_price: float | None
    liquidation_price: float | None
    timeframe_ms: int
    indicators: list[dict[str, Any]]  # strategies.plots.indicator_chart's series


def bot_chart(bot: Bot) -> BotChart:
    """The bot's most recent candles (up to its own clock: a replay's last candle) with its
    fills in that window as markers, and the open position's entry price."""
    step = timeframe_ms(bot.timeframe)
    before = None
    if bot.data_source == Bot.DataSource.REPLAY:
        clock = bot.last_candle_ms if bot.last_candle_ms is not None else bot.replay_start_ms
        before = None if clock is None else clock + 1
    read = candles_recent(
        exchange=bot.exchange_account.exchange, symbol=bot.symbol, timeframe=bot.timeframe,
        limit=CHART_CANDLES + INDICATOR_WARMUP, before=before,
    )  # fmt: skip
    candles = read[-CHART_CANDLES:]
    markers: list[ChartMarker] = []
    if candles:
        since = datetime.fromtimestamp(candles[0][0] / 1000, tz=UTC)
        trades = bot_trade_list(bot=bot).filter(time__gte=since).reverse()
        markers = [_marker(trade, step) for trade in trades]
    position = bot_position(bot)
    held = position if position is not None and position.qty > 0 else None
    entry = held.entry_price if held else None
    liquidation = held.liquidation_price if held else None
    return {
        "candles": candles, "markers": markers, "timeframe_ms": step,
        "entry_price": None if entry is None else float(entry),
        "liquidation_price": None if liquidation is None else float(liquidation),
        "indicators": bot_indicators(bot, read, since_ms=int(candles[0][0]) if candles else None),
    }  # fmt: skip


def bot_indicators(
    bot: Bot, candles: list[list[float]], *, since_ms: int | None
) -> list[dict[str, Any]]:
    """The bot's strategy's indicators over ``candles`` (``candles_recent`` rows), from
    ``since_ms`` on; none when the strategy is gone from the code or its stored parameters no
    longer validate (the page still shows the candles)."""
    try:
        strategy = active_strategies().create(bot.strategy_id, bot.params)
    except (UnknownStrategyError, ValueError):
        return []
    frame = pd.DataFrame(candles, columns=list(FRAME_COLUMNS))
    return indicator_chart(strategy, frame, since_ms=since_ms)


def _marker(trade: Trade, step: int) -> ChartMarker:
    ms = int(trade.time.timestamp() * 1000)
    return {
        "time": ms // step * step, "side": trade.side,
        "price": float(trade.price), "qty": float(trade.qty),
    }  # fmt: skip


class StrategySetting(NamedTuple):
    name: str  # the parameter's own name, as the API has it
    label: str  # what the strategy says it is
    value: str


class StrategySettings(NamedTuple):
    title: str  # the strategy's name (its key when the code no longer has it)
    params: list[StrategySetting]


def bot_strategy_settings(bot: Bot) -> StrategySettings:
    """The bot's strategy and each of its parameters, in the strategy's order, worded for the
    trader: the parameter's description as its label, yes/no for a flag."""
    try:
        strategy = active_strategies().get(bot.strategy_id)
    except UnknownStrategyError:
        values = [StrategySetting(k, k, _shown(v)) for k, v in bot.params.items()]
        return StrategySettings(bot.strategy_id, values)
    declared = [
        StrategySetting(p.name, p.help or p.name.replace("_", " ").capitalize(),
                        _shown(bot.params.get(p.name, p.default)))
        for p in strategy.params
    ]  # fmt: skip
    return StrategySettings(strategy.name, declared)


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def epoch_ms_local(ms: int | None) -> datetime | None:
    """An epoch-ms time as a datetime in the active (the trader's) time zone."""
    if ms is None:
        return None
    return timezone.localtime(datetime.fromtimestamp(ms / 1000, tz=UTC))


# A tick's log line starts with its candle's open time, written in UTC (``outcomes.tick_event``).
_CANDLE_PREFIX = re.compile(r"^Candle \d{4}-\d{2}-\d{2} \d{2}:\d{2}(?: UTC)?: ")


def event_message_local(event: BotEvent) -> str:
    """The event's message with its candle's time in the trader's time zone (as
    ``static/js/bot_detail.js`` draws a live one)."""
    candle_ms = event.data.get("candle_ms") if isinstance(event.data, dict) else None
    moment = epoch_ms_local(candle_ms) if isinstance(candle_ms, int) else None
    if moment is None or not _CANDLE_PREFIX.match(event.message):
        return event.message
    return _CANDLE_PREFIX.sub(f"Candle {moment:%Y-%m-%d %H:%M}: ", event.message, count=1)


def bots_by_status() -> list[tuple[list[str], float]]:
    """How many bots are in each status, over every user (the ``tradingbot_bots`` gauge)."""
    counts = dict(Bot.objects.order_by().values_list("status").annotate(n=Count("pk")))
    return [([status], float(counts.get(status, 0))) for status in Bot.Status.values]
