"""Paper bots on the replay feed ticked by REAL Celery worker processes.

Each test starts its own solo-pool workers on a queue of its own (``worker_ticks_helpers``),
points ``settings.BOTS_QUEUE`` at it, and drives the bots as production does: the dispatcher
(``bots_dispatch`` with its default ``send_ticks``, which beat runs every second) sends
tick task messages through the broker, the worker ticks, and the test reads what the
worker did from the database and from the worker's own (JSON) log.

The replays start where the shipped candles make ma_cross(5, 20)'s first decision a buy; a full
candle window before the start is stored for the strategy to warm up on. Market time follows
the wall clock at the replay's speed.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import pytest
from django.conf import settings as django_settings

from bots import services
from bots.models import Bot, Order, Position, Trade
from bots.order_ids import client_order_id
from bots.services.dispatch import send_tick, send_ticks
from markets.models import PaperBalance, PaperOrder
from strategies.services import strategy_catalogue_sync
from tests.backtests.worker_helpers import Worker, wait_until
from tests.bots.bot_helpers import STEP_MS, SYMBOL, paper_account, replay_bot
from tests.bots.worker_ticks_helpers import (
    PositionRowLock,
    Replay,
    StartBotWorkers,
    bot_workers,
    decided_candles,
    dispatch_until,
    log_records,
    queued_messages,
    replay_start,
    sessions_waiting_for_a_lock,
    store_replay,
    wait_for_lease_to_lapse,
)

__all__ = ["bot_workers"]  # a fixture, imported for pytest to find

pytestmark = pytest.mark.timeout(240)

USDT = Decimal("10000")
TIMEOUT = 60.0
ON_SQLITE = django_settings.DATABASES["default"]["ENGINE"].endswith("sqlite3")


def balances(account: Any) -> dict[str, PaperBalance]:
    return {row.currency: row for row in PaperBalance.objects.filter(account=account)}


def started_replay_bot(user: Any, start_ms: int, speed: float) -> tuple[Bot, Any]:
    """A replay bot on a fresh 10,000 USDT paper account, started on the wall clock (the
    worker's); ``speed`` in candles a minute."""
    account = paper_account(user, usdt=str(USDT))
    bot = services.bot_start(bot=replay_bot(user, account, start_ms=start_ms, speed=speed).bot)
    return bot, account


def on_a_worker(
    bot_workers: StartBotWorkers, settings: Any, user: Any, *, then: int, candles: int,
    speed: float, env: Mapping[str, str] | None = None,
) -> tuple[Replay, Worker, Bot, Any]:  # fmt: skip
    """A stored replay whose first tick decides a buy and whose target is ``then`` for the
    ``candles`` candles after it; a worker (started with ``env``) on a queue of its own, which
    ``BOTS_QUEUE`` names; and a bot started on the replay at ``speed`` candles a minute, with
    its paper account."""
    strategy_catalogue_sync()
    replay = store_replay(replay_start(then=then, candles=candles), after=candles)
    [worker] = bot_workers(env=env)
    settings.BOTS_QUEUE = worker.queue
    bot, account = started_replay_bot(user, replay.start_ms, speed=speed)
    return replay, worker, bot, account


def ticks_on_candles(worker: Any, bot: Bot) -> list[int]:
    """The candles the worker's ticks of ``bot`` decided on, from its ``bot.tick`` lines: a
    replay tick that caught up acted on ``candles`` candles, up to ``candle_ms`` (the stored
    candles have no gap)."""
    records = log_records(worker, "bot.tick", bot_id=bot.pk)
    return [
        record["candle_ms"] - back * STEP_MS
        for record in records
        if record["action"] in ("traded", "held")
        for back in reversed(range(record["candles"]))
    ]


def trading_ticks(worker: Any, bot: Bot) -> list[dict[str, Any]]:
    """The worker's ``bot.tick`` lines of ticks of ``bot`` that placed an order."""
    return [r for r in log_records(worker, "bot.tick", bot_id=bot.pk) if r["orders"]]


# --- 1. A worker trades ------------------------------------------------------------------------


def test_a_replay_bot_ticked_by_a_real_worker_buys_then_sells_and_logs_each_step(
    bot_workers: StartBotWorkers, user: Any, settings: Any
) -> None:
    # given: a replay whose first tick decides a buy and whose first candle turns the signal
    # off, at 10 s a candle (time for the test to look at the position in between)
    replay, worker, bot, account = on_a_worker(
        bot_workers, settings, user, then=0, candles=10, speed=6
    )
    # when: the dispatcher sends ticks until the worker has bought
    buy = dispatch_until(
        lambda: Trade.objects.filter(bot=bot).first(), timeout=TIMEOUT, what="the buy"
    )
    # then: an order, its trade and the position, all agreeing with the paper exchange
    paper_buy = PaperOrder.objects.get(account=account)
    assert paper_buy.client_order_id == client_order_id(bot.pk, replay.first_decision_ms, "buy")
    assert (buy.side, buy.qty, buy.price, buy.fee) == (
        "buy", paper_buy.filled, paper_buy.average, paper_buy.fee_cost,
    )  # fmt: skip
    assert buy.qty > 0
    position = Position.objects.get(bot=bot)
    assert position.qty == buy.qty == balances(account)["BTC"].free
    assert position.entry_price == buy.price
    assert position.mark_price is not None
    # when: the next candle closes with the signal off
    sell = dispatch_until(
        lambda: Trade.objects.filter(bot=bot, side="sell").first(), timeout=TIMEOUT, what="sell"
    )
    # then: the position is closed, and its PnL is the round trip's, fees included
    orders = list(Order.objects.filter(bot=bot).order_by("id"))
    assert [(o.side, o.status, o.filled_qty, o.reason) for o in orders] == [
        ("buy", Order.Status.CLOSED, buy.qty, "signal"),
        ("sell", Order.Status.CLOSED, buy.qty, "signal"),
    ]
    assert [o.candle_ms for o in orders] == [replay.first_decision_ms, replay.start_ms]
    assert list(Trade.objects.filter(bot=bot).order_by("id")) == [buy, sell]
    assert sell.qty == buy.qty
    assert sell.pnl == (sell.price - buy.price) * sell.qty - buy.fee - sell.fee
    position = Position.objects.get(bot=bot)
    assert (position.qty, position.entry_price, position.pnl) == (0, None, sell.pnl)
    left = balances(account)
    assert left["BTC"].free == 0
    assert left["USDT"].free == USDT - buy.qty * buy.price - buy.fee + sell.qty * sell.price - (
        sell.fee
    )
    # and the worker's log tells the story, one line per tick and per order, with the bot's id,
    # symbol and action
    wait_until(
        lambda: len(trading_ticks(worker, bot)) == 2, timeout=TIMEOUT, what="the sell's log line"
    )
    ticks = trading_ticks(worker, bot)
    assert [(r["symbol"], r["action"], r["candle_ms"]) for r in ticks] == [
        (SYMBOL, "traded", replay.first_decision_ms),
        (SYMBOL, "traded", replay.start_ms),
    ]
    assert all(r["level"] == "INFO" and r["logger"] == "bots.tick" for r in ticks)
    order_lines = [
        (r["symbol"], r["action"], r["client_order_id"], r["order_status"], r["filled"])
        for r in log_records(worker, "bot.order", bot_id=bot.pk)
    ]
    assert order_lines == [
        (SYMBOL, f"{o.side}_placed", o.client_order_id, "closed", str(o.filled_qty)) for o in orders
    ]


# --- 2. Killed between sending an order and booking it -----------------------------------------


@pytest.mark.skipif(
    ON_SQLITE,
    reason="needs PostgreSQL: the test holds the tick with a row lock (SELECT ... FOR UPDATE), "
    "which SQLite does not have",
)
def test_a_worker_killed_after_sending_an_order_and_before_booking_it_leaves_one_order_and_one_trade(  # noqa: E501
    bot_workers: StartBotWorkers, user: Any, settings: Any
) -> None:
    # given: a replay whose first tick decides a buy, so slow (10 min a candle) that market time
    # stands still during the test; the workers' tick lease is 3 s
    lease = {"BOT_TICK_LEASE_SECONDS": "3"}
    replay, doomed, bot, account = on_a_worker(
        bot_workers, settings, user, then=1, candles=5, speed=0.1, env=lease
    )
    cid = client_order_id(bot.pk, replay.first_decision_ms, "buy")
    # and another session holding the bot's position row, which booking a fill locks first
    lock = PositionRowLock(bot)
    try:
        # when: the worker ticks
        send_tick(bot.pk)
        # then: the order reaches the exchange, and the tick waits to book it
        wait_until(
            lambda: PaperOrder.objects.filter(account=account, client_order_id=cid).exists(),
            timeout=TIMEOUT,
            what="the order to reach the paper exchange (if the tick is stuck on the lock "
            "before it, it now writes the position before sending, and this test cannot stop it "
            "between sending and booking with that lock any more)",
        )
        wait_until(
            lambda: sessions_waiting_for_a_lock() == 1,
            timeout=TIMEOUT,
            what="the tick to wait for the position's lock",
        )
        # when: the worker dies right there (SIGKILL: no clean-up of any kind)
        doomed.kill()
    finally:
        lock.release()
    # then: the books still hold the order as sent-but-unknown, and nothing of its fill
    order = Order.objects.get(bot=bot)
    assert (order.client_order_id, order.status, order.filled_qty) == (cid, Order.Status.PENDING, 0)
    assert order.exchange_order_id == ""
    assert not Trade.objects.filter(bot=bot).exists()
    assert Position.objects.get(bot=bot).qty == 0
    # while the exchange filled it
    paper = PaperOrder.objects.get(account=account)
    assert (paper.client_order_id, paper.status) == (cid, PaperOrder.Status.CLOSED)
    assert balances(account)["BTC"].free == paper.filled > 0
    assert not log_records(doomed, "bot.order", bot_id=bot.pk)
    # when: a new worker ticks the bot again once the dead tick's lease has lapsed
    [survivor] = bot_workers(queue=doomed.queue, env=lease)
    wait_for_lease_to_lapse(bot, timeout=TIMEOUT)
    send_tick(bot.pk)
    [tick] = wait_until(
        lambda: log_records(survivor, "bot.tick", bot_id=bot.pk),
        timeout=TIMEOUT,
        what="the new worker's tick",
    )
    # then: it adopts the order the exchange has instead of sending another, books its fill
    # once, and holds (same candle, same decision, already in the position)
    assert (tick["action"], tick["orders"], tick["candle_ms"]) == (
        "held", 0, replay.first_decision_ms,
    )  # fmt: skip
    [adopted] = log_records(survivor, "bot.order", bot_id=bot.pk)
    assert (adopted["action"], adopted["client_order_id"], adopted["order_status"]) == (
        "buy_adopted", cid, "closed",
    )  # fmt: skip
    assert PaperOrder.objects.filter(account=account).count() == 1
    order = Order.objects.get(bot=bot)
    assert (order.client_order_id, order.status) == (cid, Order.Status.CLOSED)
    assert (order.filled_qty, order.average_price, order.fee, order.exchange_order_id) == (
        paper.filled, paper.average, paper.fee_cost, paper.order_id,
    )  # fmt: skip
    trade = Trade.objects.get(bot=bot)
    assert (trade.order_id, trade.side, trade.qty, trade.price, trade.fee) == (
        order.pk, "buy", paper.filled, paper.average, paper.fee_cost,
    )  # fmt: skip
    position = Position.objects.get(bot=bot)
    left = balances(account)
    assert position.qty == left["BTC"].free + left["BTC"].used == trade.qty
    assert left["USDT"].free == USDT - (trade.qty * trade.price + trade.fee)
    assert left["USDT"].used == 0
    bot.refresh_from_db()
    assert (bot.status, bot.last_candle_ms, bot.last_error) == (
        Bot.Status.RUNNING, replay.first_decision_ms, "",
    )  # fmt: skip


# --- 3. A new worker carries on ------------------------------------------------------------------


def test_a_running_bot_keeps_ticking_on_a_new_worker_after_its_worker_is_stopped(
    bot_workers: StartBotWorkers, user: Any, settings: Any
) -> None:
    # given: a bot that buys on its first tick and then holds for 40 candles, at 3 s a candle,
    # ticked by a worker for three candles
    replay, first, bot, account = on_a_worker(
        bot_workers, settings, user, then=1, candles=40, speed=20
    )
    dispatch_until(
        lambda: len(decided_candles(bot)) >= 3, timeout=TIMEOUT, what="three candles decided"
    )
    # when: the worker is stopped (SIGTERM: a warm shutdown, the tick in hand finishes first)
    first.stop()
    assert first.process.returncode == 0, first.log()
    before = decided_candles(bot)
    # and beat's dispatcher sends the next tick while no worker runs (unless its last round
    # sent one the worker did not take before it stopped)
    wait_until(
        lambda: services.bots_dispatch(send=send_ticks) or queued_messages(first.queue),
        timeout=TIMEOUT,
        what="a tick waiting in the queue with no worker running",
        interval=0.1,
    )
    assert queued_messages(first.queue) == 1
    assert decided_candles(bot) == before
    # and a new worker starts on the same queue
    [second] = bot_workers(queue=first.queue)
    dispatch_until(
        lambda: len(decided_candles(bot)) >= len(before) + 2,
        timeout=TIMEOUT,
        what="two more candles decided",
    )
    # then: the new worker carried on from the candle after the last one decided (the state
    # is in the database), each candle decided once, in order
    by_first, by_second = ticks_on_candles(first, bot), ticks_on_candles(second, bot)
    assert by_first == before
    assert len(by_second) >= 2
    assert min(by_second) > max(by_first)
    decided = decided_candles(bot)
    assert decided[: len(by_first) + len(by_second)] == by_first + by_second
    # none skipped while no worker ran: the new worker caught up candle by candle
    assert decided == list(range(decided[0], decided[-1] + STEP_MS, STEP_MS))
    assert decided[0] == replay.first_decision_ms
    assert all(candle % STEP_MS == 0 for candle in decided)
    # and it still holds the one position the first worker bought: no second buy
    [order] = Order.objects.filter(bot=bot)
    assert (order.side, order.status, order.candle_ms) == ("buy", "closed", decided[0])
    assert Position.objects.get(bot=bot).qty == order.filled_qty == balances(account)["BTC"].free
    assert not log_records(second, "bot.order", bot_id=bot.pk)
    bot.refresh_from_db()
    assert (bot.status, bot.last_error) == (Bot.Status.RUNNING, "")
    assert bot.last_candle_ms is not None
    assert bot.last_candle_ms >= by_second[-1]
