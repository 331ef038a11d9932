"""Backtest/paper parity for perp bots, on the shipped XRP/USDT:USDT sample
(``markets.perp_data.perp_sample_load``: 5m candles, 1h and 8h mark candles, funding rates).

The backtest gets what ``backtests.services.runs.engine_inputs`` gives a perp run (the funding of
the period with its marks, the mark candles of the run's timeframe: none for 5m here); the bot
replays the same stored candles on the paper exchange. Where the two may differ, and by how
much:

- prices: without slippage the fills are the candles' opens on both sides; the paper exchange
  rounds the liquidation price and a stop's level to the price step (0.0001 USDT) towards the
  entry, the engine does not;
- quantities: the bot rounds an order down to the amount step (1 XRP) and sizes from the
  exchange's balance; the cash it compounds from differs by as little, and so do its funding
  and pnl (``QTY_REL``).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pandas as pd
import pytest

from accounts.models import User
from backtests.engine import BacktestSettings
from backtests.runner import run_backtest
from bots import services
from bots.models import Bot, Trade
from bots.services import BotConfig
from markets import selectors as market_selectors
from markets.exchanges.markets import get_catalog
from markets.perp_data import PERP_SAMPLE_SYMBOL
from markets.timeframes import timeframe_ms
from strategies.registry import active
from tests.bots.bot_helpers import ManualClock, ReplayBot, as_datetime

EXCHANGE, XRP, TIMEFRAME = "bitget", PERP_SAMPLE_SYMBOL, "5m"
# No slippage on either side: the sample's prices have 4 decimals (about 1 bp a step), and a
# slipped fill rounded to the step would differ from the engine's by up to half a step each
# time, compounding (with the default 5 bps the quantities drift 1.3 % apart over the sample at
# leverage 3, 2.2 % at leverage 50, all else still agreeing).
SLIPPAGE_BPS = 0
INITIAL_CASH = 10_000.0  # ``paper_account``'s USDT
STEP = 0.0001  # the market's price step
QTY_REL = 2e-3
# A stop's level is rounded to the step away from the entry (``decisions.protection``: so that
# the candles that touch the engine's level touch it), half a step worse on average: over the
# sample's 26 stop-loss exits the quantities drift 0.25 % apart.
STOP_QTY_REL = 5e-3


def taker_fee() -> float:
    return float(get_catalog(EXCHANGE).rules(XRP).taker_fee)


def perp_bot(user: User, account: Any, *, start_ms: int, params: dict[str, Any],
             speed: float = 60.0, **fields: Any) -> ReplayBot:  # fmt: skip
    config = BotConfig(
        name=fields.pop("name", "perp replay"), exchange_account=account, symbol=XRP,
        timeframe=TIMEFRAME, strategy="ma_cross", params=params,
        data_source=Bot.DataSource.REPLAY, replay_start=as_datetime(start_ms), replay_speed=speed,
        **fields,
    )  # fmt: skip
    return ReplayBot(services.bot_create(user=user, config=config), ManualClock())


def backtest_trades(
    first_ms: int, last_ms: int, params: dict[str, Any], *, leverage: int,
    position_size: float = 1.0, stop_loss: float | None = None,
) -> pd.DataFrame:  # fmt: skip
    """The backtest's trades over the stored candles from ``first_ms`` to ``last_ms``, with the
    funding and mark data a perp run gets; the one closed at the end (``end``) left out."""
    key = {"exchange": EXCHANGE, "symbol": XRP, "timeframe": TIMEFRAME}
    candles = market_selectors.candles_frame(**key, start_ms=first_ms, end_ms=last_ms + 1)
    market = market_selectors.perp_market(exchange=EXCHANGE, symbol=XRP)
    assert market is not None
    settings = BacktestSettings(
        initial_cash=INITIAL_CASH, fee_rate=taker_fee(), slippage_bps=SLIPPAGE_BPS,
        position_size=position_size, stop_loss=stop_loss, leverage=leverage, perp=True,
        # the tier of the opening notional, as ``engine_inputs`` takes it
        maintenance_margin_rate=float(
            market.tier(Decimal(INITIAL_CASH * position_size * leverage)).maintenance_margin_rate
        ),
    )  # fmt: skip
    until = last_ms + timeframe_ms(TIMEFRAME)
    funding = market_selectors.funding_frame(**key, start_ms=first_ms, end_ms=until)
    mark = market_selectors.mark_candles_frame(**key, start_ms=first_ms, end_ms=last_ms + 1)
    strategy = active().create("ma_cross", params)
    trades = run_backtest(candles, strategy, settings, funding=funding, mark=mark).trades
    return trades[trades["exit_reason"] != "end"]


@dataclass
class Agreement:
    trades: int
    price: float  # the largest entry/exit price difference
    funding: float  # the largest funding difference of a trade
    qty: float  # the largest relative quantity difference
    reasons: dict[str, int]


def round_trips(bot: Bot) -> list[tuple[Trade, Trade]]:
    """The bot's fills as (open, close) pairs, in time order."""
    fills = list(Trade.objects.filter(bot=bot).select_related("order").order_by("time", "id"))
    trips, opening = [], None
    for fill in fills:
        cid = fill.order.client_order_id
        if cid.endswith(("-long", "-short")):
            assert opening is None, f"{cid} opens on top of an open position"
            opening = fill
        else:
            assert opening is not None, f"{cid} closes nothing"
            trips.append((opening, fill))
            opening = None
    return trips


