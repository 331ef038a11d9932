"""Walk-forward validation's arithmetic: the windows, one window's out-of-sample run, the
stitched out-of-sample curve and the overfitting ratio. Pure: no Django, no model.

Windows (days are calendar days of 24 hours, from the walk-forward's ``start``):

- **rolling**: window ``i``'s in-sample period is ``[start + i·oos, start + i·oos + is)`` and
  its out-of-sample period the ``oos`` days right after it;
- **anchored**: the in-sample period always starts at ``start`` and ends where window ``i``'s
  out-of-sample period starts (``start + is + i·oos``), so it grows by ``oos`` days a window.

Either way the out-of-sample periods follow one another without a gap or an overlap, and the
whole walk-forward needs ``is + windows·oos`` days from ``start``.

An out-of-sample run trades only inside its window, starting flat with the initial cash, but
its strategy sees the in-sample candles before it as history (an indicator is warmed up there,
as a bot's would be when the parameters go live); a position still open at the window's end is
closed at its last close (the engine's ``end`` exit).

Stitching compounds: window ``k``'s curve is scaled by what the windows before it made (the
stitched equity at the end of window ``k - 1`` over the initial cash), so the stitched curve is
the account that traded each window's parameters in turn. Its metrics are
:func:`backtests.metrics.compute_metrics` over the stitched candles, the trades' pnl scaled like
the curve.

The overfitting ratio is Pardo's walk-forward efficiency: the out-of-sample annualised return
over the in-sample one, where a return is annualised simply (not compounded), ``total return *
365.25 / days``, so that periods of different lengths compare by their return per unit of time
(a +2 % in 4 days is +183 % a year, not the +500 % compounding would make of it). The
in-sample annualised return is the mean over the windows of each window's best trial's total
return annualised over its in-sample period; the out-of-sample one is the stitched total return
annualised over all the out-of-sample days. The ratio is ``None`` when the in-sample return is
not positive: the in-sample search found nothing profitable, so there is no edge to measure the
out-of-sample result against. Near 1 the out-of-sample periods kept what the optimisation found;
near 0 or below they did not (overfitting).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from statistics import fmean
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import pandas as pd

from backtests.engine import BacktestResult, BacktestSettings, simulate
from backtests.engine_perp import Table
from backtests.metrics import compute_metrics

YEAR_DAYS = 365.25
MAX_WINDOWS = 20
MAX_DAYS = 3650

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Window:
    """One window's periods; each is ``[start, end)``."""

    index: int
    in_sample_start: datetime
    in_sample_end: datetime
    out_of_sample_start: datetime
    out_of_sample_end: datetime

    @property
    def in_sample_days(self) -> float:
        return (self.in_sample_end - self.in_sample_start) / timedelta(days=1)

    @property
    def out_of_sample_days(self) -> float:
        return (self.out_of_sample_end - self.out_of_sample_start) / timedelta(days=1)


def days_needed(*, in_sample_days: int, out_of_sample_days: int, count: int) -> int:
    """Days from the start to the end of the last out-of-sample period."""
    return in_sample_days + count * out_of_sample_days


def make_windows(
    start: datetime, *, in_sample_days: int, out_of_sample_days: int, count: int, anchored: bool
) -> list[Window]:
    """The ``count`` windows from ``start`` (see the module's docstring)."""
    windows = []
    for index in range(count):
        out_start = start + timedelta(days=in_sample_days + index * out_of_sample_days)
        in_start = start if anchored else out_start - timedelta(days=in_sample_days)
        out_end = out_start + timedelta(days=out_of_sample_days)
        windows.append(Window(index, in_start, out_start, out_start, out_end))
    return windows


# --- one window's out-of-sample run ------------------------------------------------------------


class Positions(Protocol):
    """A strategy instance, as far as a backtest needs one (``strategies.base.Strategy``)."""

    def positions(self, candles: pd.DataFrame) -> pd.Series: ...


def out_of_sample_run(
    candles: pd.DataFrame,
    first: int,
    strategy: Positions,
    settings: BacktestSettings,
    *,
    funding: Table | None = None,
    mark: Table | None = None,
) -> BacktestResult:
    """A backtest of ``candles[first:]`` whose target positions were computed over all of
    ``candles`` (the rows before ``first`` are the in-sample history). ``first`` must leave at
    least one candle."""
    if not 0 <= first < len(candles):
        raise ValueError("The out-of-sample period holds no candle.")
    target = strategy.positions(candles).to_numpy()
    window = candles.iloc[first:].reset_index(drop=True)
    return simulate(window, target[first:], settings, funding=funding, mark=mark)


