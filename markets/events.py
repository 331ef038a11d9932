"""Payloads of the markets' live events (``data`` of ``candles.*`` messages).

Prices travel as floats, as the candles API gives them; times are epoch ms. ``docs/websocket.md``
shows an example of each.
"""

from __future__ import annotations

from typing import TypedDict


class CandleData(TypedDict):
    """``bot.candle`` (the candle a bot's tick acted on; replay bots run on their own clock)
    and ``candles.closed`` (a market's newest closed candle, stored from the exchange).
    ``candle`` is ``[open_time_ms, open, high, low, close, volume]``, as the candles API."""

    exchange: str
    symbol: str
    timeframe: str
    candle: list[float]


class CandlesSnapshotData(TypedDict):
    """``candles.snapshot``: the most recent closed candles, oldest first."""

    exchange: str
    symbol: str
    timeframe: str
    candles: list[list[float]]


def candle_data(*, exchange: str, symbol: str, timeframe: str, candle: list[float]) -> CandleData:
    return {"exchange": exchange, "symbol": symbol, "timeframe": timeframe, "candle": candle}
