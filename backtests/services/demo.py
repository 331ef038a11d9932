"""The demo trader's finished backtest, for ``make run``'s seed."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from decimal import Decimal

from accounts.models import User
from backtests.models import Backtest, RunStatus
from backtests.services.backtests import backtest_create, backtest_execute
from backtests.spec import RunSpec
from markets.candles import SAMPLE_TIMEFRAME
from markets.models import Candle
from tradingbot.logconfig import context

logger = logging.getLogger(__name__)

DEMO_MARKET = {"exchange": "bitget", "symbol": "BTC/USDT", "timeframe": SAMPLE_TIMEFRAME}
DEMO_STRATEGY = "ma_cross"
DEMO_PARAMS = {"fast": 10, "slow": 30, "ma": "sma"}


def demo_backtest_seed(*, trader: User) -> Backtest:
    """MA Cross 10/30 over every stored sample candle, run here and now (no worker is up yet).

    Idempotent: the trader's finished demo backtest is reused.
    """
    existing = Backtest.objects.filter(
        user=trader, status=RunStatus.DONE, **DEMO_MARKET, strategy_id=DEMO_STRATEGY
    ).first()
    if existing is not None:
        return existing
    times = Candle.objects.filter(**DEMO_MARKET).order_by("open_time")
    first, last = times.values_list("open_time", flat=True).first(), times.last()
    if first is None or last is None:
        raise ValueError("No demo candles stored: load the sample first")
    spec = RunSpec(
        strategy=DEMO_STRATEGY,
        params=DEMO_PARAMS,
        exchange=DEMO_MARKET["exchange"],
        symbol=DEMO_MARKET["symbol"],
        timeframe=DEMO_MARKET["timeframe"],
        initial_cash=Decimal(10_000),
        fee_rate=Decimal("0.001"),
    )
    backtest = backtest_create(
        user=trader,
        spec=spec,
        start=datetime.fromtimestamp(first / 1000, tz=UTC),
        end=datetime.fromtimestamp((last.open_time + 1) / 1000, tz=UTC),
        enqueue=False,
    )
    backtest_execute(backtest_id=backtest.pk, worker="seed")
    backtest.refresh_from_db()
    logger.info(
        "demo.backtest_seeded", extra=context(backtest_id=backtest.pk, status=backtest.status)
    )
    return backtest
