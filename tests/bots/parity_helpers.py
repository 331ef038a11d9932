"""Backtest/live parity, shared by the tests that compare a replay bot's trades to a backtest's:
the backtest of ma_cross over the stored candles, and the trade-for-trade comparison.

The database holds only the replayed stretch of the shipped candles, so the bot and the
backtest warm their indicators up on the same rows.

Where the two may differ, and by how much:
- prices: the paper exchange rounds a fill to the market's price step (0.01 USDT), the engine
  does not;
- quantities: the bot rounds an order down to the market's amount step (0.000001 BTC) and sizes
  from the rounded ask; the cash it compounds from then differs by as little.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from backtests.engine import BacktestSettings
from backtests.runner import run_backtest
from bots.models import Bot, Order, Trade
from markets.selectors import candles_frame
from strategies.registry import active
from tests.bots.bot_helpers import EXCHANGE, SYMBOL, TIMEFRAME

FEE = 0.002  # Bitget's spot taker fee in the shipped market snapshot
SLIPPAGE_BPS = 5  # the paper account's default
INITIAL_CASH = 10_000.0  # the paper account's USDT (``paper_account``'s default)


def backtest_trades(first_ms: int, last_ms: int, params: dict[str, Any]) -> pd.DataFrame:
    """The trades of a backtest of ma_cross(``params``) over the stored candles opened from
    ``first_ms`` to ``last_ms``, but the one the engine closes at the end (a bot does not)."""
    candles = candles_frame(
        exchange=EXCHANGE, symbol=SYMBOL, timeframe=TIMEFRAME, start_ms=first_ms,
        end_ms=last_ms + 1,
    )  # fmt: skip
    strategy = active().create("ma_cross", params)
    settings = BacktestSettings(initial_cash=INITIAL_CASH, fee_rate=FEE, slippage_bps=SLIPPAGE_BPS)
    trades = run_backtest(candles, strategy, settings).trades
    return trades[trades["exit_reason"] != "end"]


def assert_same_trades(bot: Bot, expected: pd.DataFrame, *, at_least: int = 5) -> None:
    """The bot's fills are the backtest's trades, round trip for round trip: entry and exit
    candle, price (to the price step), quantity (to the amount step) and pnl; plus at most one
    buy still open at the end. Every order the bot sent filled."""
    fills = list(Trade.objects.filter(bot=bot).order_by("time", "id"))
    buys = [t for t in fills if t.side == "buy"]
    sells = [t for t in fills if t.side == "sell"]
    assert len(expected) >= at_least, "the stretch must hold trades to compare"
    assert len(sells) == len(expected), (len(sells), len(expected))
    assert len(buys) in (len(expected), len(expected) + 1)  # + a position still open at the end
    for (_, trade), buy, sell in zip(expected.iterrows(), buys, sells, strict=False):
        assert int(buy.time.timestamp() * 1000) == trade["entry_time"]
        assert int(sell.time.timestamp() * 1000) == trade["exit_time"]
        assert float(buy.price) == pytest.approx(trade["entry_price"], abs=0.011)
        assert float(sell.price) == pytest.approx(trade["exit_price"], abs=0.011)
        assert float(buy.qty) == pytest.approx(trade["qty"], rel=2e-4)
        assert float(sell.qty) == float(buy.qty)
        assert float(sell.pnl) == pytest.approx(trade["pnl"], rel=2e-3, abs=0.05)
    assert Order.objects.filter(bot=bot).count() == len(buys) + len(sells)
    assert not Order.objects.filter(bot=bot).exclude(status="closed").exists()
