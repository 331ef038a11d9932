"""Reads of the backtests app, always scoped to their owner.

Another user's backtest, sweep or schedule is a 404, indistinguishable from one that does not
exist. Lists and details leave out the equity curve (up to ``BACKTEST_EQUITY_POINTS`` pairs):
only the equity endpoint and a finished backtest's page read it.

The pages' reads are here too: a finished backtest's charts (candles merged into at most
``CHART_MAX_BARS`` bars in the database, its trades' markers grouped per bar, its strategy's
indicators), its comparison with buying and holding, and a sweep's heat map. The report's
breakdowns and the export are read in ``backtests.report_selectors``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import tzinfo
from typing import Any

import numpy as np
from django.db.models import (
    BigIntegerField,
    ExpressionWrapper,
    F,
    FloatField,
    Max,
    Min,
    QuerySet,
    Sum,
)
from django.db.models.functions import Cast
from django.http import Http404
from django.shortcuts import get_object_or_404

from accounts.models import User
from backtests.heat_colours import ColourScale, Tone, colour_scale
from backtests.metrics import LOWER_IS_BETTER, max_drawdown
from backtests.models import Backtest, BacktestSchedule, BacktestTrade, RunStatus, Sweep, SweepRun
from backtests.report import TradeRow, bar_markers
from backtests.report_selectors import (
    backtest_indicators,
    backtest_report_breakdown,
    backtest_trade_rows,
)
from markets import selectors as market_selectors
from markets.exchanges.markets import get_catalog
from markets.models import Candle
from markets.timeframes import timeframe_ms
from strategies.params import show
from tradingbot.errors import AppError

RECENT_RUNS = 10


def _backtests(user: User) -> QuerySet[Backtest]:
    return Backtest.objects.filter(user=user).defer("equity")


def backtest_list(
    *,
    user: User,
    status: str | None = None,
    strategy: str | None = None,
    schedule: BacktestSchedule | None = None,
) -> QuerySet[Backtest]:
    """The user's backtests, newest first, optionally filtered."""
    backtests = _backtests(user).order_by("-created_at", "-id")
    if status:
        backtests = backtests.filter(status=status)
    if strategy:
        backtests = backtests.filter(strategy_id=strategy)
    if schedule is not None:
        backtests = backtests.filter(schedule=schedule)
    return backtests


def backtest_get(*, user: User, pk: int) -> Backtest:
    """The user's backtest (without its equity curve), or 404."""
    return get_object_or_404(_backtests(user), pk=pk)


def backtest_equity(*, user: User, pk: int) -> list[list[Any]]:
    """The equity curve ``[[time_ms, equity], ...]`` of the user's backtest (empty until done),
    or 404."""
    equity = Backtest.objects.filter(user=user, pk=pk).values_list("equity", flat=True).first()
    if equity is None:  # no such row: the column itself is never null
        raise Http404
    return list(equity)


def backtest_trade_list(
    *, backtest: Backtest, side: str | None = None, exit_reason: str | None = None
) -> QuerySet[BacktestTrade]:
    """A backtest's trades in the order they happened, optionally filtered."""
    trades = BacktestTrade.objects.filter(backtest=backtest).order_by("seq")
    if side:
        trades = trades.filter(side=side)
    if exit_reason:
        trades = trades.filter(exit_reason=exit_reason)
    return trades


def sweep_list(
    *, user: User, status: str | None = None, strategy: str | None = None
) -> QuerySet[Sweep]:
    """The user's sweeps, newest first, optionally filtered."""
    sweeps = Sweep.objects.filter(user=user).order_by("-created_at", "-id")
    if status:
        sweeps = sweeps.filter(status=status)
    if strategy:
        sweeps = sweeps.filter(strategy_id=strategy)
    return sweeps


def sweep_get(*, user: User, pk: int) -> Sweep:
    return get_object_or_404(Sweep, user=user, pk=pk)


def sweep_failure_list(*, sweep: Sweep) -> QuerySet[SweepRun]:
    """The combinations that failed, in grid order (the ranking holds the finished ones)."""
    return sweep.runs.filter(status=RunStatus.FAILED).order_by("seq").only("params", "error")


def sweep_ranking(*, sweep: Sweep, limit: int | None = None) -> list[SweepRun]:
    """The finished combinations, best first by ``sweep.rank_by``; those without a value (no
    trades, so no Sharpe) last, in grid order."""
    runs = list(sweep.runs.filter(status=RunStatus.DONE).order_by("seq"))
    lower_first = sweep.rank_by in LOWER_IS_BETTER

    def key(run: SweepRun) -> tuple[bool, float]:
        value = (run.metrics or {}).get(sweep.rank_by)
        if value is None or not math.isfinite(value):
            return (True, 0.0)
        return (False, value if lower_first else -value)

    ranked = sorted(runs, key=key)
    return ranked if limit is None else ranked[:limit]