def assert_same_perp_trades(
    bot: Bot, expected: pd.DataFrame, *, at_least: int = 3, qty_rel: float = QTY_REL
) -> Agreement:
    """The bot's round trips are the backtest's trades: side, entry and exit candle, exit
    reason, prices (to two price steps), quantity, funding and pnl (to the compounding of the
    price rounding: see the module docstring)."""
    trips = round_trips(bot)
    assert len(expected) >= at_least, "the stretch must hold trades to compare"
    assert len(trips) == len(expected), (len(trips), len(expected))
    worst = Agreement(len(trips), 0.0, 0.0, 0.0, expected["exit_reason"].value_counts().to_dict())
    for (_, trade), (opening, closing) in zip(expected.iterrows(), trips, strict=True):
        side = "long" if opening.side == "buy" else "short"
        assert side == ("long" if trade["side"] > 0 else "short"), opening.time
        assert closing.order.reason == trade["exit_reason"], (closing.time, trade["exit_reason"])
        assert int(opening.time.timestamp() * 1000) == trade["entry_time"]
        assert int(closing.time.timestamp() * 1000) == trade["exit_time"]
        prices = (float(opening.price), float(closing.price))
        assert prices == pytest.approx((trade["entry_price"], trade["exit_price"]), abs=2 * STEP)
        qty = float(opening.qty)
        assert qty == pytest.approx(trade["qty"], rel=qty_rel)
        assert closing.qty == opening.qty
        funding = float(closing.pnl) - bot_pnl_before_funding(opening, closing)
        assert funding == pytest.approx(trade["funding"], rel=qty_rel, abs=0.01)
        # the quantity's drift, and each fill's price may be a step apart
        tolerance = qty_rel * abs(trade["pnl"]) + 2 * STEP * qty
        assert abs(float(closing.pnl) - trade["pnl"]) <= tolerance, (closing.time, trade["pnl"])
        worst.price = max(worst.price, *(abs(a - b) for a, b in zip(
            prices, (trade["entry_price"], trade["exit_price"]), strict=True)))  # fmt: skip
        worst.funding = max(worst.funding, abs(funding - trade["funding"]))
        worst.qty = max(worst.qty, abs(qty / trade["qty"] - 1))
    return worst


def bot_pnl_before_funding(opening: Trade, closing: Trade) -> float:
    """What the round trip made on prices and fees alone: its pnl less that is its funding."""
    sign = 1 if opening.side == "buy" else -1
    move = sign * (float(closing.price) - float(opening.price)) * float(closing.qty)
    return move - float(opening.fee) - float(closing.fee)
