"""Technical indicators: vectorised, causal, pure pandas/numpy.

Every function takes pandas Series (or anything ``pd.Series`` accepts, e.g. a numpy array or a
list) and returns float Series on the same index. **Causal**: the value at row ``i`` is computed
from rows ``<= i`` only, so changing a later price never changes an earlier value. Rows where an
indicator is not yet defined (its warm-up) are NaN; strategies treat NaN as "no opinion".

Smoothing conventions (they decide the warm-up length and the first values, so they are fixed):

- ``sma``: mean of the last ``n`` values; first defined at row ``n - 1``.
- ``ema``: ``y[t] = alpha * x[t] + (1 - alpha) * y[t-1]`` with ``alpha = 2 / (n + 1)``, SEEDED with
  the simple mean of the first ``n`` values (the textbook / TA-Lib convention), so it is first
  defined at row ``n - 1`` (counted from the input's first non-NaN value), not at row 0 as
  ``Series.ewm(adjust=False)`` alone would be.
- Wilder's smoothing (``rsi``, ``atr``): the same recursion with ``alpha = 1 / n``, also seeded with
  the simple mean of the first ``n`` values.

Leading NaNs in an input are skipped (``ema`` of a MACD line starts after the line does). The
inputs are assumed to have no NaN after their first value; if one appears, ``ema`` and Wilder's
smoothing carry the previous value over it, and ``sma``/``bollinger`` are NaN for ``n`` rows.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def _series(values: Any, name: str = "series") -> pd.Series:
    if isinstance(values, pd.Series):
        return values.astype(float)
    return pd.Series(np.asarray(values, dtype=float), name=name)


def _window(n: int, name: str = "n") -> int:
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ValueError(f"{name} must be a positive integer, got {n!r}")
    return int(n)


def _seeded_smoothing(series: pd.Series, n: int, alpha: float) -> pd.Series:
    """``y[t] = alpha * x[t] + (1 - alpha) * y[t-1]``, seeded at the n-th valid value with the
    mean of the first ``n`` valid values; NaN before the seed."""
    values = series.to_numpy(dtype=float, copy=True)
    valid = np.flatnonzero(~np.isnan(values))
    if len(valid) < n:
        return pd.Series(np.nan, index=series.index, dtype=float)
    seed_at = valid[n - 1]
    seed = values[valid[:n]].mean()
    values[:seed_at] = np.nan
    values[seed_at] = seed
    smoothed = pd.Series(values, index=series.index).ewm(alpha=alpha, adjust=False, ignore_na=True)
    return smoothed.mean()


def sma(series: Any, n: int) -> pd.Series:
    """Simple moving average: ``sma[i] = mean(x[i-n+1 .. i])``; NaN for the first ``n - 1`` rows."""
    n = _window(n)
    return _series(series).rolling(n, min_periods=n).mean()


def ema(series: Any, n: int) -> pd.Series:
    """Exponential moving average, ``alpha = 2 / (n + 1)``, seeded with the SMA of the first ``n``
    values: ``ema[n-1] = mean(x[0..n-1])``, then ``ema[t] = alpha * x[t] + (1 - alpha) * ema[t-1]``.
    NaN before row ``n - 1`` (counted from the first non-NaN input)."""
    n = _window(n)
    return _seeded_smoothing(_series(series), n, 2.0 / (n + 1))


def rsi(close: Any, n: int = 14) -> pd.Series:
    """Relative Strength Index with Wilder's smoothing, 0..100.

    ``d[t] = close[t] - close[t-1]``; ``gain = max(d, 0)``, ``loss = max(-d, 0)``. The averages are
    seeded at row ``n`` with the mean of the first ``n`` changes (rows 1..n), then
    ``avg[t] = (avg[t-1] * (n - 1) + x[t]) / n``. ``rsi = 100 * avg_gain / (avg_gain + avg_loss)``
    (the same as ``100 - 100 / (1 + avg_gain / avg_loss)``): 100 when there were no losses, 50 when
    the price did not move at all. NaN for rows ``0 .. n - 1``.
    """
    n = _window(n)
    delta = _series(close, "close").diff()
    avg_gain = _seeded_smoothing(delta.clip(lower=0.0), n, 1.0 / n)
    avg_loss = _seeded_smoothing((-delta).clip(lower=0.0), n, 1.0 / n)
    total = avg_gain + avg_loss
    with np.errstate(invalid="ignore", divide="ignore"):
        value = 100.0 * avg_gain / total
    return value.where(total != 0, 50.0).rename("rsi")


def macd(close: Any, fast: int = 12, slow: int = 26, signal: int = 9) -> pd.DataFrame:
    """MACD: ``macd = ema(close, fast) - ema(close, slow)``, ``signal = ema(macd, signal)`` (seeded
    from the first ``signal`` defined MACD values), ``hist = macd - signal``.

    With SMA-seeded EMAs the MACD line is defined from row ``max(fast, slow) - 1`` and the signal
    and histogram from row ``max(fast, slow) + signal - 2`` (33 for 12/26/9).
    """
    fast, slow, signal = _window(fast, "fast"), _window(slow, "slow"), _window(signal, "signal")
    prices = _series(close, "close")
    line = ema(prices, fast) - ema(prices, slow)
    signal_line = ema(line, signal)
    return pd.DataFrame({"macd": line, "signal": signal_line, "hist": line - signal_line})


def bollinger(close: Any, n: int = 20, k: float = 2.0) -> pd.DataFrame:
    """Bollinger bands: ``mid = sma(close, n)``, ``upper/lower = mid ± k * std``.

    ``std`` is the POPULATION standard deviation (``ddof=0``, as Bollinger defines it) of the same
    ``n`` closes. NaN for the first ``n - 1`` rows."""
    n = _window(n)
    prices = _series(close, "close")
    rolling = prices.rolling(n, min_periods=n)
    mid = rolling.mean()
    std = rolling.std(ddof=0)
    return pd.DataFrame({"mid": mid, "upper": mid + k * std, "lower": mid - k * std})


def true_range(high: Any, low: Any, close: Any) -> pd.Series:
    """``tr[t] = max(high - low, |high - close[t-1]|, |low - close[t-1]|)``; ``tr[0] = high - low``
    (no previous close yet)."""
    high_s, low_s, close_s = _series(high, "high"), _series(low, "low"), _series(close, "close")
    previous = close_s.shift(1)
    ranges = np.fmax(
        (high_s - low_s).to_numpy(),
        np.fmax((high_s - previous).abs().to_numpy(), (low_s - previous).abs().to_numpy()),
    )
    return pd.Series(ranges, index=high_s.index, name="tr")


def atr(high: Any, low: Any, close: Any, n: int = 14) -> pd.Series:
    """Average True Range with Wilder's smoothing: seeded at row ``n - 1`` with the mean of
    ``tr[0..n-1]`` (``tr[0] = high - low``, as Wilder does), then
    ``atr[t] = (atr[t-1] * (n - 1) + tr[t]) / n``. NaN for the first ``n - 1`` rows."""
    n = _window(n)
    return _seeded_smoothing(true_range(high, low, close), n, 1.0 / n).rename("atr")


def latch(enter: Any, exit: Any) -> pd.Series:
    """A held state (signal helper): True from a row where ``enter`` is true until a later row
    where ``exit`` is true (that row is False again); ``enter`` wins when both are true; False
    before any entry. Causal; NaN/None in the inputs count as False."""
    enter_s = _series(enter, "enter").fillna(0.0).astype(bool)
    exit_s = _series(exit, "exit").fillna(0.0).astype(bool)
    state = pd.Series(np.nan, index=enter_s.index)
    state[exit_s.to_numpy()] = 0.0
    state[enter_s.to_numpy()] = 1.0
    return state.ffill().fillna(0.0).astype(bool)
