"""Payloads of the markets' live events (``data`` of ``candles.*`` messages).

Prices travel as floats, as the candles API gives them; times are epoch ms. ``docs/websocket.md``
shows an example of each.
"""

from __future__ import annotations

from typing import TypedDict

from markets.models import ExchangeAccount
from markets.selectors import candles_recent, check_symbol
from tradingbot.errors import AppError
from tradingbot.events import market_channel, market_group

CANDLES = "candles"  # the live channel kind of a market's candles
SNAPSHOT_CANDLES = 200


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


def candles_channel(exchange: str, symbol: str, timeframe: str) -> str:
    return market_channel(CANDLES, exchange, symbol, timeframe)


def candles_group(exchange: str, symbol: str, timeframe: str) -> str:
    return market_group(CANDLES, exchange, symbol, timeframe)


def candles_snapshot(*, exchange: str, symbol: str, timeframe: str) -> CandlesSnapshotData:
    """The most recent closed candles of a market: any user may watch any market the exchange
    lists (candles are public); ``unknown_symbol`` (AppError) for one it does not."""
    if exchange not in ExchangeAccount.Exchange.values:
        raise AppError("unknown_symbol", f"unknown exchange {exchange!r}", 400)
    check_symbol(exchange=exchange, symbol=symbol)
    candles = candles_recent(
        exchange=exchange, symbol=symbol, timeframe=timeframe, limit=SNAPSHOT_CANDLES
    )
    return {"exchange": exchange, "symbol": symbol, "timeframe": timeframe, "candles": candles}
