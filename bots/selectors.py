"""Reads of the bots app."""

from __future__ import annotations

import time

from bots.models import Candle
from bots.timeframes import timeframe_ms

CANDLE_FIELDS = ("open_time", "open", "high", "low", "close", "volume")


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
        .values_list(*CANDLE_FIELDS)[:limit]
    )
    return [[row[0], *(float(value) for value in row[1:])] for row in reversed(list(rows))]
