"""``make run``'s seed leaves the demo trader finished backtests on the sample candles (spot, and
the perp sample at leverage 3) and a paper bot running on the replayed sample."""

from __future__ import annotations

import io

from django.core.management import call_command

from accounts.models import User
from backtests.models import Backtest, RunStatus
from bots import services
from bots.models import Bot, Position
from bots.services.demo import DEMO_BOT_NAME
from markets.candles import SAMPLE_PATH
from markets.models import Candle, FundingRate, MarkCandle
from markets.services import DEMO_PAPER_LABEL
from tests.bots.bot_helpers import sample_rows
from tradingbot.site.management.commands.seed_demo import DEMO_EMAIL


def test_the_seed_runs_a_demo_backtest_once_without_a_worker(db, strategy_catalogue):
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    call_command("seed_demo", stdout=io.StringIO())

    trader = User.objects.get(email=DEMO_EMAIL)
    [backtest] = Backtest.objects.filter(user=trader, symbol="BTC/USDT")
    assert backtest.status == RunStatus.DONE
    assert backtest.worker == "seed"
    assert backtest.candle_count == 10_999  # every shipped 5m candle
    assert backtest.trade_count == backtest.trades.count() > 100
    assert backtest.metrics is not None
    assert f"demo backtest #{backtest.pk} done" in out.getvalue()
    # the shipped perp sample too, once (the seed ran twice)
    perp = {"exchange": "bitget", "symbol": "XRP/USDT:USDT"}
    assert Candle.objects.filter(**perp, timeframe="5m").count() == 1_999
    assert MarkCandle.objects.filter(**perp).count() == 100 + 91
    assert FundingRate.objects.filter(**perp).count() == 91
    # and a finished perp backtest on it: shorts, leverage 3, funding paid and received
    [leveraged] = Backtest.objects.filter(user=trader, **perp)
    assert (leveraged.status, leveraged.leverage) == (RunStatus.DONE, 3)
    assert leveraged.trades.filter(side="short").exists()
    assert leveraged.metrics["funding_fees"] != 0
    assert f"demo perp backtest #{leveraged.pk} done" in out.getvalue()


def test_the_seed_starts_one_demo_replay_bot(db, strategy_catalogue):
    out = io.StringIO()
    call_command("seed_demo", stdout=out)

    trader = User.objects.get(email=DEMO_EMAIL)
    [bot] = Bot.objects.filter(user=trader)
    assert bot.name == DEMO_BOT_NAME
    assert bot.status == Bot.Status.RUNNING
    assert bot.next_tick_at is not None  # the dispatcher ticks it at once
    assert bot.exchange_account.label == DEMO_PAPER_LABEL
    assert bot.exchange_account.mode == "paper"
    assert bot.strategy_id == "ma_cross"
    assert (bot.params["fast"], bot.params["slow"]) == (5, 20)
    assert (bot.symbol, bot.timeframe) == ("BTC/USDT", "5m")
    assert bot.data_source == Bot.DataSource.REPLAY
    assert bot.replay_speed == 30.0
    assert (bot.order_size_kind, bot.order_size) == (Bot.OrderSizeKind.FRACTION, 1)
    # ~500 candles into the shipped sample, so the slow average has its history.
    assert SAMPLE_PATH.exists()
    assert bot.replay_start_ms == sample_rows()[500].open_time
    assert bot.replay_resume_ms == bot.replay_start_ms
    history = Candle.objects.filter(open_time__lt=bot.replay_start_ms, timeframe="5m")
    assert history.filter(symbol="BTC/USDT").count() == 500
    assert Position.objects.get(bot=bot).qty == 0
    assert bot.events.filter(kind="started").count() == 1
    assert f"demo bot “{DEMO_BOT_NAME}” running" in out.getvalue()

    call_command("seed_demo", stdout=io.StringIO())
    [again] = Bot.objects.filter(user=trader)
    assert again.pk == bot.pk
    assert again.events.filter(kind="started").count() == 1  # not started a second time


def test_a_second_seed_leaves_a_stopped_demo_bot_stopped(db, strategy_catalogue):
    call_command("seed_demo", stdout=io.StringIO())
    bot = Bot.objects.get(name=DEMO_BOT_NAME)
    bot = services.bot_stop(bot=bot)
    assert bot.status == Bot.Status.STOPPED

    call_command("seed_demo", stdout=io.StringIO())
    assert list(Bot.objects.values_list("pk", "status")) == [(bot.pk, Bot.Status.STOPPED)]


def test_the_demo_bot_trades_within_two_minutes_of_the_seed(db, strategy_catalogue):
    """Under ``make run`` the bot ticks on every replayed candle (one each 2 s at 30 a minute);
    here its ticks run on a clock moved on by hand over the first two minutes."""
    call_command("seed_demo", stdout=io.StringIO())
    bot = Bot.objects.get(name=DEMO_BOT_NAME)
    assert bot.replay_started_at is not None
    for second in range(0, 121, 2):
        services.bot_tick(bot_id=bot.pk, clock=lambda s=second: bot.replay_started_at + s)
    bot.refresh_from_db()
    assert bot.status == Bot.Status.RUNNING, bot.last_error
    assert bot.trades.exists()
    assert bot.orders.filter(status="closed").exists()
