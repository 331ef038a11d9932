"""A bot's stop-loss and take-profit as trigger orders on the (paper) exchange: placed once the
entry fills, kept while the position is held, cancelled by a signal exit, the other one
cancelled when one fills (OCO by the bot), and placed exactly once when the answer is lost.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from bots.models import Bot, Order
from markets.exchanges.errors import TransientExchangeError
from markets.exchanges.paper import PaperExchange
from markets.models import PaperOrder
from tests.bots.bot_helpers import ReplayBot, Scripted, paper_account, scripted_bot, store_candles

pytestmark = pytest.mark.usefixtures("scripted_strategies")

FIRST, COUNT, WARM = 2000, 120, 40
FAR = {"stop_loss_pct": Decimal(30), "take_profit_pct": Decimal(500)}  # never reached here


@pytest.fixture
def rows() -> list[Any]:
    return store_candles(FIRST, COUNT)


def runner_for(user: Any, rows: list[Any], **risk: Any) -> ReplayBot:
    runner = scripted_bot(user, paper_account(user), start_ms=rows[WARM].open_time, **risk)
    runner.start()
    return runner


def orders(bot: Bot) -> list[tuple[str, str, str, str]]:
    """``(side, order_type, reason, status)`` of the bot's orders, oldest first."""
    rows = bot.orders.order_by("id").values_list("side", "order_type", "reason", "status")
    return list(rows)


def test_the_entry_gets_both_triggers_at_once_kept_while_held_and_cancelled_by_a_signal_exit(
    user: Any, rows: list[Any]
) -> None:
    # given: an entry, with a stop 30 % under and a take-profit 500 % over its fill price
    runner = runner_for(user, rows, **FAR)
    Scripted.target = 1
    assert runner.tick().orders == 3
    bot = runner.refresh()
    entry = bot.orders.get(side="buy").average_price
    assert entry is not None
    sl, tp = bot.orders.get(reason="stop_loss"), bot.orders.get(reason="take_profit")
    assert (sl.price, tp.price) == (
        (entry * Decimal("0.7")).quantize(Decimal("0.01")),
        (entry * 6).quantize(Decimal("0.01")),
    )
    assert sl.qty == tp.qty == bot.orders.get(side="buy").filled_qty
    # when: the signal stays long for two candles
    assert [runner.next_candle().outcome for _ in range(2)] == ["held", "held"]
    assert orders(runner.bot) == [
        ("buy", "market", "signal", "closed"),
        ("sell", "stop_market", "stop_loss", "open"),
        ("sell", "take_profit_market", "take_profit", "open"),
    ]
    # when: it turns flat
    Scripted.target = 0
    assert runner.next_candle().outcome == "traded"
    # then: both triggers cancelled (on the exchange too), and the position sold by the signal
    assert orders(runner.bot)[1:] == [
        ("sell", "stop_market", "stop_loss", "canceled"),
        ("sell", "take_profit_market", "take_profit", "canceled"),
        ("sell", "market", "signal", "closed"),
    ]
    assert not PaperOrder.objects.filter(status="open").exists()
    assert runner.bot.positions.get().qty == 0


def test_when_the_take_profit_fills_the_bot_cancels_the_stop_and_waits_for_a_new_signal(
    user: Any, rows: list[Any]
) -> None:
    # given: a take-profit 0.01 % over the entry, soon reached; a stop far under it
    runner = runner_for(user, rows, stop_loss_pct=Decimal(30), take_profit_pct=Decimal("0.01"))
    Scripted.target = 1
    runner.tick()
    # when: the candles go on until it fills
    for _ in range(40):
        runner.next_candle()
        if runner.bot.orders.filter(reason="take_profit", status="closed").exists():
            break
    # then: in the same tick the bot cancelled the stop, and it does not buy back in
    bot = runner.refresh()
    assert orders(bot) == [
        ("buy", "market", "signal", "closed"),
        ("sell", "stop_market", "stop_loss", "canceled"),
        ("sell", "take_profit_market", "take_profit", "closed"),
    ]
    tp = bot.orders.get(reason="take_profit")
    assert tp.average_price == tp.price  # at its price, without slippage (no gap here)
    assert bot.risk_exit_target == 1
    assert runner.next_candle().outcome == "held"
    assert bot.orders.count() == 3


def test_a_lost_answer_to_a_trigger_order_is_read_back_not_sent_twice(
    user: Any, rows: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: the exchange takes the stop order, but its answer is lost
    real = PaperExchange.create_trigger_order

    def lost(self: PaperExchange, *args: Any, **kwargs: Any) -> Any:
        real(self, *args, **kwargs)
        raise TransientExchangeError("the connection dropped")

    monkeypatch.setattr(PaperExchange, "create_trigger_order", lost)
    runner = runner_for(user, rows, stop_loss_pct=Decimal(30))
    Scripted.target = 1
    assert runner.tick().outcome == "retry"
    assert runner.bot.orders.get(reason="stop_loss").status == Order.Status.PENDING
    # when: the next tick runs, the exchange answering again
    monkeypatch.setattr(PaperExchange, "create_trigger_order", real)
    runner.tick()
    # then: the order the exchange holds is adopted; there is one, and one buy
    assert orders(runner.refresh()) == [
        ("buy", "market", "signal", "closed"),
        ("sell", "stop_market", "stop_loss", "open"),
    ]
    assert PaperOrder.objects.filter(order_type="stop_market").count() == 1
