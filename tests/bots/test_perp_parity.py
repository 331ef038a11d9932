"""Backtest/paper parity for perps: a paper perp bot on a replay of the shipped XRP/USDT:USDT
sample makes the trades of the backtest of the same settings, long and short, with the same
funding and liquidations (``perp_parity_helpers``)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from bots.models import Bot, BotEvent, Order
from bots.services import bots_tick_batch
from markets.models import Candle
from tests.bots.bot_helpers import paper_account
from tests.bots.perp_parity_helpers import (
    EXCHANGE,
    QTY_REL,
    SLIPPAGE_BPS,
    STOP_QTY_REL,
    TIMEFRAME,
    XRP,
    assert_same_perp_trades,
    backtest_trades,
    perp_bot,
)

PARAMS = {"fast": 5, "slow": 20, "allow_short": True}


def run_to_the_end(runner: Any) -> Bot:
    runner.start()
    while runner.refresh().status == Bot.Status.RUNNING:
        runner.next_candle()
    return runner.refresh()


# The stretch replayed: candles ``FIRST`` to ``LAST`` of the sample (its funding times begin
# at candle 864): 400 candles with 4 funding times, 19 trades a case (2 liquidations at 50x,
# 12 stop-loss exits with the stop).
FIRST, LAST = 780, 1180


def stretch(times: list[int]) -> list[int]:
    """The sample's candles ``FIRST`` to ``LAST``; the others are removed, so that the bot and
    the backtest warm their indicators up on the same rows and end on the same one."""
    kept = times[FIRST:LAST]
    stored = Candle.objects.filter(exchange=EXCHANGE, symbol=XRP, timeframe=TIMEFRAME)
    stored.exclude(open_time__gte=kept[0], open_time__lte=kept[-1]).delete()
    return kept


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("leverage", "stop_loss_pct", "fraction"),
    [
        (3, None, "1"),  # longs and shorts, funding paid and received
        (50, None, "0.1"),  # liquidations (a tenth of the balance a trade: it lasts)
        (3, "0.5", "1"),  # stop-loss trigger orders (buy stops for the shorts)
    ],
)
def test_a_paper_perp_bot_makes_the_backtests_trades_funding_and_liquidations(
    user: Any, xrp: list[int], leverage: int, stop_loss_pct: str | None, fraction: str
) -> None:
    # given: a perp replay bot over the stretch, and the backtest of the same settings
    times = stretch(xrp)
    stop = Decimal(stop_loss_pct) if stop_loss_pct else None
    account = paper_account(user, paper_slippage_bps=Decimal(SLIPPAGE_BPS))
    runner = perp_bot(
        user, account, start_ms=times[0], params=PARAMS, leverage=leverage,
        stop_loss_pct=stop, order_size=Decimal(fraction),
    )  # fmt: skip
    # when: it replays them to the end
    bot = run_to_the_end(runner)
    # then: the backtest's trades, candle for candle, with their funding and exit reasons
    expected = backtest_trades(
        times[0], times[-1], PARAMS, leverage=leverage, position_size=float(fraction),
        stop_loss=float(stop_loss_pct) / 100 if stop_loss_pct else None,
    )  # fmt: skip
    agreement = assert_same_perp_trades(
        bot, expected, qty_rel=STOP_QTY_REL if stop_loss_pct else QTY_REL
    )
    print(
        f"leverage {leverage}, stop {stop_loss_pct}: {agreement.trades} trades compared "
        f"{agreement.reasons}; funding {expected['funding'].sum():.4f} USDT; largest price "
        f"difference {agreement.price:.6f} USDT, funding difference {agreement.funding:.6f} "
        f"USDT, quantity difference {agreement.qty:.2%}"
    )
    assert set(expected["side"]) == {1.0, -1.0}  # long and short
    assert (expected["funding"] > 0).any()  # received (shorts) and paid (longs)
    assert (expected["funding"] < 0).any()
    if leverage == 50:
        liquidations = agreement.reasons.get("liquidation", 0)
        assert liquidations >= 1
        assert BotEvent.objects.filter(bot=bot, kind="liquidation").count() == liquidations
        assert Order.objects.filter(bot=bot, reason="liquidation").count() == liquidations
    if stop_loss_pct:
        assert agreement.reasons.get("stop_loss", 0) >= 1


@pytest.mark.django_db
def test_a_paper_perp_bot_ticked_by_the_batch_task_makes_the_same_trades(
    user: Any, xrp: list[int]
) -> None:
    # given: a 50x perp bot ticked as a worker ticks it (flat bots take the batch's fast path)
    times = stretch(xrp)
    account = paper_account(user, paper_slippage_bps=Decimal(SLIPPAGE_BPS))
    runner = perp_bot(user, account, start_ms=times[0], params=PARAMS, leverage=50,
                      order_size=Decimal("0.1"))  # fmt: skip
    runner.start()
    # when: the batch task ticks it over the whole stretch
    while runner.refresh().status == Bot.Status.RUNNING:
        runner.clock.advance(runner.seconds_per_candle)
        bots_tick_batch(bot_ids=[runner.bot.pk], clock=runner.clock)
    # then: the backtest's trades, liquidations included
    expected = backtest_trades(times[0], times[-1], PARAMS, leverage=50, position_size=0.1)
    agreement = assert_same_perp_trades(runner.bot, expected)
    assert agreement.reasons.get("liquidation", 0) >= 1
