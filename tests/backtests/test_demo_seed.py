"""``make run``'s seed leaves the demo trader a finished backtest on the sample candles."""

from __future__ import annotations

import io

from django.core.management import call_command

from accounts.models import User
from backtests.models import Backtest, RunStatus
from tradingbot.management.commands.seed_demo import DEMO_EMAIL


def test_the_seed_runs_a_demo_backtest_once_without_a_worker(db, strategy_catalogue):
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    call_command("seed_demo", stdout=io.StringIO())

    trader = User.objects.get(email=DEMO_EMAIL)
    [backtest] = Backtest.objects.filter(user=trader)
    assert backtest.status == RunStatus.DONE
    assert backtest.worker == "seed"
    assert backtest.candle_count == 10_999  # every shipped 5m candle
    assert backtest.trade_count == backtest.trades.count() > 100
    assert backtest.metrics is not None
    assert f"demo backtest #{backtest.pk} done" in out.getvalue()
