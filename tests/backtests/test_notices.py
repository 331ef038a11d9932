"""A finished backtest or sweep is told once to its owner's channels that take it."""

from __future__ import annotations

from typing import Any

from accounts.models import NotificationOutbox
from accounts.notifications import channel_create
from backtests import services
from backtests.models import RunStatus
from tests.backtests.run_helpers import create_backtest, run_sweep


def test_a_done_backtest_and_a_finished_sweep_are_told_once(user: Any, sample_candles: Any):
    # given a channel that takes finished runs, and one that does not
    channel_create(user=user, name="phone", url="json://127.0.0.1:9/x")
    channel_create(user=user, name="fills", url="json://127.0.0.1:9/y", kinds=["order_filled"])
    backtest = create_backtest(user, sample_candles)
    # when the backtest runs (and its message comes again), and a sweep finishes
    assert services.backtest_execute(backtest_id=backtest.pk) == RunStatus.DONE
    services.backtest_execute(backtest_id=backtest.pk)
    sweep = run_sweep(user, sample_candles)
    services.sweep_finish(sweep_id=sweep.pk)
    # then one row each, on the channel that takes them
    rows = list(NotificationOutbox.objects.order_by("id"))
    assert [(r.key, r.channel.name) for r in rows] == [
        (f"backtest-{backtest.pk}-done", "phone"),
        (f"sweep-{sweep.pk}-done", "phone"),
    ]
    assert rows[0].title == f"Backtest #{backtest.pk} done"
    assert "return " in rows[0].body
    assert "trades" in rows[0].body
    assert "combinations done" in rows[1].body
