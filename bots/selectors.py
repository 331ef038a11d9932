"""Reads of the bots app."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
from django.db.models import FloatField, QuerySet
from django.db.models.functions import Cast

from bots.models import Candle
from bots.timeframes import timeframe_ms

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
