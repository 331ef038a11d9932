"""Backtest/live parity, shared by the tests that compare a replay bot's trades to a backtest's:
the backtest of ma_cross over the stored candles, and the trade-for-trade comparison.

The database holds only the replayed stretch of the shipped candles, so the bot and the
backtest warm their indicators up on the same rows.

Where the two may differ, and by how much:
- prices: the paper exchange rounds a fill to the market's price step (0.01 USDT), the engine
  does not;
- quantities: the bot rounds an order down to the market's amount step (0.000001 BTC) and sizes
  from the rounded ask; the cash it compounds from then differs by as little.
- stop-loss / take-profit exits: the bot's trigger price is its entry fill (rounded to the step)
  times the level, rounded to the step away from the position (so that the same candles touch
  it as the engine's unrounded level); with the fill's own rounding, an exit at a level may
  differ by up to two price steps (0.02 USDT).
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


def backtest_trades(
    first_ms: int, last_ms: int, params: dict[str, Any], *, stop_loss: float | None = None,
    take_profit: float | None = None,
) -> pd.DataFrame:  # fmt: skip
    """The trades of a backtest of ma_cross(``params``) over the stored candles opened from
    ``first_ms`` to ``last_ms``, but the one the engine closes at the end (a bot does not).
    ``stop_loss``/``take_profit``: fractions (the bot's percent / 100)."""
    candles = candles_frame(
        exchange=EXCHANGE, symbol=SYMBOL, timeframe=TIMEFRAME, start_ms=first_ms,
        end_ms=last_ms + 1,
    )  # fmt: skip
    strategy = active().create("ma_cross", params)
    settings = BacktestSettings(
        initial_cash=INITIAL_CASH, fee_rate=FEE, slippage_bps=SLIPPAGE_BPS, stop_loss=stop_loss,
        take_profit=take_profit,
    )  # fmt: skip
    trades = run_backtest(candles, strategy, settings).trades
    return trades[trades["exit_reason"] != "end"]


def assert_same_trades(bot: Bot, expected: pd.DataFrame, *, at_least: int = 5) -> float:
    """The bot's fills are the backtest's trades, round trip for round trip: entry and exit
    candle, price (to the price step; two at a stop-loss / take-profit level), quantity (to the
    amount step), pnl and exit reason; plus at most one buy still open at the end. Every market
    order the bot sent filled; of its trigger orders, those that did not fire were cancelled
    (one-cancels-the-other, a signal exit) or still rest under the open position. Returns the
    largest exit price difference at a level (USDT)."""
    fills = list(Trade.objects.filter(bot=bot).select_related("order").order_by("time", "id"))
    buys = [t for t in fills if t.side == "buy"]
    sells = [t for t in fills if t.side == "sell"]
    assert len(expected) >= at_least, "the stretch must hold trades to compare"
    assert len(sells) == len(expected), (len(sells), len(expected))
    assert len(buys) in (len(expected), len(expected) + 1)  # + a position still open at the end
    worst = 0.0  # the largest exit price difference at a level, reported
    for (_, trade), buy, sell in zip(expected.iterrows(), buys, sells, strict=False):
        at_level = trade["exit_reason"] != "signal"
        if at_level:
            worst = max(worst, abs(float(sell.price) - trade["exit_price"]))
        assert sell.order.reason == trade["exit_reason"], (sell.time, trade["exit_reason"])
        assert int(buy.time.timestamp() * 1000) == trade["entry_time"]
        assert int(sell.time.timestamp() * 1000) == trade["exit_time"]
        assert float(buy.price) == pytest.approx(trade["entry_price"], abs=0.011)
        assert float(sell.price) == pytest.approx(
            trade["exit_price"], abs=0.021 if at_level else 0.011
        )
        assert float(buy.qty) == pytest.approx(trade["qty"], rel=2e-4)
        assert float(sell.qty) == float(buy.qty)
        assert float(sell.pnl) == pytest.approx(trade["pnl"], rel=2e-3, abs=0.05)
    orders = Order.objects.filter(bot=bot)
    market = orders.filter(order_type="market")
    assert market.count() + orders.filter(status="closed").exclude(order_type="market").count() == (
        len(buys) + len(sells)
    )
    assert not market.exclude(status="closed").exists()
    resting = orders.exclude(status__in=("closed", "canceled"))
    assert all(order.status == "open" for order in resting)
    assert len(buys) > len(sells) or not resting.exists()  # none rests without a position
    return worst
