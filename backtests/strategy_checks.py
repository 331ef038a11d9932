"""The overfitting guards (``strategies.checks``) on stored candles, for ``manage.py
strategy_check`` and the strategy page's button. A read: nothing is written.

The analyses are pure and live with the strategies; reading candles needs ``markets``, which the
strategies app may not import, so this room (which may import both) reads them. The candles are
the last ``limit`` closed candles of a market: the one asked for, else the market with the most
stored candles, else (nothing stored at all) the shipped BTC/USDT 5m sample file
(``markets.candles.SAMPLE_PATH``). Each check is logged once (``strategy.checked``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
from django.db.models import Count

from markets import selectors as market_selectors
from markets.candle_csv import read_candle_file
from markets.candles import SAMPLE_PATH, SAMPLE_TIMEFRAME
from markets.models import Candle
from strategies.checks import CheckInputError, CheckSettings, StrategyCheck, strategy_check
from strategies.registry import active
from tradingbot.logconfig import context

logger = logging.getLogger(__name__)

# The page's bound: enough for both analyses with their default settings, small enough for the
# request to answer in well under a second.
PAGE_CANDLES = 2000
SAMPLE_EXCHANGE, SAMPLE_SYMBOL = "bitget", "BTC/USDT"


class CheckDataError(ValueError):
    """No candles to check on: an unknown market, or too few candles stored."""


@dataclass(frozen=True)
class CheckMarket:
    exchange: str
    symbol: str
    timeframe: str

    def __str__(self) -> str:
        return f"{self.exchange} {self.symbol} {self.timeframe}"

    @property
    def value(self) -> str:
        """The market as a form's value: ``exchange|symbol|timeframe``."""
        return f"{self.exchange}|{self.symbol}|{self.timeframe}"

    @classmethod
    def parse(cls, value: str) -> CheckMarket:
        parts = value.split("|")
        if len(parts) != 3 or not all(parts):
            raise CheckDataError(f"{value!r} is not a market: write exchange|symbol|timeframe")
        return cls(*parts)


@dataclass(frozen=True)
class CheckCandles:
    market: CheckMarket
    source: str  # "stored" or "the shipped sample file"
    frame: pd.DataFrame


def check_market_default() -> CheckMarket | None:
    """The market with the most stored candles (then by name), None when none is stored."""
    row = (
        Candle.objects.values("exchange", "symbol", "timeframe")
        .annotate(count=Count("id"))
        .order_by("-count", "exchange", "symbol", "timeframe")
        .first()
    )
    return None if row is None else CheckMarket(row["exchange"], row["symbol"], row["timeframe"])


def check_markets() -> list[CheckMarket]:
    """Every market with stored candles, by name (the page's choice)."""
    return [
        CheckMarket(row["exchange"], row["symbol"], row["timeframe"])
        for row in market_selectors.stored_candle_ranges()
    ]


def check_candles(*, market: CheckMarket | None, limit: int) -> CheckCandles:
    """The last ``limit`` closed candles of ``market`` (the default one when None: see the
    module docstring). Raises :class:`CheckDataError` when the market has no candles stored."""
    if market is None:
        market = check_market_default()
        if market is None:
            return _sample_candles(limit)
    rows = market_selectors.candles_recent(
        exchange=market.exchange, symbol=market.symbol, timeframe=market.timeframe, limit=limit
    )
    if not rows:
        raise CheckDataError(f"no candles are stored for {market}")
    values = np.array(rows, dtype=np.float64)
    frame = pd.DataFrame(values, columns=list(market_selectors.FRAME_COLUMNS))
    frame["open_time"] = values[:, 0].astype(np.int64)
    return CheckCandles(market=market, source="stored", frame=frame)


def _sample_candles(limit: int) -> CheckCandles:
    rows = read_candle_file(SAMPLE_PATH, timeframe=SAMPLE_TIMEFRAME).rows[-limit:]
    frame = pd.DataFrame(
        [[row.open_time, *(float(value) for value in row[1:])] for row in rows],
        columns=list(market_selectors.FRAME_COLUMNS),
    )
    market = CheckMarket(SAMPLE_EXCHANGE, SAMPLE_SYMBOL, SAMPLE_TIMEFRAME)
    return CheckCandles(market=market, source="the shipped sample file", frame=frame)


def strategy_check_run(
    *,
    key: str,
    candles: CheckCandles,
    params: Mapping[str, Any] | None = None,
    settings: CheckSettings | None = None,
    user_id: int | None = None,
) -> StrategyCheck:
    """Both analyses of strategy ``key`` (its defaults, or ``params``) over ``candles``.

    Raises ``UnknownStrategyError`` and ``StrategyParamError`` from the registry,
    ``CheckInputError`` for too few candles; whatever the strategy's own code raises is left to
    the caller.
    """
    strategy = active().create(key, params)
    began = time.perf_counter()
    check = strategy_check(strategy, candles.frame, settings)
    first = check.lookahead.first
    failed_column = check.recursive.failures[0].column if check.recursive.failures else None
    logger.info(
        "strategy.checked",
        extra=context(
            user_id=user_id,
            strategy=key,
            exchange=candles.market.exchange,
            symbol=candles.market.symbol,
            timeframe=candles.market.timeframe,
            candles=check.candles,
            passed=check.passed,
            lookahead_passed=check.lookahead.passed,
            recursive_passed=check.recursive.passed,
            first_candle=first.time_iso if first is not None else None,
            first_column=first.column if first is not None else failed_column,
            duration_ms=round((time.perf_counter() - began) * 1000),
        ),
    )
    return check


@dataclass(frozen=True)
class CheckOutcome:
    """What the strategy page shows after its button: the check, or why there is none
    (``status`` 400 for candles that cannot carry it, 200 for a strategy that raised)."""

    key: str
    market: CheckMarket | None = None
    source: str = ""
    check: StrategyCheck | None = None
    error: str | None = None
    status: int = 200


def strategy_check_page(*, key: str, market: str | None, user_id: int) -> CheckOutcome:
    """The page's check of strategy ``key`` with its defaults, on the last ``PAGE_CANDLES``
    candles of ``market`` (``exchange|symbol|timeframe``; the default market when empty)."""
    try:
        chosen = CheckMarket.parse(market) if market else None
        candles = check_candles(market=chosen, limit=PAGE_CANDLES)
    except CheckDataError as error:
        return CheckOutcome(key=key, error=str(error), status=400)
    where = CheckOutcome(key=key, market=candles.market, source=candles.source)
    try:
        check = strategy_check_run(key=key, candles=candles, user_id=user_id)
    except CheckInputError as error:
        return replace(where, error=str(error), status=400)
    except Exception as error:  # the strategy's own code failed on these candles
        logger.warning(
            "strategy.check_failed",
            extra=context(user_id=user_id, strategy=key, error=type(error).__name__),
            exc_info=True,
        )
        return replace(where, error=f"the strategy raised {type(error).__name__}: {error}")
    return replace(where, check=check)
