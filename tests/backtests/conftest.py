"""Fixtures for backtest, sweep and schedule tests: real candles and a synced strategy catalogue.

``sample_candles`` stores the first ``SAMPLE_ROWS`` candles of the shipped real BTC/USDT 5m file
as bitget BTC/USDT 5m (about two weeks of market data).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import pytest
from django.db import connection
from django.db.models import Count, Max, Min

from backtests.models import RunStatus, Sweep, epoch_ms
from markets import selectors as market_selectors
from markets.candle_csv import read_candle_file
from markets.candles import SAMPLE_PATH, SAMPLE_TIMEFRAME
from markets.models import Candle
from markets.perp_data import perp_sample_load
from strategies.services import strategy_catalogue_sync
from tests.backtests.run_helpers import run_sweep

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

    def frame(self, run: Any = None) -> pd.DataFrame:
        """The stored candles as the engine takes them: over the period of ``run`` (a backtest,
        a sweep), or all of them."""
        return market_selectors.candles_frame(
            exchange=self.exchange,
            symbol=self.symbol,
            timeframe=self.timeframe,
            start_ms=run.start_ms if run else epoch_ms(self.start),
            end_ms=run.end_ms if run else epoch_ms(self.end),
        )


def _as_datetime(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


@pytest.fixture
def strategy_catalogue(db: Any) -> None:
    """The catalogue rows (a transactional test's flush removes the ones migrate created)."""
    strategy_catalogue_sync()


@functools.cache
def _sample_rows() -> list[Any]:
    return read_candle_file(SAMPLE_PATH, timeframe=TIMEFRAME).rows[:SAMPLE_ROWS]


@functools.cache
def _sample_insert(vendor: str) -> tuple[str, list[tuple[Any, ...]]]:
    """One INSERT of the sample candles and its rows, with the values exactly as the ORM
    prepares them for this database: built once per process, sent by every test that needs
    them (building 4,000 model instances per test was most of the backtests tests' time)."""
    fields = [field for field in Candle._meta.concrete_fields if not field.primary_key]
    quote = connection.ops.quote_name
    columns = ", ".join(quote(field.column) for field in fields)
    marks = ", ".join(["%s"] * len(fields))
    table = quote(Candle._meta.db_table)
    statement = f"INSERT INTO {table} ({columns}) VALUES ({marks})"  # noqa: S608 - the model's names
    candles = (
        Candle(exchange=EXCHANGE, symbol=SYMBOL, timeframe=TIMEFRAME, **row._asdict())
        for row in _sample_rows()
    )
    values = [
        tuple(
            field.get_db_prep_save(getattr(candle, field.attname), connection) for field in fields
        )
        for candle in candles
    ]
    return statement, values


@pytest.fixture
def sample_candles(db: Any, strategy_catalogue: None) -> SampleMarket:
    # Stored in one insert: the import service's row-by-row checks are tested in tests/markets
    # and would cost a second or more per test here.
    rows = _sample_rows()
    statement, values = _sample_insert(connection.vendor)
    with connection.cursor() as cursor:
        cursor.executemany(statement, values)
    return SampleMarket(
        exchange=EXCHANGE,
        symbol=SYMBOL,
        timeframe=TIMEFRAME,
        start=_as_datetime(rows[0].open_time),
        end=_as_datetime(rows[-1].open_time + 1),
        count=len(rows),
    )


# --- the admin's ---------------------------------------------------------------------------------


@pytest.fixture
def done_sweep(
    user: Any, sample_candles: SampleMarket, django_capture_on_commit_callbacks: Any
) -> Sweep:
    with django_capture_on_commit_callbacks(execute=False):
        sweep = run_sweep(user, sample_candles)
    assert sweep.status == RunStatus.DONE
    return sweep


# --- the perpetual swap's ----------------------------------------------------------------------


@pytest.fixture
def perp_candles(db: Any, strategy_catalogue: None) -> SampleMarket:
    """The shipped XRP/USDT:USDT perp sample, stored as ``make run`` stores it: 5m trade candles
    (1,999, seven days), 1h and 8h mark candles and the funding rates."""
    symbol = perp_sample_load().symbol
    stored = Candle.objects.filter(exchange=EXCHANGE, symbol=symbol, timeframe="5m")
    first, last, count = stored.aggregate(Min("open_time"), Max("open_time"), Count("id")).values()
    return SampleMarket(
        exchange=EXCHANGE,
        symbol=symbol,
        timeframe="5m",
        start=_as_datetime(first),
        end=_as_datetime(last + 1),
        count=count,
    )
