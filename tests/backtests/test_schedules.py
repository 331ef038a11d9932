"""Backtest schedules at the service level: the schedule and its beat PeriodicTask stay in step,
and every firing is a backtest in the schedule's history (a refused one as a failed backtest).

Firings run in the test process with an explicit ``now``; nothing is sent to a broker (the test
transaction never commits, so on-commit sends never happen).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone
from django_celery_beat.models import PeriodicTask
from django_celery_beat.schedulers import DatabaseScheduler

from backtests import services
from backtests.models import Backtest, BacktestSchedule, BacktestTrade, RunStatus
from backtests.tasks import run_scheduled_backtest_task
from tests.backtests.conftest import SampleMarket
from tests.backtests.run_helpers import beat_task, create_schedule, crontab_fields
from tradingbot.celery import app
from tradingbot.errors import AppError

SCHEDULED_TASK = "backtests.tasks.run_scheduled_backtest_task"


def last_close(market: SampleMarket) -> datetime:
    """When the last sample candle closed (``market.end`` is just after its open time)."""
    return market.end - timedelta(milliseconds=1) + timedelta(minutes=5)


# --- create -------------------------------------------------------------------------------------


def test_create_stores_the_schedule_and_its_beat_task(user, sample_candles, settings):
    settings.BACKTESTS_QUEUE = "scheduled-backtests"

    schedule = create_schedule(user, sample_candles, cron="30  4 * *   1-5")

    schedule.refresh_from_db()
    task = beat_task(schedule)
    assert schedule.periodic_task_id == task.pk
    assert schedule.cron == "30 4 * * 1-5"
    assert schedule.params == {"fast": 10, "slow": 30, "ma": "sma", "allow_short": False}
    assert task.task == SCHEDULED_TASK
    assert json.loads(task.kwargs) == {"schedule_id": schedule.pk}
    assert task.queue == "scheduled-backtests"
    assert crontab_fields(task) == ("30", "4", "*", "*", "1-5")
    assert task.crontab is not None
    assert str(task.crontab.timezone) == "UTC"
    assert task.enabled is True


def test_a_schedule_created_disabled_has_a_disabled_beat_task(user, sample_candles):
    schedule = create_schedule(user, sample_candles, enabled=False)

    assert beat_task(schedule).enabled is False


@pytest.mark.parametrize(
    "cron",
    [
        "0 2 * *",  # four fields
        "0 2 * * * *",  # six fields
        "61 * * * *",  # minute out of range
        "0 24 * * *",  # hour out of range
        "a b c d e",  # letters
        "-1 * * * *",  # celery raises its own ParseException for this one
        "1,,2 * * * *",  # an empty list item
        "0 0 * * mon#2",  # celery would read this as "every Monday"
        "0 0 * " + ",".join(["1"] * 40) + " *",  # longer than beat's month column
        "",
    ],
)
def test_an_invalid_cron_is_refused_and_nothing_is_written(user, strategy_catalogue, cron):
    with pytest.raises(AppError) as caught:
        create_schedule(user, market_of_sample(), cron=cron)

    assert caught.value.code == "invalid_cron"
    assert caught.value.status == 400
    assert "cron" in caught.value.details
    assert not BacktestSchedule.objects.exists()
    assert not PeriodicTask.objects.filter(task=SCHEDULED_TASK).exists()


def market_of_sample() -> SampleMarket:
    """The sample market's identity, for tests that fail before candles would matter."""
    moment = datetime(2023, 1, 2, tzinfo=UTC)
    return SampleMarket("bitget", "BTC/USDT", "5m", moment, moment + timedelta(days=1), 0)


def test_a_second_schedule_with_the_same_name_is_a_conflict(user, other_user, sample_candles):
    first = create_schedule(user, sample_candles)

    with pytest.raises(AppError) as caught:
        create_schedule(user, sample_candles, cron="0 3 * * *")

    assert caught.value.code == "duplicate_name"
    assert caught.value.status == 409
    assert list(BacktestSchedule.objects.values_list("pk", flat=True)) == [first.pk]
    assert PeriodicTask.objects.filter(task=SCHEDULED_TASK).count() == 1
    # the name is unique per user only
    create_schedule(other_user, sample_candles)
    assert PeriodicTask.objects.filter(task=SCHEDULED_TASK).count() == 2


