"""A finished backtest, sweep, optimisation or walk-forward is told once to its owner's channels
that take it (a walk-forward's window optimisations are not told on their own)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from accounts.models import NotificationOutbox
from accounts.notifications import channel_create
from backtests import services
from backtests.models import RunStatus
from backtests.services import candle_cache
from backtests.services.optimization_trials import optimization_work
from backtests.spec import RunSpec
from tests.backtests.run_helpers import create_backtest, run_sweep
from tests.backtests.walk_forward_helpers import create_walk_forward, run_walk_forward, run_windows


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


def test_a_finished_optimization_is_told_once_with_its_best(
    user: Any, sample_candles: Any, django_capture_on_commit_callbacks: Any
):
    # given a channel that takes finished runs
    channel_create(user=user, name="phone", url="json://127.0.0.1:9/x")
    with django_capture_on_commit_callbacks(execute=False):  # nothing sent to a broker
        optimization = services.optimization_create(
            user=user,
            spec=RunSpec(
                strategy="ma_cross", exchange=sample_candles.exchange,
                symbol=sample_candles.symbol, timeframe=sample_candles.timeframe,
                initial_cash=Decimal(10_000), fee_rate=Decimal("0.001"), params={"ma": "sma"},
            ),
            start=sample_candles.start, end=sample_candles.end,
            space={"fast": {"low": 5, "high": 15}, "slow": {"low": 30, "high": 60}},
            objective="total_return", trials=3, seed=1,
        )  # fmt: skip
    candle_cache.forget()
    # when its trials run (and the finish is called again, as a second task would)
    optimization_work(optimization_id=optimization.pk)
    services.optimization_finish(optimization_id=optimization.pk)
    # then one row, naming the best
    rows = list(NotificationOutbox.objects.all())
    assert [(r.key, r.channel.name) for r in rows] == [
        (f"optimization-{optimization.pk}-done", "phone")
    ]
    assert rows[0].title == f"Optimization #{optimization.pk} done"
    assert "best " in rows[0].body
    assert "of 3 trials complete" in rows[0].body


def test_a_walk_forward_is_told_once_and_its_window_optimisations_never(
    user: Any, sample_candles: Any, django_capture_on_commit_callbacks: Any
):
    # given a channel that takes finished runs, and a walk-forward of two windows
    channel_create(user=user, name="phone", url="json://127.0.0.1:9/x")
    candle_cache.forget()
    with django_capture_on_commit_callbacks(execute=False):
        walk_forward = create_walk_forward(user, sample_candles, windows=2, trials=2)
    # when its windows are optimised and run, and the last window's task comes again
    walk_forward = run_walk_forward(walk_forward)
    run_windows(walk_forward.pk)
    # then one row: the walk-forward's, with its out-of-sample return
    assert walk_forward.status == RunStatus.DONE
    rows = list(NotificationOutbox.objects.all())
    assert [row.key for row in rows] == [f"walk-forward-{walk_forward.pk}-done"]
    assert rows[0].title == f"Walk-forward #{walk_forward.pk} done"
    assert "2 windows: out-of-sample return " in rows[0].body