def schedule_list(*, user: User) -> QuerySet[BacktestSchedule]:
    return BacktestSchedule.objects.filter(user=user).order_by("-created_at", "-id")


def schedule_get(*, user: User, pk: int) -> BacktestSchedule:
    return get_object_or_404(BacktestSchedule, user=user, pk=pk)


def schedule_recent_runs(
    *, schedule: BacktestSchedule, limit: int = RECENT_RUNS
) -> QuerySet[Backtest]:
    """The schedule's latest runs, newest first (the full history is the backtest list)."""
    return (
        Backtest.objects.filter(schedule=schedule)
        .order_by("-created_at", "-id")
        .only("id", "status", "error", "start", "end", "metrics", "created_at")[:limit]
    )


# --- Pages: charts, the buy-and-hold comparison, the sweep heat map ---------------------------

CHART_MAX_BARS = 1000
CHART_MAX_EQUITY_POINTS = 1000
_CLOSE = Cast("close", FloatField())


@dataclass(frozen=True)
class BacktestChart:
    """What a finished backtest's charts draw, small enough to embed in its page.

    ``candles`` are ``[time_ms, open, high, low, close, volume]`` bars of ``bar_ms`` each: the
    candles themselves, or (past ``CHART_MAX_BARS``) consecutive candles merged into one bar.
    Trade markers sit on the bar that holds their candle, grouped per bar
    (``report.bar_markers``). ``indicators`` are the strategy's plots on the same bars
    (None when they cannot be drawn). ``equity`` and ``drawdown`` are
    ``[time_ms, value]`` (drawdown in percent below the running peak, ≤ 0), thinned to at most
    ``CHART_MAX_EQUITY_POINTS`` points.
    """

    candles: list[list[float]]
    bar_ms: int
    first_close: float | None
    markers: list[dict[str, Any]]
    indicators: list[dict[str, Any]] | None
    equity: list[list[float]]
    drawdown: list[list[float]]
    price_decimals: int | None
    initial_cash: float

    def as_json(self) -> dict[str, Any]:
        return {
            "initialCash": self.initial_cash,
            "candles": self.candles,
            "markers": self.markers,
            "indicators": self.indicators or [],
            "equity": self.equity,
            "drawdown": self.drawdown,
            "firstClose": self.first_close,
            "priceDecimals": self.price_decimals,
        }


def market_price_decimals(*, exchange: str, symbol: str) -> int | None:
    """The number of decimals of the market's price step (``0.01`` → 2); None if unknown."""
    try:
        step = get_catalog(exchange).rules(symbol).price_step
    except AppError:
        return None
    if step is None or step <= 0:
        return None
    exponent = step.normalize().as_tuple().exponent
    return max(-exponent, 0) if isinstance(exponent, int) else None


def backtest_chart(
    *, backtest: Backtest, price_decimals: int | None, trades: list[TradeRow] | None = None
) -> BacktestChart:
    """The candles, trade markers, indicators, equity curve and drawdown of a finished
    backtest (``trades``: its trade rows, when the caller has read them already)."""
    candles, bar_ms, first_close = _chart_bars(backtest, CHART_MAX_BARS)
    start = int(candles[0][0]) if candles else backtest.start_ms
    if trades is None:
        trades = backtest_trade_rows(backtest=backtest)
    indicators = backtest_indicators(
        backtest=backtest, bar_ms=bar_ms, start_ms=start, price_decimals=price_decimals
    )
    stored = Backtest.objects.filter(pk=backtest.pk).values_list("equity", flat=True).first()
    equity, drawdown = _equity_and_drawdown(list(stored or []), CHART_MAX_EQUITY_POINTS)
    return BacktestChart(
        candles=_rounded_bars(candles, price_decimals),
        bar_ms=bar_ms,
        first_close=first_close,
        markers=bar_markers(trades, start, bar_ms),
        indicators=indicators,
        equity=equity,
        drawdown=drawdown,
        price_decimals=price_decimals,
        initial_cash=float(backtest.initial_cash),
    )


def _period_candles(run: Backtest | Sweep) -> QuerySet[Candle]:
    return market_selectors.candles_in_period(
        exchange=run.exchange,
        symbol=run.symbol,
        timeframe=run.timeframe,
        start_ms=run.start_ms,
        end_ms=run.end_ms,
    )


