"""The backtest services in-process: checks on create, a run's results, cancel, stale runs, retries.

Runs execute in the test process (``backtest_execute``); real workers are in test_worker_runs.
"""

from __future__ import annotations

import time
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone

from backtests import services
from backtests.engine import BacktestSettings
from backtests.models import Backtest, BacktestTrade, RunStatus
from backtests.runner import run_backtest
from markets.models import Candle
from strategies.models import Strategy as StrategyRow
from strategies.registry import active
from tests.backtests.conftest import SampleMarket
from tests.backtests.run_helpers import create_backtest as create
from tests.factories import UserFactory
from tradingbot.celery import app
from tradingbot.errors import AppError

MA_CROSS = {"fast": 10, "slow": 30, "ma": "sma"}


def assert_refused(user: Any, market: SampleMarket, code: str, **overrides: Any) -> AppError:
    with pytest.raises(AppError) as caught:
        create(user, market, **overrides)
    assert caught.value.code == code
    assert Backtest.objects.count() == 0
    return caught.value


# --- create -------------------------------------------------------------------------------------


def test_it_stores_a_queued_backtest_with_validated_params_and_the_candle_count(
    user, sample_candles
):
    backtest = create(user, sample_candles, params={"fast": 12.0, "slow": 40})

    backtest.refresh_from_db()
    assert backtest.status == RunStatus.QUEUED
    assert backtest.params == {"fast": 12, "slow": 40, "ma": "sma", "allow_short": False}
    assert backtest.candle_count == sample_candles.count
    assert backtest.progress == 0
    assert backtest.task_id