@dataclass(frozen=True)
class Piece:
    """What stitching takes of one window's out-of-sample run (money in the window's own
    account, which started with the initial cash)."""

    times: IntArray
    equity: FloatArray
    close: FloatArray
    trade_pnl: FloatArray
    trade_return: FloatArray
    trade_funding: FloatArray
    bars_in_market: int
    liquidations: int

    @classmethod
    def of(cls, result: BacktestResult, close: npt.ArrayLike) -> Piece:
        """``result``'s piece; ``close`` are its candles' closes."""
        trades = result.trades
        exposure = float(result.metrics.get("exposure") or 0.0)
        return cls(
            times=np.asarray(result.times, dtype=np.int64),
            equity=np.asarray(result.equity, dtype=np.float64),
            close=np.asarray(close, dtype=np.float64),
            trade_pnl=trades["pnl"].to_numpy(dtype=np.float64),
            trade_return=trades["return"].to_numpy(dtype=np.float64),
            trade_funding=trades["funding"].to_numpy(dtype=np.float64),
            bars_in_market=round(exposure * result.times.size),
            liquidations=int(result.metrics.get("liquidations") or 0),
        )


@dataclass(frozen=True)
class Stitched:
    times: IntArray
    equity: FloatArray
    metrics: dict[str, Any]
    scales: list[float]  # each window's factor: the stitched equity it started from / cash


def stitch(pieces: Sequence[Piece], initial_cash: float) -> Stitched:
    """The windows' out-of-sample runs, in order, compounded into one account (see the module's
    docstring). An account that went bust stays at zero."""
    if not pieces:
        raise ValueError("Nothing to stitch: no window.")
    scale, scales = 1.0, []
    equity, pnl, funding = [], [], []
    for piece in pieces:
        scales.append(scale)
        equity.append(piece.equity * scale)
        pnl.append(piece.trade_pnl * scale)
        funding.append(piece.trade_funding * scale)
        scale = max(float(piece.equity[-1]) * scale / initial_cash, 0.0)
    times = np.concatenate([piece.times for piece in pieces])
    curve = np.concatenate(equity)
    metrics = compute_metrics(
        times=times,
        equity=curve,
        close=np.concatenate([piece.close for piece in pieces]),
        initial_cash=initial_cash,
        trade_pnl=np.concatenate(pnl),
        trade_return=np.concatenate([piece.trade_return for piece in pieces]),
        bars_in_market=sum(piece.bars_in_market for piece in pieces),
        trade_funding=np.concatenate(funding),
        liquidations=sum(piece.liquidations for piece in pieces),
    )
    return Stitched(times=times, equity=curve, metrics=metrics, scales=scales)


def thinned(times: npt.ArrayLike, values: npt.ArrayLike, max_points: int) -> list[list[float]]:
    """``[[time_ms, value], ...]`` at about ``max_points`` evenly spaced points (the first and
    the last always kept), as a chart takes a curve."""
    stamps = np.asarray(times, dtype=np.int64)
    numbers = np.asarray(values, dtype=np.float64)
    keep: Any = slice(None)
    if stamps.size > max(max_points, 2):
        keep = np.unique(np.linspace(0, stamps.size - 1, max(max_points, 2)).round().astype(int))
    return [[int(t), float(v)] for t, v in zip(stamps[keep], numbers[keep], strict=True)]


# --- the overfitting ratio ---------------------------------------------------------------------


def annualised_return(total_return: float, days: float) -> float:
    """``total_return`` over ``days``, per year, simply: ``total_return * 365.25 / days``."""
    if days <= 0:
        raise ValueError("A period of no days has no annualised return.")
    return total_return * YEAR_DAYS / days


def in_sample_annualised(results: Sequence[tuple[float, float]]) -> float | None:
    """The mean of each window's ``(total return, in-sample days)`` annualised; None without a
    window or with a window whose return is unknown (NaN)."""
    rates = [annualised_return(total, days) for total, days in results]
    if not rates or any(math.isnan(rate) for rate in rates):
        return None
    return fmean(rates)


def overfitting_ratio(in_sample: float | None, out_of_sample: float | None) -> float | None:
    """The walk-forward efficiency: ``out_of_sample / in_sample`` (both annualised returns);
    None when the in-sample return is not positive (nothing to keep) or either is unknown."""
    if in_sample is None or out_of_sample is None or not in_sample > 0:
        return None
    return out_of_sample / in_sample
