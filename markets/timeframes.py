"""Timeframes and resampling: pure functions, no Django.

Candles are keyed by their open time (UTC, epoch milliseconds, as ccxt gives them). A bucket of a
higher timeframe is emitted only when every lower-timeframe candle in it is present, so an
incomplete bucket (the still-open hour, or one with a gap) never looks like a real candle.
"""

from __future__ import annotations

import pandas as pd

MINUTE_MS = 60_000
TIMEFRAME_MS: dict[str, int] = {
    "1m": MINUTE_MS,
    "5m": 5 * MINUTE_MS,
    "15m": 15 * MINUTE_MS,
    "1h": 60 * MINUTE_MS,
    "4h": 240 * MINUTE_MS,
    "1d": 1440 * MINUTE_MS,
}
TIMEFRAMES = tuple(TIMEFRAME_MS)
# Mark-price candles come in the candle timeframes and in the funding interval as well.
FUNDING_INTERVAL_MS = 8 * 60 * MINUTE_MS
MARK_TIMEFRAME_MS: dict[str, int] = {**TIMEFRAME_MS, "8h": FUNDING_INTERVAL_MS}
OHLCV_COLUMNS = ["open_time", "open", "high", "low", "close", "volume"]


class TimeframeError(ValueError):
    pass


def timeframe_ms(timeframe: str) -> int:
    try:
        return TIMEFRAME_MS[timeframe]
    except KeyError:
        raise TimeframeError(
            f"unknown timeframe {timeframe!r}; use one of {', '.join(TIMEFRAMES)}"
        ) from None


def resample(candles: pd.DataFrame, *, source: str, target: str) -> pd.DataFrame:
    """Aggregate ``source`` candles into complete ``target`` candles.

    ``candles`` has the columns ``OHLCV_COLUMNS`` (open_time in epoch ms, any order). Buckets are
    aligned to the epoch (so 1d buckets start at 00:00 UTC) and emitted only when they contain all
    ``target/source`` lower candles. Returns the same columns, ascending by open_time.
    """
    source_ms, target_ms = timeframe_ms(source), timeframe_ms(target)
    if target_ms <= source_ms or target_ms % source_ms:
        raise TimeframeError(f"cannot resample {source} into {target}")
    if candles.empty:
        return pd.DataFrame(columns=OHLCV_COLUMNS)
    frame = candles.sort_values("open_time")
    bucket = frame["open_time"] - frame["open_time"] % target_ms
    grouped = frame.groupby(bucket, sort=True)
    result = pd.DataFrame(
        {
            "open": grouped["open"].first(),
            "high": grouped["high"].max(),
            "low": grouped["low"].min(),
            "close": grouped["close"].last(),
            "volume": grouped["volume"].sum(),
            "count": grouped["open_time"].nunique(),
        }
    )
    complete = result[result["count"] == target_ms // source_ms].drop(columns="count")
    complete.index.name = "open_time"
    return complete.reset_index()[OHLCV_COLUMNS]
