"""Fixtures shared by the bots tests: the stretch of candles the admin and page tests trade on
and the strategies the tick tests control."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from markets.exchanges.markets import forget_catalogs
from markets.models import Candle
from markets.perp_data import perp_sample_load
from strategies.services import strategy_catalogue_sync
from tests.bots.bot_helpers import COUNT, FIRST, store_candles, strategies_for_tests
from tests.bots.perp_parity_helpers import EXCHANGE, TIMEFRAME, XRP


@pytest.fixture
def rows(db: Any) -> list[Any]:
    """Rows ``FIRST .. FIRST + COUNT`` of the sample stored, the strategies catalogued. A
    module whose bots need another stretch defines its own ``rows``."""
    strategy_catalogue_sync()
    return store_candles(FIRST, COUNT)


@pytest.fixture
def scripted_strategies(db: Any) -> Iterator[None]:
    """``Scripted`` and ``Exploding`` active and catalogued (see ``bot_helpers``)."""
    with strategies_for_tests():
        yield


@pytest.fixture
def xrp(db: Any) -> Iterator[list[int]]:
    """The shipped XRP/USDT:USDT perp sample stored, the strategies catalogued; the open times
    of its 5m candles (the perp bots' tests)."""
    forget_catalogs()
    perp_sample_load()
    strategy_catalogue_sync()
    yield list(
        Candle.objects.filter(exchange=EXCHANGE, symbol=XRP, timeframe=TIMEFRAME)
        .order_by("open_time")
        .values_list("open_time", flat=True)
    )
    forget_catalogs()
