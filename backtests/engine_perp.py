"""The perpetual-swap inputs of the backtest simulator: funding events, mark-price candles and
liquidation prices, as whole arrays. Pure numpy, no Django; ``backtests.engine`` uses it and its
docstring states the rules ("Perpetual swaps").
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, TypeAlias

import numpy as np
import numpy.typing as npt
import pandas as pd

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
Table: TypeAlias = "pd.DataFrame | Mapping[str, npt.ArrayLike]"
MARK_COLUMNS = ("open", "high", "low", "close")


def liquidation_levels(
    side: FloatArray, entry_price: FloatArray, leverage: float, maintenance_rate: float
) -> FloatArray:
    """``markets.perp.liquidation_price`` for whole arrays of trades, without a taker fee:
    long ``E (1 - 1/L) / (1 - m)``, short ``E (1 + 1/L) / (1 + m)`` (``side`` is +1 or -1). A
    long at leverage 1 gets 0: never reached, as prices are positive."""
    return entry_price * (1.0 - side / leverage) / (1.0 - side * maintenance_rate)


@dataclass(frozen=True)
class Funding:
    """The funding events inside the candles' span, as what one unit of a LONG is credited.

    ``cumulative[k]`` is the sum of ``-mark * rate`` over the first ``k`` events (so
    ``cumulative[0] == 0``); a short's credit is its negation (``funding_payment`` is
    ``-side * qty * mark * rate``).
    """

    times: IntArray
    cumulative: FloatArray

    def long_credit(self, after: IntArray, upto: IntArray) -> FloatArray:
        """Per unit of a long, the funding of the events with ``after < time <= upto``."""
        return self.long_credit_to(upto, inclusive=True) - self.long_credit_to(
            after, inclusive=True
        )

    def long_credit_to(self, times: IntArray, *, inclusive: bool) -> FloatArray:
        """Per unit of a long, the funding of every event up to each of ``times``."""
        side: Literal["left", "right"] = "right" if inclusive else "left"
        index: IntArray = np.searchsorted(self.times, times, side=side)
        return self.cumulative[index]


NO_FUNDING = Funding(np.empty(0, dtype=np.int64), np.zeros(1))


def _ints(table: Table, name: str, what: str) -> IntArray:
    if name not in table:
        raise ValueError(f"{what} lack the column {name}")
    return np.asarray(table[name], dtype=np.int64)


def _floats(table: Table, name: str, what: str) -> FloatArray:
    if name not in table:
        raise ValueError(f"{what} lack the column {name}")
    return np.asarray(table[name], dtype=np.float64)


def align_marks(
    mark: Table, times: IntArray, prices: Mapping[str, FloatArray]
) -> tuple[dict[str, FloatArray], BoolArray]:
    """Mark-price candles on the trade candles' rows, matched by ``open_time``; a trade candle
    without a mark row keeps its own prices. Also which rows have a mark candle."""
    mark_times = _ints(mark, "open_time", "mark candles")
    if mark_times.ndim != 1:
        raise ValueError("mark candles must be one row per candle")
    if mark_times.size > 1 and not bool((np.diff(mark_times) > 0).all()):
        raise ValueError("mark candle open_time must be strictly ascending")
    _check_same_timeframe(mark_times, times)
    where = np.minimum(np.searchsorted(mark_times, times), max(mark_times.size - 1, 0))
    found = mark_times[where] == times if mark_times.size else np.zeros(times.size, np.bool_)
    aligned = {}
    for name in MARK_COLUMNS:
        column = _floats(mark, name, "mark candles")
        if column.shape != mark_times.shape:
            raise ValueError(f"mark candle column {name} has {column.size} rows")
        if column.size and not (column.min() > 0 and column.max() < math.inf):
            raise ValueError(f"mark candle column {name} must be positive and finite")
        mine = column[where] if column.size else prices[name]
        aligned[name] = np.where(found, mine, prices[name])
    return aligned, found


def _check_same_timeframe(mark_times: IntArray, times: IntArray) -> None:
    # A mark candle of another timeframe has another range: its high/low would trigger wrongly.
    if mark_times.size < 2 or times.size < 2:
        return
    if int(np.diff(mark_times).min()) != int(np.diff(times).min()):
        raise ValueError("mark candles must have the timeframe of the candles")


def funding_events(
    funding: Table | None,
    times: IntArray,
    mark_open: FloatArray,
    trade_close: FloatArray,
) -> Funding:
    """The funding rows whose time lies in ``[times[0], times[-1]]``, each at its mark price:
    the row's ``mark_price`` when given (not NaN), else the open of the candle with that
    open_time (its mark candle's open, which ``mark_open`` holds when there is one), else the
    close of the last candle before it."""
    if funding is None:
        return NO_FUNDING
    event_times = _ints(funding, "time", "funding rows")
    rates = _floats(funding, "rate", "funding rows")
    given = (
        _floats(funding, "mark_price", "funding rows")
        if "mark_price" in funding
        else np.full(event_times.shape, np.nan)
    )
    _check_funding(event_times, rates, given)
    inside = (event_times >= times[0]) & (event_times <= times[-1])
    event_times, rates, given = event_times[inside], rates[inside], given[inside]
    row = np.searchsorted(times, event_times)  # the candle at t, or the one after it
    at_open = times[np.minimum(row, times.size - 1)] == event_times
    fallback = np.where(
        at_open, mark_open[np.minimum(row, times.size - 1)], trade_close[np.maximum(row - 1, 0)]
    )
    marks = np.where(np.isnan(given), fallback, given)
    return Funding(event_times, np.concatenate(([0.0], np.cumsum(-marks * rates))))


def _check_funding(times: IntArray, rates: FloatArray, marks: FloatArray) -> None:
    if times.ndim != 1 or rates.shape != times.shape or marks.shape != times.shape:
        raise ValueError("funding columns must be one row per funding time, of equal length")
    if times.size > 1 and not bool((np.diff(times) > 0).all()):
        raise ValueError("funding time must be strictly ascending")
    if not bool(np.isfinite(rates).all()):
        raise ValueError("funding rate must be finite")
    known = marks[~np.isnan(marks)]
    if known.size and not (known.min() > 0 and known.max() < math.inf):
        raise ValueError("funding mark_price must be positive and finite (or NaN for unknown)")