def _chart_bars(backtest: Backtest, max_bars: int) -> tuple[list[list[float]], int, float | None]:
    """At most ``max_bars`` bars over the backtest's candles, merged in the database (a period
    of a million candles is never read whole), and the first candle's close."""
    candles = _period_candles(backtest)
    step = timeframe_ms(backtest.timeframe)
    span = candles.aggregate(first=Min("open_time"), last=Max("open_time"))
    first, last = span["first"], span["last"]
    if first is None or last is None:
        return [], step, None
    bar_ms = step * max(1, math.ceil(((last - first) // step + 1) / max_bars))
    bucket = ExpressionWrapper((F("open_time") - first) / bar_ms, output_field=BigIntegerField())
    groups = list(
        candles.annotate(bucket=bucket)
        .values("bucket")
        .annotate(
            first=Min("open_time"),
            last=Max("open_time"),
            high=Max(Cast("high", FloatField())),
            low=Min(Cast("low", FloatField())),
            volume=Sum(Cast("volume", FloatField())),
        )
        .order_by("bucket")
    )
    ends = {group["first"] for group in groups} | {group["last"] for group in groups}
    open_close = {
        time: (open_, close)
        for time, open_, close in candles.filter(open_time__in=ends)
        .annotate(open_f=Cast("open", FloatField()), close_f=_CLOSE)
        .values_list("open_time", "open_f", "close_f")
    }
    bars = [
        [
            first + group["bucket"] * bar_ms,
            open_close[group["first"]][0],
            group["high"],
            group["low"],
            open_close[group["last"]][1],
            group["volume"] or 0.0,
        ]
        for group in groups
    ]
    return bars, bar_ms, open_close[first][1]


def _rounded_bars(bars: list[list[float]], decimals: int | None) -> list[list[float]]:
    """Prices at the market's decimals; volumes to 8 decimals (their sums' float noise off)."""
    return [
        [
            bar[0],
            *(price if decimals is None else round(price, decimals) for price in bar[1:5]),
            round(bar[5], 8),
        ]
        for bar in bars
    ]


def _equity_and_drawdown(
    points: list[list[Any]], max_points: int
) -> tuple[list[list[float]], list[list[float]]]:
    """The curve and its drawdown (computed on the whole stored curve, then thinned)."""
    if not points:
        return [], []
    times = np.array([point[0] for point in points], dtype=np.int64)
    values = np.array([point[1] for point in points], dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        drawdown = np.nan_to_num((values / np.maximum.accumulate(values) - 1.0) * 100)
    keep = np.unique(np.linspace(0, times.size - 1, min(max_points, times.size)).round())
    kept = keep.astype(np.int64)
    return (
        [[int(t), round(float(v), 2)] for t, v in zip(times[kept], values[kept], strict=True)],
        [[int(t), round(float(d), 3)] for t, d in zip(times[kept], drawdown[kept], strict=True)],
    )


@dataclass(frozen=True)
class BuyAndHold:
    """The strategy against buying at the first candle's close and holding to the last one (no
    fees), over the same candles. Returns and drawdowns are fractions (``-0.25`` = 25 % down)."""

    strategy_return: float | None
    strategy_max_drawdown: float | None
    strategy_final_equity: float | None
    market_return: float
    market_max_drawdown: float
    market_final_equity: float

    @property
    def return_difference(self) -> float | None:
        if self.strategy_return is None:
            return None
        return self.strategy_return - self.market_return


def backtest_buy_and_hold(*, backtest: Backtest) -> BuyAndHold | None:
    """The comparison for a finished backtest; None when its candles are no longer stored."""
    closes = np.fromiter(
        _period_candles(backtest)
        .order_by("open_time")
        .annotate(close_f=_CLOSE)
        .values_list("close_f", flat=True),
        dtype=np.float64,
    )
    if closes.size == 0 or closes[0] <= 0:
        return None
    market_return = float(closes[-1] / closes[0] - 1.0)
    metrics = backtest.metrics or {}
    return BuyAndHold(
        strategy_return=metrics.get("total_return"),
        strategy_max_drawdown=metrics.get("max_drawdown"),
        strategy_final_equity=metrics.get("final_equity"),
        market_return=market_return,
        market_max_drawdown=max_drawdown(closes),
        market_final_equity=float(backtest.initial_cash) * (1.0 + market_return),
    )


@dataclass(frozen=True)
class BacktestReport:
    """The results part of a finished backtest's page, besides its metrics and trades."""

    chart: BacktestChart
    buy_and_hold: BuyAndHold | None
    price_decimals: int | None
    breakdown: dict[str, Any]


def backtest_report(*, backtest: Backtest, zone: tzinfo) -> BacktestReport:
    """Everything the results part of the page shows; months and weekdays in ``zone``."""
    decimals = market_price_decimals(exchange=backtest.exchange, symbol=backtest.symbol)
    trades = backtest_trade_rows(backtest=backtest)
    return BacktestReport(
        chart=backtest_chart(backtest=backtest, price_decimals=decimals, trades=trades),
        buy_and_hold=backtest_buy_and_hold(backtest=backtest),
        price_decimals=decimals,
        breakdown=backtest_report_breakdown(backtest=backtest, zone=zone, trades=trades),
    )


def candle_market_list() -> list[dict[str, Any]]:
    """The markets with stored candles, with their first and last open times (epoch ms), for
    the forms' hints."""
    markets = (
        Candle.objects.values("exchange", "symbol", "timeframe")
        .annotate(first=Min("open_time"), last=Max("open_time"))
        .order_by("exchange", "symbol", "timeframe")
    )
    return [dict(market) for market in markets]


# --- Sweeps: the heat map ----------------------------------------------------------------------


@dataclass(frozen=True)
class HeatCell:
    """One cell: the best value of the metric over the combinations with these two values
    (several when the sweep varies more than two parameters); ``tone`` gain / loss / even
    against the metric's break-even value, ``shade`` 0 (even) to 1 (the farthest from it)."""

    value: float | None
    shade: float | None
    runs: int
    tone: Tone | None = None


@dataclass(frozen=True)
class HeatMap:
    x: str
    y: str | None
    x_values: list[Any]
    rows: list[tuple[Any, list[HeatCell]]]
    metric: str


def sweep_varying_params(*, sweep: Sweep) -> list[str]:
    """The grid's parameters that take more than one value, in grid order."""
    return [name for name, values in (sweep.grid or {}).items() if len(values) > 1]


def sweep_heat_map(*, sweep: Sweep, x: str | None = None, y: str | None = None) -> HeatMap | None:
    """The finished combinations as a table of ``x`` (columns) by ``y`` (rows) coloured by the
    sweep's ``rank_by``; None when no parameter varies. Unknown names fall back to the first
    two varying parameters; ``y`` is None when only one parameter can be a dimension."""
    axes = sweep.grid or {}
    varying = sweep_varying_params(sweep=sweep)
    if not varying:
        return None
    column = x if x is not None and x in axes else varying[0]
    if y not in axes or y == column:
        y = next((name for name in varying if name != column), None)
    best = _best_per_cell(sweep, column, y)
    y_values = axes[y] if y is not None else [None]
    scale = colour_scale(
        sweep.rank_by,
        (value for value, _ in best.values() if value is not None),
        initial_cash=float(sweep.initial_cash),
        lower_is_better=sweep.rank_by in LOWER_IS_BETTER,
    )
    rows = [
        (
            y_value,
            [_cell(best.get((_key(x_value), _key(y_value))), scale) for x_value in axes[column]],
        )
        for y_value in y_values
    ]
    return HeatMap(x=column, y=y, x_values=list(axes[column]), rows=rows, metric=sweep.rank_by)


def _key(value: Any) -> str:
    """Grid values as comparable keys (``10`` and ``10.0`` from JSON are one value)."""
    return show(value)


def _best_per_cell(
    sweep: Sweep, x: str, y: str | None
) -> dict[tuple[str, str], tuple[float | None, int]]:
    """(x value, y value) → (the best metric value, how many combinations share the cell).
    The ranking is best first, so the first run seen in a cell is its best."""
    cells: dict[tuple[str, str], tuple[float | None, int]] = {}
    for run in sweep_ranking(sweep=sweep):
        key = (_key(run.params.get(x)), _key(run.params.get(y) if y else None))
        value = _finite((run.metrics or {}).get(sweep.rank_by))
        seen = cells.get(key)
        cells[key] = (value, 1) if seen is None else (seen[0], seen[1] + 1)
    return cells


def _finite(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def _cell(found: tuple[float | None, int] | None, scale: ColourScale) -> HeatCell:
    if found is None:
        return HeatCell(value=None, shade=None, runs=0)
    value, runs = found
    if value is None:
        return HeatCell(value=None, shade=None, runs=runs)
    return HeatCell(value=value, shade=scale.strength(value), runs=runs, tone=scale.tone(value))
