"""A perp bot ticked by a REAL Celery worker process that is SIGKILLed between sending its first
order (a short) and booking it: the next worker adopts the short once, as the spot bot's test
(``test_worker_ticks``, the same helpers and the same PostgreSQL rule) shows for a buy."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pandas as pd
import pytest
from django.conf import settings as django_settings

from bots import services
from bots.models import Bot, Order, Position, Trade
from bots.order_ids import open_order_id
from bots.services.dispatch import send_tick
from markets.models import Candle, PaperOrder, PaperPosition
from markets.perp_data import perp_sample_load
from strategies.registry import active
from strategies.services import strategy_catalogue_sync
from tests.backtests.worker_helpers import wait_until
from tests.bots.bot_helpers import paper_account
from tests.bots.perp_parity_helpers import EXCHANGE, TIMEFRAME, XRP, perp_bot
from tests.bots.worker_ticks_helpers import (
    PositionRowLock,
    StartBotWorkers,
    bot_workers,
    log_records,
    sessions_waiting_for_a_lock,
    wait_for_lease_to_lapse,
)

__all__ = ["bot_workers"]  # a fixture, imported for pytest to find
pytestmark = pytest.mark.timeout(240)

ON_SQLITE = django_settings.DATABASES["default"]["ENGINE"].endswith("sqlite3")
TIMEOUT = 60.0
SHORTS = {"fast": 5, "slow": 20, "allow_short": True}


def first_short_start() -> int:
    """Open time of a stored candle after a full candle window whose previous candle's target
    is -1: a replay started there opens a short on its first tick."""
    frame = pd.DataFrame(
        Candle.objects.filter(exchange=EXCHANGE, symbol=XRP, timeframe=TIMEFRAME)
        .order_by("open_time")
        .values("open_time", "open", "high", "low", "close", "volume")
    )
    for column in ("open", "high", "low", "close", "volume"):
        frame[column] = frame[column].astype(float)
    targets = active().create("ma_cross", SHORTS).positions(frame).to_numpy()
    for index in range(django_settings.BOT_CANDLE_WINDOW, len(targets) - 5):
        if targets[index - 1] == -1 and (targets[index : index + 5] == -1).all():
            return int(frame["open_time"].iloc[index])
    raise AssertionError("no stretch of the sample with a short to open")


@pytest.mark.skipif(
    ON_SQLITE,
    reason="needs PostgreSQL: the test holds the tick with a row lock (SELECT ... FOR UPDATE), "
    "which SQLite does not have",
)
def test_a_worker_killed_after_sending_a_short_and_before_booking_it_leaves_one_order_and_one_trade(
    bot_workers: StartBotWorkers, user: Any, settings: Any
) -> None:
    # given: a perp replay whose first tick opens a short, so slow that market time stands
    # still; the workers' tick lease is 3 s
    perp_sample_load()
    strategy_catalogue_sync()
    lease = {"BOT_TICK_LEASE_SECONDS": "3"}
    [doomed] = bot_workers(env=lease)
    settings.BOTS_QUEUE = doomed.queue
    account = paper_account(user)
    start_ms = first_short_start()
    runner = perp_bot(user, account, start_ms=start_ms, params=SHORTS, leverage=3, speed=0.1)
    bot = services.bot_start(bot=runner.bot)
    step = (
        start_ms
        - Candle.objects.filter(
            exchange=EXCHANGE, symbol=XRP, timeframe=TIMEFRAME, open_time__lt=start_ms
        )
        .order_by("-open_time")
        .values_list("open_time", flat=True)[0]
    )
    first_decision_ms = start_ms - step
    cid = open_order_id(bot.pk, first_decision_ms, "short")
    # and another session holding the bot's position row, which booking a fill locks first
    lock = PositionRowLock(bot)
    try:
        # when: the worker ticks
        send_tick(bot.pk)
        # then: the short reaches the exchange, and the tick waits to book it
        wait_until(
            lambda: PaperOrder.objects.filter(account=account, client_order_id=cid).exists(),
            timeout=TIMEOUT, what="the short to reach the paper exchange",
        )  # fmt: skip
        wait_until(lambda: sessions_waiting_for_a_lock() == 1, timeout=TIMEOUT,
                   what="the tick to wait for the position's lock")  # fmt: skip
        # when: the worker dies right there (SIGKILL)
        doomed.kill()
    finally:
        lock.release()
    # then: the books hold the order as sent-but-unknown; the exchange holds the short
    order = Order.objects.get(bot=bot)
    assert (order.client_order_id, order.status, order.filled_qty) == (cid, Order.Status.PENDING, 0)
    assert not Trade.objects.filter(bot=bot).exists()
    exchange = PaperPosition.objects.get(account=account, symbol=XRP)
    assert exchange.side == "short"
    assert exchange.qty > 0
    # when: a new worker ticks the bot once the dead tick's lease has lapsed
    [survivor] = bot_workers(queue=doomed.queue, env=lease)
    wait_for_lease_to_lapse(bot, timeout=TIMEOUT)
    send_tick(bot.pk)
    [tick] = wait_until(lambda: log_records(survivor, "bot.tick", bot_id=bot.pk),
                        timeout=TIMEOUT, what="the new worker's tick")  # fmt: skip
    # then: it adopts the short instead of sending another, books it once, and holds
    assert (tick["action"], tick["orders"], tick["candle_ms"]) == ("held", 0, first_decision_ms)
    assert PaperOrder.objects.filter(account=account).count() == 1
    paper = PaperOrder.objects.get(account=account)
    trade = Trade.objects.get(bot=bot)
    assert (trade.side, trade.qty, trade.price, trade.fee) == (
        "sell", paper.filled, paper.average, paper.fee_cost,
    )  # fmt: skip
    position = Position.objects.get(bot=bot)
    assert (position.side, position.qty, position.leverage) == ("short", exchange.qty, 3)
    assert position.liquidation_price == exchange.liquidation_price
    assert position.margin == exchange.margin > Decimal(0)
    bot.refresh_from_db()
    assert (bot.status, bot.last_candle_ms) == (Bot.Status.RUNNING, first_decision_ms)


@pytest.mark.django_db
def test_the_replay_of_the_kill_test_opens_a_short_on_its_first_tick(user: Any) -> None:
    # (the setup of the test above, in process: it must send the order the kill interrupts)
    perp_sample_load()
    strategy_catalogue_sync()
    start_ms = first_short_start()
    runner = perp_bot(user, paper_account(user), start_ms=start_ms, params=SHORTS, leverage=3)
    runner.start()
    result = runner.tick()
    assert (result.outcome, result.orders) == ("traded", 1)
    order = Order.objects.get(bot=runner.bot)
    assert result.candle_ms is not None
    assert order.client_order_id == open_order_id(runner.bot.pk, result.candle_ms, "short")
    assert result.candle_ms == start_ms - 5 * 60 * 1000  # the newest candle closed at the start
