"""Fixtures for backtest, sweep and schedule tests: real candles and a synced strategy catalogue.

``sample_candles`` stores the first ``SAMPLE_ROWS`` candles of the shipped real BTC/USDT 5m file
as bitget BTC/USDT 5m (about two weeks of market data).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from bots.candle_csv import read_candle_file
from bots.market_data import SAMPLE_PATH, SAMPLE_TIMEFRAME, candles_import
from strategies.services import strategy_catalogue_sync

SAMPLE_ROWS = 4000
EXCHANGE, SYMBOL, TIMEFRAME = "bitget", "BTC/USDT", SAMPLE_TIMEFRAME


@dataclass(frozen=True)
class SampleMarket:
    exchange: str
    symbol: str
    timeframe: str
    start: datetime  # the first candle's open time
    end: datetime  # just after the last candle's open time
    count: int

    def period(self) -> dict[str, Any]:
        """The market and period fields of a create request, as the API takes them."""
        return {
            "exchange": self.exchange,
            "symbol": self.symbol,
            "timeframe": self.timeframe,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
        }


def _as_datetime(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


@pytest.fixture
def strategy_catalogue(db: Any) -> None:
    """The catalogue rows (a transactional test's flush removes the ones migrate created)."""
    strategy_catalogue_sync()


@pytest.fixture
def sample_candles(db: Any, strategy_catalogue: None) -> SampleMarket:
    rows = read_candle_file(SAMPLE_PATH, timeframe=TIMEFRAME).rows[:SAMPLE_ROWS]
    candles_import(exchange=EXCHANGE, symbol=SYMBOL, timeframe=TIMEFRAME, rows=rows)
    return SampleMarket(
        exchange=EXCHANGE,
        symbol=SYMBOL,
        timeframe=TIMEFRAME,
        start=_as_datetime(rows[0].open_time),
        end=_as_datetime(rows[-1].open_time + 1),
        count=len(rows),
    )
