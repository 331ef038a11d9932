"""A bot tells its owner's channels of its fills, exits, errors and stops: one outbox row per
event, told once, delivered to a real local HTTP server (through a real Celery worker for the
first fill of a paper replay bot)."""

from __future__ import annotations

import time
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from accounts.delivery import channel_deliver
from accounts.models import NotificationOutbox
from accounts.notifications import channel_create
from bots import services
from bots.models import BotEvent, Order, Trade
from bots.services.notices import daily_summary_lines, exchange_error_spike, trade_kind
from tests.bots.bot_helpers import Scripted, live_bot, paper_account, replay_bot, scripted_bot

FIRST_BUY = 40  # ma_cross(5, 20) first buys a few candles after this row of the stretch


def rows_of(kind: str) -> list[NotificationOutbox]:
    return list(NotificationOutbox.objects.filter(kind=kind).order_by("id"))


@pytest.mark.usefixtures("scripted_strategies")
def test_fills_a_closed_trade_and_a_stop_are_each_told_once(
    user: Any, rows: list[Any], webhook_server: Any, settings: Any
) -> None:
    # given a channel and a started scripted bot
    settings.NOTIFY_MIN_INTERVAL_SECONDS = 0
    channel = channel_create(user=user, name="phone", url=webhook_server.url("hook"))
    runner = scripted_bot(user, paper_account(user), start_ms=rows[FIRST_BUY].open_time)
    runner.start()
    # when it buys, holds, sells, and is stopped
    Scripted.target = 1
    runner.tick()
    runner.next_candle()
    Scripted.target = 0
    runner.next_candle()
    services.bot_stop(bot=runner.refresh(), by=user)
    runner.next_candle()
    # then one row per fill and one for the stop, each with its facts
    [filled], [closed], [stopped] = (
        rows_of("order_filled"), rows_of("trade_closed"), rows_of("bot_stopped"),
    )  # fmt: skip
    assert filled.title == "scripted replay: buy filled"
    assert "BTC/USDT @ " in filled.body
    assert closed.title.startswith("scripted replay: trade closed ")
    assert "PnL" in closed.body
    assert stopped.body == "Stopped by the trader: open orders cancelled."
    # and delivering sends each once (batched), a second delivery nothing more
    assert channel_deliver(channel_id=channel.pk) == "sent"
    assert channel_deliver(channel_id=channel.pk) == "idle"
    [message] = webhook_server.wait_for(1)
    assert message.body["message"].count("•") == NotificationOutbox.objects.count()


@pytest.mark.usefixtures("scripted_strategies")
def test_a_crash_is_a_bot_error_and_a_ticks_rollback_tells_nothing_twice(
    user: Any, rows: list[Any]
) -> None:
    channel_create(user=user, name="phone", url="json://127.0.0.1:9/x")
    runner = replay_bot(user, paper_account(user), start_ms=rows[FIRST_BUY].open_time,
                        strategy="test_exploding", params={})  # fmt: skip
    runner.start()
    runner.tick()
    [error] = rows_of("bot_error")
    assert "indicator blew up" in error.body
    assert NotificationOutbox.objects.count() == 1


def test_exits_and_closing_fills_get_their_own_kind() -> None:
    def kind(reason: str, side: str, pnl: str, symbol: str = "BTC/USDT") -> str:
        order = Order(reason=reason, side=side, symbol=symbol)
        return trade_kind(order, Trade(side=side, symbol=symbol, pnl=Decimal(pnl)))

    assert kind("take_profit", "sell", "5") == "exit"
    assert kind("liquidation", "sell", "-50", "XRP/USDT:USDT") == "exit"
    assert kind("signal", "buy", "0") == "order_filled"
    assert kind("signal", "sell", "3") == "trade_closed"
    assert kind("signal", "sell", "0", "XRP/USDT:USDT") == "order_filled"  # opens a short


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(120)
def test_a_paper_replay_bots_first_fill_reaches_the_webhook_once_through_a_worker(
    user: Any, rows: list[Any], webhook_server: Any, celery_worker_process: Any, settings: Any
) -> None:
    # given a json:// channel and a paper replay bot; deliveries go to a real worker
    settings.NOTIFY_QUEUE = celery_worker_process.queue
    channel_create(user=user, name="phone", url=webhook_server.url("hook"))
    runner = replay_bot(user, paper_account(user), start_ms=rows[FIRST_BUY].open_time)
    runner.start()
    # when it ticks through the services until its first fill
    for _ in range(60):
        runner.next_candle()
        if runner.bot.trades.exists():
            break
    filled_at = time.time()
    assert runner.bot.trades.count() == 1
    # then the local server gets it within the minute, exactly once
    [message] = webhook_server.wait_for(1, timeout=60)
    assert message.at - filled_at < 60
    assert message.body["title"] == "ma_cross replay: buy filled"
    time.sleep(1.5)
    channel_deliver(channel_id=NotificationOutbox.objects.get().channel_id)
    assert len(webhook_server.received) == 1


@pytest.mark.usefixtures("scripted_strategies")
def test_the_daily_summary_lists_the_days_fills_and_pnl_by_bot(user: Any, rows: list[Any]):
    runner = scripted_bot(user, paper_account(user), start_ms=rows[FIRST_BUY].open_time)
    runner.start()
    Scripted.target = 1
    runner.tick()
    Scripted.target = 0
    runner.next_candle()
    trades = list(Trade.objects.filter(bot=runner.bot).order_by("time"))
    day_start = trades[0].time.replace(hour=0, minute=0, second=0, microsecond=0)
    lines = daily_summary_lines(user.pk, day_start, day_start + timedelta(days=1))
    pnl = sum(t.pnl for t in trades)
    assert lines[0] == f"scripted replay: 2 fills, PnL {'+' if pnl > 0 else ''}{pnl:.2f}"
    assert lines[-1] == "1 bot(s) running."


def test_many_exchange_errors_are_a_system_alert(user: Any, settings: Any) -> None:
    settings.NOTIFY_EXCHANGE_ERRORS = 3
    bot = live_bot(user)
    for kind in ("exchange_unavailable", "exchange_recovered", "exchange_unavailable"):
        BotEvent.objects.create(bot=bot, kind=kind, message="down")
    assert exchange_error_spike() is None
    BotEvent.objects.create(bot=bot, kind="exchange_auth_failed", message="key")
    assert exchange_error_spike() == "3 exchange errors in the last 10 minutes."