def test_create_refuses_bad_params_without_writing_anything(user, sample_candles):
    with pytest.raises(AppError) as caught:
        create_schedule(user, sample_candles, params={"fast": 40, "slow": 30})

    assert caught.value.code == "invalid_params"
    assert not BacktestSchedule.objects.exists()
    assert not PeriodicTask.objects.filter(task=SCHEDULED_TASK).exists()


# --- update and delete --------------------------------------------------------------------------


def test_update_re_times_and_pauses_the_beat_task(user, sample_candles):
    schedule = create_schedule(user, sample_candles)
    task_id = beat_task(schedule).pk

    services.schedule_update(schedule=schedule, cron="*/15 9-17 * * mon-fri", enabled=False)

    task = beat_task(schedule)
    assert task.pk == task_id
    assert crontab_fields(task) == ("*/15", "9-17", "*", "*", "mon-fri")
    assert task.enabled is False
    schedule.refresh_from_db()
    assert schedule.cron == "*/15 9-17 * * mon-fri"
    assert schedule.enabled is False

    services.schedule_update(schedule=schedule, enabled=True)
    assert beat_task(schedule).enabled is True


def test_update_with_an_invalid_cron_changes_nothing(user, sample_candles):
    schedule = create_schedule(user, sample_candles)

    with pytest.raises(AppError) as caught:
        services.schedule_update(schedule=schedule, cron="0 99 * * *", enabled=False)

    assert caught.value.code == "invalid_cron"
    schedule.refresh_from_db()
    assert (schedule.cron, schedule.enabled) == ("0 2 * * *", True)
    task = beat_task(schedule)
    assert crontab_fields(task) == ("0", "2", "*", "*", "*")
    assert task.enabled is True


def test_delete_removes_the_beat_task_and_keeps_past_runs(user, sample_candles):
    schedule = create_schedule(user, sample_candles)
    run = services.schedule_run(schedule_id=schedule.pk, now=last_close(sample_candles))
    assert run is not None
    task_id = beat_task(schedule).pk

    services.schedule_delete(schedule=schedule)

    assert not BacktestSchedule.objects.exists()
    assert not PeriodicTask.objects.filter(pk=task_id).exists()
    run.refresh_from_db()
    assert run.schedule_id is None
    assert run.status == RunStatus.QUEUED


# --- firings ------------------------------------------------------------------------------------


def test_a_firing_backtests_the_lookback_up_to_the_last_closed_candle(user, sample_candles):
    schedule = create_schedule(user, sample_candles, lookback_days=15)
    fired_at = last_close(sample_candles) + timedelta(seconds=30)

    run = services.schedule_run(schedule_id=schedule.pk, now=fired_at)

    assert run is not None
    run.refresh_from_db()
    end = last_close(sample_candles)  # fired_at floored to the 5m timeframe
    assert (run.start, run.end) == (end - timedelta(days=15), end)
    assert run.status == RunStatus.QUEUED
    assert run.schedule_id == schedule.pk
    assert run.user_id == user.pk
    assert run.candle_count == sample_candles.count
    assert (run.strategy_id, run.params) == ("ma_cross", schedule.params)
    assert (run.initial_cash, run.fee_rate) == (schedule.initial_cash, schedule.fee_rate)
    schedule.refresh_from_db()
    assert schedule.last_run_at == fired_at


def test_a_firing_just_before_a_candle_closes_leaves_that_candle_out(user, sample_candles):
    schedule = create_schedule(user, sample_candles, lookback_days=15)
    still_open = last_close(sample_candles) - timedelta(seconds=1)

    run = services.schedule_run(schedule_id=schedule.pk, now=still_open)

    assert run is not None
    assert run.end == last_close(sample_candles) - timedelta(minutes=5)
    assert run.candle_count == sample_candles.count - 1


