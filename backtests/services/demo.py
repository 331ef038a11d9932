"""The demo trader's finished backtests, for ``make run``'s seed: one of the spot sample and one
of the perpetual-swap sample (shorts, leverage 3, funding)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from accounts.models import User
from backtests.models import Backtest, RunStatus
from backtests.services.backtests import backtest_create, backtest_execute
from backtests.spec import RunSpec
from markets.candles import SAMPLE_TIMEFRAME
from markets.models import Candle
from markets.perp_data import PERP_SAMPLE_SYMBOL
from tradingbot.logconfig import context

logger = logging.getLogger(__name__)

DEMO_MARKET = {"exchange": "bitget", "symbol": "BTC/USDT", "timeframe": SAMPLE_TIMEFRAME}
DEMO_STRATEGY = "ma_cross"
DEMO_PARAMS = {"fast": 10, "slow": 30, "ma": "sma"}
DEMO_PERP_MARKET = {"exchange": "bitget", "symbol": PERP_SAMPLE_SYMBOL, "timeframe": "5m"}
DEMO_PERP_PARAMS = {**DEMO_PARAMS, "allow_short": True}
DEMO_PERP_LEVERAGE = 3


def demo_backtest_seed(*, trader: User) -> Backtest:
    """MA Cross 10/30 over every stored BTC/USDT sample candle, run here and now (no worker is
    up yet). Idempotent: the trader's finished demo backtest is reused."""
    return _seed(trader, DEMO_MARKET, DEMO_PARAMS, fee_rate=Decimal("0.001"))


def demo_perp_backtest_seed(*, trader: User) -> Backtest:
    """MA Cross 10/30, long and short at leverage 3, over the stored XRP/USDT:USDT perp sample,
    with its funding (the market's own taker fee). Idempotent, as :func:`demo_backtest_seed`."""
    return _seed(
        trader, DEMO_PERP_MARKET, DEMO_PERP_PARAMS, fee_rate=Decimal("0.0006"),
        leverage=DEMO_PERP_LEVERAGE,
    )  # fmt: skip


def _seed(
    trader: User, market: dict[str, str], params: dict[str, Any], *, fee_rate: Decimal,
    leverage: int = 1,
) -> Backtest:  # fmt: skip
    existing = Backtest.objects.filter(
        user=trader, status=RunStatus.DONE, **market, strategy_id=DEMO_STRATEGY
    ).first()
    if existing is not None:
        return existing
    times = Candle.objects.filter(**market).order_by("open_time")
    first, last = times.values_list("open_time", flat=True).first(), times.last()
    if first is None or last is None:
        raise ValueError(f"No {market['symbol']} demo candles stored: load the sample first")
    spec = RunSpec(
        strategy=DEMO_STRATEGY,
        exchange=market["exchange"],
        symbol=market["symbol"],
        timeframe=market["timeframe"],
        params=params,
        initial_cash=Decimal(10_000),
        fee_rate=fee_rate,
        leverage=leverage,
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
        "demo.backtest_seeded",
        extra=context(backtest_id=backtest.pk, symbol=backtest.symbol, status=backtest.status),
    )
    return backtest
