"""Performance metrics of a backtest: pure functions over numpy arrays.

Conventions, for every function here:

- ``equity[i]`` is the account value at the close of candle ``i``; ``times[i]`` is that candle's
  ``open_time`` in epoch milliseconds (ascending, one per candle). Only differences of times are
  used, so open or close times give the same answers.
- Returns and other ratios are plain fractions: ``0.05`` means 5 %.
- Per-candle returns are ``r[i] = equity[i] / equity[i - 1] - 1`` (one fewer than candles).
- A year is 365.25 days. ``candles_per_year`` = one year / the median candle spacing.
- ``sharpe`` = mean(r) / std(r, ddof=1) * sqrt(candles_per_year), risk-free rate 0. ``None`` when
  there are fewer than two returns or the returns do not vary (std ≤ 1e-12, i.e. rounding noise).
- ``sortino`` = mean(r) / sqrt(mean(min(r, 0)²)) * sqrt(candles_per_year): the downside deviation
  about 0 over all candles, risk-free rate 0. ``None`` when no candle lost.
- ``max_drawdown`` is the deepest fall below a running peak of the curve, as a NEGATIVE fraction
  (``-0.25`` = 25 % below the peak); ``0.0`` when the curve never falls.
- ``max_drawdown_duration`` is the longest time under water in ms: from the candle that set a
  peak to the first candle back at or above it, or to the last candle when it never recovers;
  ``0`` when the curve never falls. (The longest drawdown, not necessarily the deepest one.)
- ``cagr`` = (final / initial_cash) ** (1 / years) - 1, ``years`` = the time the candles cover
  (last open_time - first open_time + one median spacing) / 365.25 days. ``-1.0`` when the final
  equity is ≤ 0. ``calmar`` = cagr / |max_drawdown|, ``None`` when there was no drawdown.
- Trade metrics take each trade's ``pnl`` (net of fees) and ``return`` (pnl / entry notional):
  ``win_rate`` = share of trades with pnl > 0; ``profit_factor`` = gross profit / gross loss
  (``inf`` when nothing was lost, reported as ``None``);
  ``expectancy`` = ``avg_trade_pnl`` = the mean pnl.
- ``buy_and_hold_return`` = close[-1] / close[0] - 1 (no fees): the market's own move over the run.
- ``funding_fees`` = the sum of the trades' funding (perpetual swaps), signed: negative when the
  account paid more than it received; ``0.0`` on spot. ``liquidations`` = how many trades were
  liquidated.

:func:`compute_metrics` gathers them in one JSON-safe dict: NaN and ±inf become ``None``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

YEAR_MS = 365.25 * 24 * 60 * 60 * 1000
_FLAT_STD = 1e-12
_MAX_EXPONENT = 700.0  # math.exp overflows a float just above 709

FloatArray = npt.NDArray[np.float64]
Numbers = npt.ArrayLike

METRIC_KEYS = (
    "total_return",
    "cagr",
    "sharpe",
    "sortino",
    "calmar",
    "max_drawdown",
    "max_drawdown_duration",
    "win_rate",
    "profit_factor",
    "expectancy",
    "exposure",
    "trade_count",
    "avg_trade_pnl",
    "avg_trade_return",
    "final_equity",
    "buy_and_hold_return",
    "funding_fees",
    "liquidations",
)
# What a sweep may be ranked by. Lower is better for LOWER_IS_BETTER; every other metric ranks
# higher first (max_drawdown is negative, so the shallowest drawdown is the highest). Counts and
# the perp-only funding total are reported, not ranked by.
RANKABLE_METRICS = tuple(
    key for key in METRIC_KEYS if key not in {"trade_count", "funding_fees", "liquidations"}
)
LOWER_IS_BETTER = frozenset({"max_drawdown_duration"})


def json_safe(value: float | None) -> float | None:
    """``value`` as a plain float, or ``None`` for None, NaN and ±inf."""
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def candle_spacing_ms(times: Numbers) -> float | None:
    """The median gap between consecutive candles in ms (``None`` for fewer than two)."""
    stamps = np.asarray(times, dtype=np.int64)
    if stamps.size < 2:
        return None
    gaps = np.diff(stamps)
    low, high = gaps.min(), gaps.max()
    return float(low) if low == high else float(np.median(gaps))


def candles_per_year(times: Numbers) -> float | None:
    spacing = candle_spacing_ms(times)
    return YEAR_MS / spacing if spacing else None


def period_returns(equity: Numbers) -> FloatArray:
    values = np.asarray(equity, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return values[1:] / values[:-1] - 1.0


def total_return(equity: Numbers, initial_cash: float) -> float:
    return float(np.asarray(equity, dtype=np.float64)[-1]) / initial_cash - 1.0


def cagr(equity: Numbers, initial_cash: float, times: Numbers) -> float | None:
    spacing = candle_spacing_ms(times)
    if spacing is None:
        return None
    stamps = np.asarray(times, dtype=np.int64)
    years = (float(stamps[-1] - stamps[0]) + spacing) / YEAR_MS
    growth = float(np.asarray(equity, dtype=np.float64)[-1]) / initial_cash
    if growth <= 0:
        return -1.0
    exponent = math.log(growth) / years
    return math.expm1(exponent) if exponent < _MAX_EXPONENT else math.inf


def sharpe(returns: Numbers, periods_per_year: float | None) -> float | None:
    values = np.asarray(returns, dtype=np.float64)
    if values.size < 2 or not periods_per_year:
        return None
    mean = float(values.mean())
    std = float(values.std(ddof=1))
    if not std > _FLAT_STD * max(abs(mean), 1.0):
        return None
    return mean / std * math.sqrt(periods_per_year)


def sortino(returns: Numbers, periods_per_year: float | None) -> float | None:
    values = np.asarray(returns, dtype=np.float64)
    if values.size < 1 or not periods_per_year:
        return None
    losses = np.minimum(values, 0.0)
    # Not np.dot: OpenBLAS would run it on threads that then spin for a while, doubling the CPU a
    # backtest costs (and taking the core of the process beside it).
    downside = math.sqrt(float(np.square(losses).sum()) / values.size)
    if not downside > 0:
        return None
    return float(values.mean()) / downside * math.sqrt(periods_per_year)


def max_drawdown(equity: Numbers) -> float:
    values = np.asarray(equity, dtype=np.float64)
    return _max_drawdown(values, np.maximum.accumulate(values))


def max_drawdown_duration(equity: Numbers, times: Numbers) -> int:
    values = np.asarray(equity, dtype=np.float64)
    stamps = np.asarray(times, dtype=np.int64)
    return _max_drawdown_duration(values, np.maximum.accumulate(values), stamps)


def _max_drawdown(values: FloatArray, peak: FloatArray) -> float:
    with np.errstate(divide="ignore", invalid="ignore"):
        return min(float((values / peak).min()) - 1.0, 0.0)


def _max_drawdown_duration(values: FloatArray, peak: FloatArray, stamps: npt.NDArray[Any]) -> int:
    # A stretch under water starts right after a candle at its peak and ends at the first candle
    # back at the peak (or at the last candle): its duration runs from that peak candle.
    at_peak = values >= peak
    falls = np.flatnonzero(at_peak[:-1] & ~at_peak[1:])
    if not falls.size:
        return 0
    recoveries = np.flatnonzero(~at_peak[:-1] & at_peak[1:]) + 1
    ends = np.append(recoveries, values.size - 1)[: falls.size]
    return int((stamps[ends] - stamps[falls]).max())


def calmar(growth_rate: float | None, drawdown: float) -> float | None:
    if growth_rate is None or drawdown == 0:
        return None
    return growth_rate / abs(drawdown)


def win_rate(pnl: Numbers) -> float | None:
    values = np.asarray(pnl, dtype=np.float64)
    return float((values > 0).mean()) if values.size else None


def profit_factor(pnl: Numbers) -> float | None:
    """Gross profit / gross loss; ``inf`` when profitable trades met no loss, ``None`` for none."""
    values = np.asarray(pnl, dtype=np.float64)
    gross_profit = float(values[values > 0].sum())
    gross_loss = -float(values[values < 0].sum())
    if gross_loss > 0:
        return gross_profit / gross_loss
    return math.inf if gross_profit > 0 else None


def mean_or_none(values: Numbers) -> float | None:
    array = np.asarray(values, dtype=np.float64)
    return float(array.mean()) if array.size else None


def compute_metrics(
    *,
    times: Numbers,
    equity: Numbers,
    close: Numbers,
    initial_cash: float,
    trade_pnl: Numbers,
    trade_return: Numbers,
    bars_in_market: int,
    trade_funding: Numbers = (),
    liquidations: int = 0,
) -> dict[str, Any]:
    """All metrics of one run as a JSON-safe dict (keys: :data:`METRIC_KEYS`).

    ``bars_in_market`` is the number of candles during which a position was open, for
    ``exposure`` = bars_in_market / candles. ``trade_funding`` (each trade's signed funding) and
    ``liquidations`` (a count) are for perpetual swaps; their defaults are a spot run's.
    """
    values = np.asarray(equity, dtype=np.float64)
    closes = np.asarray(close, dtype=np.float64)
    pnl = np.asarray(trade_pnl, dtype=np.float64)
    per_year = candles_per_year(times)
    returns = period_returns(values)
    growth_rate = cagr(values, initial_cash, times)
    stamps = np.asarray(times, dtype=np.int64)
    peak = np.maximum.accumulate(values)
    drawdown = _max_drawdown(values, peak)
    raw: dict[str, float | None] = {
        "total_return": total_return(values, initial_cash),
        "cagr": growth_rate,
        "sharpe": sharpe(returns, per_year),
        "sortino": sortino(returns, per_year),
        "calmar": calmar(growth_rate, drawdown),
        "max_drawdown": drawdown,
        "win_rate": win_rate(pnl),
        "profit_factor": profit_factor(pnl),
        "expectancy": mean_or_none(pnl),
        "exposure": bars_in_market / values.size,
        "avg_trade_pnl": mean_or_none(pnl),
        "avg_trade_return": mean_or_none(trade_return),
        "final_equity": float(values[-1]),
        "buy_and_hold_return": float(closes[-1] / closes[0] - 1.0),
        "funding_fees": float(np.asarray(trade_funding, dtype=np.float64).sum()),
    }
    result: dict[str, Any] = {key: json_safe(value) for key, value in raw.items()}
    result["max_drawdown_duration"] = _max_drawdown_duration(values, peak, stamps)
    result["trade_count"] = int(pnl.size)
    result["liquidations"] = int(liquidations)
    return {key: result[key] for key in METRIC_KEYS}