def test_a_scheduled_run_executes_to_done(user, sample_candles):
    schedule = create_schedule(user, sample_candles)
    run = services.schedule_run(schedule_id=schedule.pk, now=last_close(sample_candles))
    assert run is not None

    status = services.backtest_execute(backtest_id=run.pk, worker="test")

    assert status == RunStatus.DONE
    run.refresh_from_db()
    assert run.status == RunStatus.DONE
    assert run.metrics is not None
    assert run.metrics["trade_count"] == run.trade_count
    assert BacktestTrade.objects.filter(backtest=run).count() == run.trade_count > 0


def test_a_firing_over_a_period_without_candles_is_kept_as_a_failed_run(user, sample_candles):
    schedule = create_schedule(user, sample_candles, lookback_days=1)
    weeks_later = sample_candles.end + timedelta(days=60)

    run = services.schedule_run(schedule_id=schedule.pk, now=weeks_later)

    assert run is not None
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert "No BTC/USDT 5m candles" in run.error
    assert run.finished_at is not None
    assert run.end - run.start == timedelta(days=1)
    assert list(schedule.runs.values_list("pk", flat=True)) == [run.pk]
    schedule.refresh_from_db()
    assert schedule.last_run_at == weeks_later


def test_a_paused_schedule_does_not_run(user, sample_candles):
    schedule = create_schedule(user, sample_candles)
    services.schedule_update(schedule=schedule, enabled=False)

    run = services.schedule_run(schedule_id=schedule.pk, now=last_close(sample_candles))

    assert run is None
    assert not Backtest.objects.exists()
    schedule.refresh_from_db()
    assert schedule.last_run_at is None


def test_a_firing_of_a_deleted_schedule_does_nothing(user, sample_candles):
    schedule = create_schedule(user, sample_candles)
    schedule_id = schedule.pk
    services.schedule_delete(schedule=schedule)

    assert services.schedule_run(schedule_id=schedule_id) is None
    assert not Backtest.objects.exists()


def test_each_firing_adds_a_run_to_the_history(user, sample_candles):
    schedule = create_schedule(user, sample_candles, lookback_days=20)
    first = last_close(sample_candles)

    runs = [
        services.schedule_run(schedule_id=schedule.pk, now=first + timedelta(hours=hours))
        for hours in (0, 1, 2)
    ]

    assert all(run is not None for run in runs)
    history = list(schedule.runs.order_by("end"))
    assert [run.pk for run in history] == [run.pk for run in runs if run is not None]
    assert [run.end - first for run in history] == [timedelta(hours=h) for h in (0, 1, 2)]
    assert all(run.status == RunStatus.QUEUED for run in history)


def test_the_beat_task_kwargs_fire_the_schedule(user, sample_candles):
    # what beat sends: the task named on the PeriodicTask with its kwargs; the firing uses the
    # real clock, so the lookback reaches back to the sample's first candle from today
    days_since_sample = (timezone.now() - sample_candles.start).days + 2
    schedule = create_schedule(user, sample_candles, lookback_days=days_since_sample)
    task = beat_task(schedule)

    result = run_scheduled_backtest_task.apply(kwargs=json.loads(task.kwargs))

    run = Backtest.objects.get(pk=result.get())
    assert run.schedule_id == schedule.pk
    assert run.candle_count == sample_candles.count
    assert run.status == RunStatus.QUEUED


# --- beat's own scheduler -----------------------------------------------------------------------


def test_celery_beats_database_scheduler_sees_the_schedule_until_paused(
    user, sample_candles, settings
):
    # django-celery-beat only loads crontabs whose numeric hour is near the current one, so the
    # schedule fires this hour (a realistic numeric hour, not "*")
    hour = datetime.now(UTC).hour
    schedule = create_schedule(user, sample_candles, cron=f"15 {hour} * * *")
    name = f"backtest-schedule-{schedule.pk}"

    entries = DatabaseScheduler(app=app, lazy=True).all_as_schedule()

    assert name in entries
    entry = entries[name]
    assert entry.task == SCHEDULED_TASK
    assert entry.kwargs == {"schedule_id": schedule.pk}
    assert entry.options["queue"] == settings.BACKTESTS_QUEUE
    assert entry.schedule.minute == {15}
    assert entry.schedule.hour == {hour}
    assert str(entry.schedule.tz) == "UTC"

    services.schedule_update(schedule=schedule, enabled=False)

    assert name not in DatabaseScheduler(app=app, lazy=True).all_as_schedule()
