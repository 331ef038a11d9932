"""Backtest/live parity: a paper bot on the replay feed trades as the backtest of the same
strategy and settings over the same candles does, trade for trade.

The database holds only the replayed stretch of the shipped candles, so the bot and the
backtest warm their indicators up on the same rows. The bot ticks once per candle, with the
tick's own code from end to end (strategy, decision, paper exchange, books).

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
from bots.services import bots_tick_batch
from markets.selectors import candles_frame
from strategies.registry import active
from strategies.services import strategy_catalogue_sync
from tests.bots.bot_helpers import (
    EXCHANGE,
    SYMBOL,
    TIMEFRAME,
    paper_account,
    replay_bot,
    store_candles,
)

FIRST, COUNT = 2000, 600
FEE = 0.002  # Bitget's spot taker fee in the shipped market snapshot
SLIPPAGE_BPS = 5  # the paper account's default


def _backtest_trades(rows: list[Any], params: dict[str, Any]) -> pd.DataFrame:
    candles = candles_frame(
        exchange=EXCHANGE, symbol=SYMBOL, timeframe=TIMEFRAME,
        start_ms=rows[0].open_time, end_ms=rows[-1].open_time + 1,
    )  # fmt: skip
    strategy = active().create("ma_cross", params)
    settings = BacktestSettings(initial_cash=10_000.0, fee_rate=FEE, slippage_bps=SLIPPAGE_BPS)
    trades = run_backtest(candles, strategy, settings).trades
    return trades[trades["exit_reason"] != "end"]  # the bot stops, it does not close at the end


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("params", "ticked_by"),
    [
        ({"fast": 5, "slow": 20}, "bot_tick"),
        ({"fast": 8, "slow": 21, "ma": "ema"}, "bot_tick"),
        # what a worker runs: the batch task, whose bots that hold take the fast path
        ({"fast": 5, "slow": 20}, "bots_tick_batch"),
    ],
)
def test_a_replay_bot_makes_the_backtests_trades(
    user: Any, params: dict[str, Any], ticked_by: str
) -> None:
    strategy_catalogue_sync()
    rows = store_candles(FIRST, COUNT)
    runner = replay_bot(user, paper_account(user), start_ms=rows[0].open_time, params=params)
    runner.start()
    for _ in range(COUNT):
        if ticked_by == "bot_tick":
            runner.next_candle()
        else:
            runner.clock.advance(runner.seconds_per_candle)
            bots_tick_batch(bot_ids=[runner.bot.pk], clock=runner.clock)
    assert runner.refresh().status in (Bot.Status.RUNNING, Bot.Status.STOPPED)

    expected = _backtest_trades(rows, params)
    fills = list(Trade.objects.filter(bot=runner.bot).order_by("time", "id"))
    buys = [t for t in fills if t.side == "buy"]
    sells = [t for t in fills if t.side == "sell"]
    assert len(expected) >= 5, "the stretch must hold trades to compare"
    print(f"{len(expected)} trades compared")
    assert len(sells) == len(expected)
    assert len(buys) in (len(expected), len(expected) + 1)  # + a position still open at the end
    for (_, trade), buy, sell in zip(expected.iterrows(), buys, sells, strict=False):
        assert int(buy.time.timestamp() * 1000) == trade["entry_time"]
        assert int(sell.time.timestamp() * 1000) == trade["exit_time"]
        assert float(buy.price) == pytest.approx(trade["entry_price"], abs=0.011)
        assert float(sell.price) == pytest.approx(trade["exit_price"], abs=0.011)
        assert float(buy.qty) == pytest.approx(trade["qty"], rel=2e-4)
        assert float(sell.qty) == float(buy.qty)
        assert float(sell.pnl) == pytest.approx(trade["pnl"], rel=2e-3, abs=0.05)
    assert Order.objects.filter(bot=runner.bot).count() == len(buys) + len(sells)
    assert not Order.objects.filter(bot=runner.bot).exclude(status="closed").exists()