def test_it_enqueues_the_run_only_when_the_transaction_commits(
    user, sample_candles, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        create(user, sample_candles, enqueue=True)
    # one callback sends the task, the other publishes the "queued" event
    assert len(callbacks) == 2


def test_it_refuses_bad_params_with_every_field_named(user, sample_candles):
    error = assert_refused(
        user, sample_candles, "invalid_params", params={"fast": "ten", "slow": 1, "nope": 1}
    )
    assert set(error.details) == {"fast", "slow", "nope"}


def test_it_refuses_params_that_break_the_strategys_own_rule(user, sample_candles):
    error = assert_refused(user, sample_candles, "invalid_params", params={"fast": 30, "slow": 10})
    assert "slow" in error.details


def test_it_refuses_an_unknown_strategy_listing_the_known_ones(user, sample_candles):
    error = assert_refused(user, sample_candles, "unknown_strategy", strategy="moon")
    assert "ma_cross" in error.details["strategy"][0]


def test_it_refuses_a_strategy_staff_disabled(user, sample_candles):
    StrategyRow.objects.filter(key="ma_cross").update(enabled=False)
    assert_refused(user, sample_candles, "strategy_disabled")


def test_it_refuses_the_signals_strategy_which_would_trade_nothing(user, sample_candles):
    error = assert_refused(user, sample_candles, "not_backtestable", strategy="signals", params={})
    assert "signals a bot receives" in error.message


def test_it_refuses_an_unknown_symbol(user, sample_candles):
    assert_refused(user, sample_candles, "unknown_symbol", symbol="NOPE/USDT")


def test_it_refuses_an_empty_period(user, sample_candles):
    later = sample_candles.end + timedelta(days=30)
    error = assert_refused(
        user, sample_candles, "empty_period", start=later, end=later + timedelta(days=1)
    )
    assert error.status == 400


def test_it_refuses_a_period_that_ends_before_it_starts(user, sample_candles):
    assert_refused(
        user, sample_candles, "invalid_period", start=sample_candles.end, end=sample_candles.start
    )


def test_it_refuses_a_period_with_more_candles_than_allowed(user, sample_candles, settings):
    settings.BACKTEST_MAX_CANDLES = sample_candles.count - 1
    assert_refused(user, sample_candles, "period_too_long")


def test_it_refuses_more_active_runs_than_the_quota_per_user(user, sample_candles, settings):
    settings.BACKTEST_MAX_ACTIVE_PER_USER = 2
    create(user, sample_candles)
    create(user, sample_candles)

    with pytest.raises(AppError) as caught:
        create(user, sample_candles)

    assert caught.value.code == "too_many_active_runs"
    assert caught.value.status == 429
    assert Backtest.objects.filter(user=user).count() == 2
    create(UserFactory(), sample_candles)  # the quota is per user


def test_it_takes_the_strategys_stop_defaults_unless_given(user, sample_candles, monkeypatch):
    cls = active().get("ma_cross")
    monkeypatch.setattr(cls, "stop_loss", 0.05)

    defaulted = create(user, sample_candles)
    explicit_none = create(user, sample_candles, stop_loss=None)
    explicit = create(user, sample_candles, stop_loss=Decimal("0.02"))

    assert defaulted.stop_loss == Decimal("0.05")
    assert explicit_none.stop_loss is None
    assert explicit.stop_loss == Decimal("0.02")


# --- execute ------------------------------------------------------------------------------------


def test_a_run_stores_the_engines_trades_metrics_and_thinned_equity(user, sample_candles, settings):
    settings.BACKTEST_EQUITY_POINTS = 500
    backtest = create(user, sample_candles)

    assert services.backtest_execute(backtest_id=backtest.pk, worker="w1") == RunStatus.DONE

    backtest.refresh_from_db()
    expected = _engine_result(sample_candles)
    assert backtest.status == RunStatus.DONE
    assert backtest.progress == 1
    assert backtest.worker == "w1"
    assert backtest.attempts == 1
    assert backtest.finished_at is not None
    assert backtest.metrics == pytest.approx(expected.metrics)
    assert backtest.trade_count == len(expected.trades) > 10
    stored = list(backtest.trades.order_by("seq"))
    assert [trade.seq for trade in stored] == list(range(len(stored)))
    first, engine_first = stored[0], expected.trades.iloc[0]
    assert first.entry_time == engine_first["entry_time"]
    assert float(first.qty) == pytest.approx(engine_first["qty"], rel=1e-12)
    assert float(first.pnl) == pytest.approx(engine_first["pnl"], rel=1e-9, abs=1e-9)
    total_pnl = sum(float(trade.pnl) for trade in stored)
    assert total_pnl == pytest.approx(backtest.metrics["final_equity"] - 10_000, abs=1e-6)
    assert len(backtest.equity) <= 500
    assert backtest.equity[0][0] == sample_candles.start.timestamp() * 1000
    assert backtest.equity[-1][1] == pytest.approx(backtest.metrics["final_equity"])


def _engine_result(market: SampleMarket) -> Any:
    return run_backtest(market.frame(), active().create("ma_cross", MA_CROSS), BacktestSettings())


def test_a_message_delivered_again_after_the_run_finished_changes_nothing(user, sample_candles):
    backtest = create(user, sample_candles)
    services.backtest_execute(backtest_id=backtest.pk)
    before = list(BacktestTrade.objects.values_list("pk", flat=True))

    assert services.backtest_execute(backtest_id=backtest.pk) == RunStatus.DONE

    assert list(BacktestTrade.objects.values_list("pk", flat=True)) == before
    assert Backtest.objects.get(pk=backtest.pk).attempts == 1


def test_a_redelivery_after_a_lost_worker_runs_again_from_scratch(user, sample_candles):
    backtest = create(user, sample_candles)
    # The first worker claimed it and died half-way through storing (its trades are partial).
    Backtest.objects.filter(pk=backtest.pk).update(status=RunStatus.RUNNING, attempts=1)
    BacktestTrade.objects.create(
        backtest=backtest, seq=0, side="long", entry_time=0, exit_time=1, qty=1,
        entry_price=1, exit_price=1, fee=0, pnl=0, return_rate=0, exit_reason="signal",
    )  # fmt: skip

    assert services.backtest_execute(backtest_id=backtest.pk) == RunStatus.DONE

    backtest.refresh_from_db()
    assert backtest.attempts == 2
    assert backtest.trades.count() == backtest.trade_count
    assert backtest.trades.filter(entry_time=0).count() == 0


def test_it_gives_up_after_the_worker_was_lost_too_often(user, sample_candles, settings):
    settings.BACKTEST_MAX_ATTEMPTS = 2
    backtest = create(user, sample_candles)
    Backtest.objects.filter(pk=backtest.pk).update(status=RunStatus.RUNNING, attempts=2)

    assert services.backtest_execute(backtest_id=backtest.pk) == RunStatus.FAILED

    backtest.refresh_from_db()
    assert "lost 2 times" in backtest.error
    assert backtest.trades.count() == 0


def test_a_run_whose_candles_were_deleted_fails_with_a_clear_error(user, sample_candles):
    backtest = create(user, sample_candles)
    Candle.objects.all().delete()

    assert services.backtest_execute(backtest_id=backtest.pk) == RunStatus.FAILED

    backtest.refresh_from_db()
    assert backtest.error == "The candles of this period are no longer stored."
    assert backtest.finished_at is not None


def test_a_crash_inside_the_strategy_fails_the_run_without_leaking_details(
    user, sample_candles, monkeypatch, caplog
):
    backtest = create(user, sample_candles)
    cls = active().get("ma_cross")

    def explode(self: Any, candles: Any) -> Any:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(cls, "target_position", explode)

    assert services.backtest_execute(backtest_id=backtest.pk) == RunStatus.FAILED

    backtest.refresh_from_db()
    assert "secret" not in backtest.error
    assert "unexpected error" in backtest.error
    crashes = [r for r in caplog.records if r.getMessage() == "backtest.crashed"]
    assert len(crashes) == 1
    assert crashes[0].exc_info is not None


# --- cancel -------------------------------------------------------------------------------------


def test_a_cancelled_queued_backtest_is_skipped_by_the_worker(user, sample_candles):
    backtest = create(user, sample_candles)

    cancelled = services.backtest_cancel(backtest=backtest)

    assert cancelled.status == RunStatus.CANCELLED
    assert services.backtest_execute(backtest_id=backtest.pk) == RunStatus.CANCELLED
    assert Backtest.objects.get(pk=backtest.pk).attempts == 0


def test_cancel_leaves_a_finished_backtest_as_it_is(user, sample_candles):
    backtest = create(user, sample_candles)
    services.backtest_execute(backtest_id=backtest.pk)

    result = services.backtest_cancel(backtest=backtest)

    assert result.status == RunStatus.DONE
    assert result.trades.count() == result.trade_count


def test_a_cancel_during_the_run_wins_over_the_finishing_worker(user, sample_candles, monkeypatch):
    backtest = create(user, sample_candles)
    real_run = run_backtest

    def run_then_get_cancelled(*args: Any, **kwargs: Any) -> Any:
        result = real_run(*args, **kwargs)
        services.backtest_cancel(backtest=Backtest.objects.get(pk=backtest.pk))
        return result

    monkeypatch.setattr("backtests.services.backtests.run_backtest", run_then_get_cancelled)

    assert services.backtest_execute(backtest_id=backtest.pk) == RunStatus.CANCELLED

    backtest.refresh_from_db()
    assert backtest.status == RunStatus.CANCELLED
    assert backtest.trades.count() == 0
    assert backtest.metrics is None


# --- rerun and delete ---------------------------------------------------------------------------


def test_rerun_makes_a_new_queued_backtest_with_the_same_configuration(user, sample_candles):
    backtest = create(user, sample_candles, stop_loss=None, take_profit=Decimal("0.03"))
    services.backtest_execute(backtest_id=backtest.pk)

    again = services.backtest_rerun(backtest=backtest)

    assert again.pk != backtest.pk
    assert again.status == RunStatus.QUEUED
    for field in ("strategy_id", "params", "exchange", "symbol", "timeframe", "start", "end",
                  "initial_cash", "fee_rate", "stop_loss", "take_profit"):  # fmt: skip
        assert getattr(again, field) == getattr(backtest, field), field


def test_delete_removes_the_backtest_and_its_trades(user, sample_candles):
    backtest = create(user, sample_candles)
    services.backtest_execute(backtest_id=backtest.pk)

    services.backtest_delete(backtest=backtest)

    assert not Backtest.objects.exists()
    assert not BacktestTrade.objects.exists()


# --- stale runs ---------------------------------------------------------------------------------


def test_a_running_backtest_whose_worker_went_silent_is_failed(user, sample_candles, settings):
    settings.BACKTEST_STALE_SECONDS = 60
    silent = create(user, sample_candles)
    alive = create(user, sample_candles)
    now = timezone.now()
    Backtest.objects.filter(pk=silent.pk).update(
        status=RunStatus.RUNNING, heartbeat_at=now - timedelta(seconds=61)
    )
    Backtest.objects.filter(pk=alive.pk).update(
        status=RunStatus.RUNNING, heartbeat_at=now - timedelta(seconds=30)
    )

    assert services.backtests_fail_stale(now=now) == 1

    silent.refresh_from_db()
    alive.refresh_from_db()
    assert silent.status == RunStatus.FAILED
    assert "stopped responding" in silent.error
    assert alive.status == RunStatus.RUNNING
    # A late redelivery of the failed one is skipped.
    assert services.backtest_execute(backtest_id=silent.pk) == RunStatus.FAILED


def test_a_broker_outage_at_enqueue_fails_the_backtest_instead_of_leaving_it_queued(
    user, sample_candles, monkeypatch, django_capture_on_commit_callbacks
):
    def broker_down(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("broker down")

    monkeypatch.setattr(app, "send_task", broker_down)

    with django_capture_on_commit_callbacks(execute=True):
        backtest = create(user, sample_candles, enqueue=True)

    backtest.refresh_from_db()
    assert backtest.status == RunStatus.FAILED
    assert "task queue could not be reached" in backtest.error


@pytest.mark.django_db(transaction=True)
def test_a_step_slower_than_the_stale_limit_keeps_beating_and_is_not_failed(
    sample_candles, settings, monkeypatch
):
    # given: a 2 s stale limit (beats every second) and a strategy step of 3 s
    settings.BACKTEST_STALE_SECONDS = 2
    backtest = create(UserFactory(), sample_candles)
    verdicts = []

    def slow_run(*args: Any, **kwargs: Any) -> Any:
        time.sleep(3)
        verdicts.append(services.backtests_fail_stale())
        return run_backtest(*args, **kwargs)

    monkeypatch.setattr("backtests.services.backtests.run_backtest", slow_run)

    # when
    status = services.backtest_execute(backtest_id=backtest.pk)

    # then: the stale check, run in the middle of the long step, found it alive
    assert verdicts == [0]
    assert status == RunStatus.DONE
