"""Windows of closed candles for the bots: the last N candles of a market up to its newest closed
one, shared read-only between the bots of that market in this process.

A closed candle never changes, so a window that reaches its newest candle is read from the
database once and kept (least recently used first out).
"""

from __future__ import annotations

from collections import OrderedDict
from functools import cache

import pandas as pd

from markets.candles import candles_fetch_from_exchange
from markets.exchanges.ccxt_exchange import CcxtExchange
from markets.selectors import candles_frame
from markets.timeframes import timeframe_ms

# Candle windows by (exchange, symbol, timeframe, first open, newest open), newest last.
_windows: OrderedDict[tuple[str, str, str, int, int], pd.DataFrame] = OrderedDict()
WINDOW_CACHE_SIZE = 64


def forget_candle_windows() -> None:
    """Drop the cached windows (tests that rewrite stored candles)."""
    _windows.clear()


@cache
def public_exchange(exchange_id: str) -> CcxtExchange:
    """One keyless ccxt client per exchange and process, for public market data."""
    return CcxtExchange.public(exchange_id)


def candle_window(
    *, exchange: str, symbol: str, timeframe: str, size: int, newest: int, live_now_ms: int | None
) -> pd.DataFrame:
    """The last ``size`` candles up to the one opened at ``newest``, oldest first.

    ``live_now_ms`` (the wall clock, for a live market) fetches the missing candles from the
    exchange first; ``None`` (a replay) reads the stored ones only.
    """
    step = timeframe_ms(timeframe)
    start = newest - (size - 1) * step
    key = (exchange, symbol, timeframe, start, newest)
    cached = _windows.get(key)
    if cached is not None:
        _windows.move_to_end(key)
        return cached
    if live_now_ms is not None:
        candles_fetch_from_exchange(
            exchange=public_exchange(exchange), symbol=symbol, timeframe=timeframe,
            since_ms=start, until_ms=newest + step, now_ms=live_now_ms,
        )  # fmt: skip
    frame = candles_frame(
        exchange=exchange, symbol=symbol, timeframe=timeframe, start_ms=start, end_ms=newest + 1
    )
    if not frame.empty and int(frame["open_time"].iloc[-1]) == newest:
        _windows[key] = frame  # complete up to newest: it cannot change any more
        if len(_windows) > WINDOW_CACHE_SIZE:
            _windows.popitem(last=False)
    return frame
