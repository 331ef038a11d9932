"""Sweep services in-process: create, run each combination, rank, cancel, recover from lost runs.

The batches are not sent here (on-commit callbacks are captured); each combination is run with
the task's body, as a batch of one (batches of several: test_sweep_batches). The fan-out over
real workers is in test_worker_runs.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from backtests import selectors, services
from backtests.engine import BacktestSettings
from backtests.models import RunStatus, Sweep, SweepRun
from backtests.runner import run_backtest
from backtests.services import candle_cache
from markets import selectors as market_selectors
from strategies.registry import active
from tests.backtests.conftest import SampleMarket
from tests.backtests.run_helpers import create_sweep
from tradingbot.errors import AppError

GRID = {"fast": [5, 10, 20], "slow": [30, 50]}


def create(user: Any, market: SampleMarket, **overrides: Any) -> Sweep:
    return create_sweep(user, market, **({"grid": GRID, "params": {}} | overrides))


@pytest.fixture
def no_broker(django_capture_on_commit_callbacks: Any) -> Any:
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        yield callbacks


def run_all(sweep: Sweep, worker: str = "w1") -> None:
    for run_id in sweep.runs.order_by("seq").values_list("pk", flat=True):
        services.sweep_run_execute(run_id=run_id, worker=worker)
    services.sweep_finish(sweep_id=sweep.pk)


def test_it_stores_one_queued_run_per_valid_combination(user, sample_candles, no_broker):
    sweep = create(user, sample_candles, grid={"fast": [5, 10, 40], "slow": [30, 50]})

    assert sweep.status == RunStatus.QUEUED
    assert sweep.combination_count == 5  # 40/30 breaks fast < slow
    assert sweep.skipped_count == 1
    assert sweep.candle_count == sample_candles.count
    runs = list(sweep.runs.order_by("seq"))
    assert [(r.params["fast"], r.params["slow"]) for r in runs] == [
        (5, 30), (5, 50), (10, 30), (10, 50), (40, 50),
    ]  # fmt: skip
    assert {r.status for r in runs} == {RunStatus.QUEUED}


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"grid": {"fast": list(range(2, 30)), "slow": list(range(30, 80))}}, "grid_too_large"),
        ({"grid": {"speed": [1]}}, "invalid_grid"),
        ({"strategy": "moon"}, "unknown_strategy"),
        ({"rank_by": "luck"}, "validation_error"),
        ({"symbol": "NOPE/USDT"}, "unknown_symbol"),
        ({"params": {"ma": "wma"}}, "invalid_params"),
    ],
)
def test_it_refuses_a_bad_sweep_and_writes_nothing(user, sample_candles, overrides, code):
    with pytest.raises(AppError) as caught:
        create(user, sample_candles, **overrides)

    assert caught.value.code == code
    assert caught.value.status == 400
    assert not Sweep.objects.exists()
    assert not SweepRun.objects.exists()


def test_each_combination_gets_the_metrics_of_a_plain_backtest_with_its_params(
    user, sample_candles, no_broker
):
    sweep = create(user, sample_candles)

    run_all(sweep)

    sweep.refresh_from_db()
    assert sweep.status == RunStatus.DONE
    assert (sweep.done_count, sweep.failed_count, sweep.progress) == (6, 0, 1.0)
    candles = sample_candles.frame(sweep)
    for run in sweep.runs.all():
        expected = run_backtest(
            candles, active().create("ma_cross", run.params), BacktestSettings()
        )
        assert run.metrics == pytest.approx(expected.metrics), run.params
        assert run.worker == "w1"


@pytest.mark.parametrize("rank_by", ["sharpe", "total_return", "max_drawdown"])
def test_the_ranking_puts_the_best_value_of_the_chosen_metric_first(
    user, sample_candles, no_broker, rank_by
):
    sweep = create(user, sample_candles, rank_by=rank_by)
    run_all(sweep)

    ranked = selectors.sweep_ranking(sweep=sweep)

    values = [run.metrics[rank_by] for run in ranked]
    assert values == sorted(values, reverse=True)
    assert len(values) == 6


def test_drawdown_duration_ranks_the_shortest_first(user, sample_candles, no_broker):
    sweep = create(user, sample_candles, rank_by="max_drawdown_duration")
    run_all(sweep)

    values = [run.metrics["max_drawdown_duration"] for run in selectors.sweep_ranking(sweep=sweep)]

    assert values == sorted(values)


def test_combinations_without_a_value_rank_last(user, sample_candles, no_broker):
    sweep = create(user, sample_candles)
    run_all(sweep)
    last = sweep.runs.order_by("seq").first()
    assert last is not None
    SweepRun.objects.filter(pk=last.pk).update(metrics={**last.metrics, "sharpe": None})

    ranked = selectors.sweep_ranking(sweep=sweep)

    assert ranked[-1].pk == last.pk


def test_a_failing_combination_is_recorded_and_the_others_still_rank(
    user, sample_candles, no_broker, monkeypatch
):
    sweep = create(user, sample_candles)
    cls = active().get("ma_cross")
    real = cls.target_position

    def fails_for_fast_20(self: Any, candles: Any) -> Any:
        if self.values["fast"] == 20:
            raise ValueError("fast 20 is cursed")
        return real(self, candles)

    monkeypatch.setattr(cls, "target_position", fails_for_fast_20)

    run_all(sweep)

    sweep.refresh_from_db()
    assert sweep.status == RunStatus.DONE
    assert (sweep.done_count, sweep.failed_count) == (4, 2)
    failed = sweep.runs.filter(status=RunStatus.FAILED)
    assert {r.error for r in failed} == {"fast 20 is cursed"}
    assert len(selectors.sweep_ranking(sweep=sweep)) == 4


def test_a_sweep_where_every_combination_failed_is_failed(
    user, sample_candles, no_broker, monkeypatch
):
    sweep = create(user, sample_candles)

    def always_fails(self: Any, candles: Any) -> Any:
        raise ValueError("nope")

    monkeypatch.setattr(active().get("ma_cross"), "target_position", always_fails)

    run_all(sweep)

    sweep.refresh_from_db()
    assert sweep.status == RunStatus.FAILED
    assert "Every combination failed" in sweep.error


def test_the_finish_callback_waits_while_combinations_are_left(user, sample_candles, no_broker):
    sweep = create(user, sample_candles)
    first = sweep.runs.order_by("seq").first()
    assert first is not None
    services.sweep_run_execute(run_id=first.pk)

    assert services.sweep_finish(sweep_id=sweep.pk) == RunStatus.RUNNING

    sweep.refresh_from_db()
    assert sweep.status == RunStatus.RUNNING
    assert sweep.progress == pytest.approx(1 / 6)


def test_a_worker_reads_the_candles_once_per_sweep(user, sample_candles, no_broker, monkeypatch):
    candle_cache.forget()
    reads = []
    real = market_selectors.candles_frame

    def counting(**kwargs: Any) -> Any:
        reads.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(market_selectors, "candles_frame", counting)
    sweep = create(user, sample_candles)

    run_all(sweep)

    assert len(reads) == 1


def test_cancel_skips_the_combinations_not_started(user, sample_candles, no_broker):
    sweep = create(user, sample_candles)
    first = sweep.runs.order_by("seq").first()
    assert first is not None
    services.sweep_run_execute(run_id=first.pk)

    cancelled = services.sweep_cancel(sweep=sweep)

    assert cancelled.status == RunStatus.CANCELLED
    run_all(sweep)  # the sweep's remaining messages arrive anyway
    assert sweep.runs.filter(status=RunStatus.DONE).count() == 1
    assert sweep.runs.filter(status=RunStatus.CANCELLED).count() == 5
    assert Sweep.objects.get(pk=sweep.pk).status == RunStatus.CANCELLED


def test_a_lost_combination_is_failed_and_the_sweep_finished_without_it(
    user, sample_candles, no_broker, settings
):
    settings.BACKTEST_STALE_SECONDS = 60
    sweep = create(user, sample_candles)
    runs = list(sweep.runs.order_by("seq"))
    for run in runs[1:]:
        services.sweep_run_execute(run_id=run.pk)
    # The first one's worker claimed it and was killed: no worker will record it.
    SweepRun.objects.filter(pk=runs[0].pk).update(
        status=RunStatus.RUNNING, heartbeat_at=timezone.now() - timedelta(seconds=61)
    )

    assert services.sweeps_fail_stale() == 1

    sweep.refresh_from_db()
    assert sweep.status == RunStatus.DONE
    assert (sweep.done_count, sweep.failed_count) == (5, 1)
    assert "stopped responding" in SweepRun.objects.get(pk=runs[0].pk).error


def test_deleting_a_sweep_deletes_its_runs(user, sample_candles, no_broker):
    sweep = create(user, sample_candles)

    services.sweep_delete(sweep=sweep)

    assert not SweepRun.objects.exists()
