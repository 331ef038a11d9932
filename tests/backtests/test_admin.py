"""The backtests admin, through the Django test client as a staff superuser.

Backtests, trades and sweeps are read-only results acted on through the services; schedules are
edited here and must keep their beat PeriodicTask in step. Actions that would enqueue work run
inside ``django_capture_on_commit_callbacks(execute=False)`` so nothing reaches the broker.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from backtests import selectors, services
from backtests.admin.schedules import RECENT_RUNS
from backtests.admin.sweeps import best_run
from backtests.models import (
    Backtest,
    BacktestSchedule,
    BacktestTrade,
    RunStatus,
    Sweep,
    SweepRun,
)
from markets.models import Candle
from tests.admin_helpers import run_admin_action, shown_messages
from tests.backtests.conftest import SampleMarket
from tests.backtests.run_helpers import (
    beat_task,
    create_backtest,
    create_schedule,
    create_sweep,
    crontab_fields,
    run_sweep,
)

ADMIN = "/admin/backtests"


@pytest.fixture
def done_backtest(user: Any, sample_candles: SampleMarket) -> Backtest:
    backtest = create_backtest(user, sample_candles)
    assert services.backtest_execute(backtest_id=backtest.pk) == RunStatus.DONE
    backtest.refresh_from_db()
    assert backtest.trade_count > 0
    return backtest


def schedule_form(user: Any, market: SampleMarket, **overrides: Any) -> dict[str, Any]:
    """The schedule add / change form as a browser posts it."""
    fields = {
        "name": "hourly",
        "user": user.pk,
        "enabled": "on",
        "cron": "15 * * * *",
        "lookback_days": "7",
        "strategy": "ma_cross",
        "params": json.dumps({"fast": 12, "slow": 40}),
        "exchange": market.exchange,
        "symbol": market.symbol,
        "timeframe": market.timeframe,
        "initial_cash": "5000",
        "fee_rate": "0.001",
        "slippage_bps": "0",
        "position_size": "1",
        "stop_loss": "",
        "take_profit": "",
        "leverage": "1",
        "margin_mode": "isolated",
        "_save": "Save",
    }
    return {key: value for key, value in (fields | overrides).items() if value is not None}


def run_action(client: Any, model: str, action: str, objects: list[Any]) -> Any:
    return run_admin_action(client, f"{ADMIN}/{model}/", action, objects)


def listed_ids(client: Any, url: str) -> set[int]:
    response = client.get(url)
    assert response.status_code == 200, url  # an unknown filter would redirect to ?e=1
    return {obj.pk for obj in response.context["cl"].result_list}


# --- access -------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["backtest", "backtesttrade", "sweep", "backtestschedule"])
def test_a_trader_who_is_not_staff_is_sent_to_the_admin_login(client, user, model):
    client.force_login(user)

    response = client.get(f"{ADMIN}/{model}/")

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


# --- pages --------------------------------------------------------------------------------------


def test_every_list_and_page_renders(staff_client, user, done_backtest, sample_candles):
    schedule = create_schedule(user, sample_candles)
    trade = BacktestTrade.objects.filter(backtest=done_backtest).first()
    assert trade is not None
    pages = [
        f"{ADMIN}/backtest/",
        f"{ADMIN}/backtest/{done_backtest.pk}/change/",
        f"{ADMIN}/backtesttrade/",
        f"{ADMIN}/backtesttrade/{trade.pk}/change/",
        f"{ADMIN}/sweep/",
        f"{ADMIN}/backtestschedule/",
        f"{ADMIN}/backtestschedule/add/",
        f"{ADMIN}/backtestschedule/{schedule.pk}/change/",
    ]
    for page in pages:
        assert staff_client.get(page).status_code == 200, page


def test_the_backtest_list_shows_results_from_the_metrics(staff_client, done_backtest):
    metrics = done_backtest.metrics
    assert metrics is not None

    content = staff_client.get(f"{ADMIN}/backtest/").content.decode()

    assert f"{metrics['final_equity']:,.2f}" in content
    assert f"{metrics['total_return'] * 100:+.2f} %" in content
    assert "bitget BTC/USDT 5m" in content


def test_a_backtest_page_is_read_only_and_links_to_its_trades(staff_client, done_backtest):
    response = staff_client.get(f"{ADMIN}/backtest/{done_backtest.pk}/change/")

    content = response.content.decode()
    assert response.context["has_change_permission"] is False
    assert 'name="_save"' not in content
    link = f"{ADMIN}/backtesttrade/?backtest__id__exact={done_backtest.pk}"
    assert f'href="{link}"' in content
    assert f"{done_backtest.trade_count} trades" in content
    # the trades are behind the link, not rendered on the page
    assert "/admin/backtests/backtesttrade/" + str(BacktestTrade.objects.first().pk) not in content


def test_the_trade_list_filters_by_backtest_exit_reason_and_side(
    staff_client, user, done_backtest, sample_candles
):
    other = create_backtest(user, sample_candles, params={"fast": 5, "slow": 20})
    services.backtest_execute(backtest_id=other.pk)
    trades = BacktestTrade.objects.filter(backtest=done_backtest)
    url = f"{ADMIN}/backtesttrade/?backtest__id__exact={done_backtest.pk}"

    response = staff_client.get(url)

    assert response.status_code == 200
    assert response.context["cl"].result_count == done_backtest.trade_count
    reason = trades.first().exit_reason  # type: ignore[union-attr]
    assert listed_ids(staff_client, f"{url}&exit_reason__exact={reason}") == set(
        trades.filter(exit_reason=reason).values_list("pk", flat=True)[:100]
    )
    longs = staff_client.get(f"{url}&side__exact=long").context["cl"].result_count
    assert longs == done_backtest.trade_count  # long-only params
    assert listed_ids(staff_client, f"{url}&side__exact=short") == set()


def test_trades_cannot_be_added_edited_or_deleted_one_by_one(staff_client, done_backtest):
    trade = BacktestTrade.objects.filter(backtest=done_backtest).first()
    assert trade is not None

    page = staff_client.get(f"{ADMIN}/backtesttrade/{trade.pk}/change/").content.decode()

    assert "deletelink" not in page
    assert staff_client.get(f"{ADMIN}/backtesttrade/add/").status_code == 403
    assert staff_client.post(f"{ADMIN}/backtesttrade/{trade.pk}/delete/").status_code == 403
    assert BacktestTrade.objects.filter(pk=trade.pk).exists()


def test_the_backtest_list_filters_and_searches(
    staff_client, user, other_user, done_backtest, sample_candles
):
    queued = create_backtest(other_user, sample_candles)
    schedule = create_schedule(user, sample_candles, lookback_days=1)
    scheduled = services.schedule_run(
        schedule_id=schedule.pk, now=sample_candles.end + timedelta(days=60)
    )
    assert scheduled is not None
    assert scheduled.status == RunStatus.FAILED
    everything = {done_backtest.pk, queued.pk, scheduled.pk}
    url = f"{ADMIN}/backtest/"
    # emails without digits, so that searching for an id cannot match an email too
    type(user).objects.filter(pk=user.pk).update(email="alice@example.com")
    type(user).objects.filter(pk=other_user.pk).update(email="bob@example.com")

    assert listed_ids(staff_client, url) == everything
    assert listed_ids(staff_client, f"{url}?status__exact=done") == {done_backtest.pk}
    assert listed_ids(staff_client, f"{url}?status__exact=queued") == {queued.pk}
    assert listed_ids(staff_client, f"{url}?schedule__isempty=0") == {scheduled.pk}
    assert listed_ids(staff_client, f"{url}?schedule__isempty=1") == {done_backtest.pk, queued.pk}
    assert listed_ids(staff_client, f"{url}?strategy__key__exact=ma_cross") == everything
    assert listed_ids(staff_client, f"{url}?strategy__key__exact=macd") == set()
    assert listed_ids(staff_client, f"{url}?exchange=bitget&timeframe__exact=5m") == everything
    assert listed_ids(staff_client, f"{url}?timeframe__exact=1h") == set()
    assert listed_ids(staff_client, f"{url}?q=bob@example") == {queued.pk}
    assert listed_ids(staff_client, f"{url}?q={done_backtest.pk}") == {done_backtest.pk}


# --- backtest actions ---------------------------------------------------------------------------


def test_re_run_queues_a_new_backtest_per_selected_one(
    staff_client, done_backtest, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = run_action(staff_client, "backtest", "rerun_backtests", [done_backtest])

    assert "1 backtest(s) queued again." in shown_messages(response)
    rerun = Backtest.objects.exclude(pk=done_backtest.pk).get()
    assert rerun.status == RunStatus.QUEUED
    assert (rerun.start, rerun.end, rerun.params) == (
        done_backtest.start,
        done_backtest.end,
        done_backtest.params,
    )
    assert rerun.user_id == done_backtest.user_id
    assert callbacks  # its send waits for the commit, which this test never makes


def test_re_run_reports_a_backtest_whose_candles_are_gone_and_creates_nothing(
    staff_client, done_backtest, django_capture_on_commit_callbacks
):
    Candle.objects.all().delete()

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = run_action(staff_client, "backtest", "rerun_backtests", [done_backtest])

    errors = shown_messages(response)
    assert len(errors) == 1
    assert errors[0].startswith(f"Backtest {done_backtest.pk} ")
    assert "No BTC/USDT 5m candles of bitget are stored" in errors[0]
    assert list(Backtest.objects.values_list("pk", flat=True)) == [done_backtest.pk]
    assert callbacks == []


def test_cancel_stops_the_active_backtests_and_leaves_finished_ones(
    staff_client, user, done_backtest, sample_candles
):
    queued = create_backtest(user, sample_candles)

    response = run_action(staff_client, "backtest", "cancel_backtests", [queued, done_backtest])

    queued.refresh_from_db()
    done_backtest.refresh_from_db()
    assert queued.status == RunStatus.CANCELLED
    assert done_backtest.status == RunStatus.DONE
    assert shown_messages(response) == [
        "1 backtest(s) cancelled.",
        "1 had already finished; left as they were.",
    ]


def test_deleting_a_backtest_counts_its_trades_and_deletes_them(staff_client, done_backtest):
    url = f"{ADMIN}/backtest/{done_backtest.pk}/delete/"

    confirmation = staff_client.get(url)

    assert confirmation.status_code == 200
    assert dict(confirmation.context["model_count"]) == {
        "backtests": 1,
        "backtest trades": done_backtest.trade_count,
    }
    assert staff_client.post(url, {"post": "yes"}).status_code == 302
    assert not Backtest.objects.exists()
    assert not BacktestTrade.objects.exists()


# --- sweeps -------------------------------------------------------------------------------------


def test_the_sweep_pages_show_progress_and_the_best_result(staff_client, done_sweep):
    best = selectors.sweep_ranking(sweep=done_sweep, limit=1)[0]

    listing = staff_client.get(f"{ADMIN}/sweep/")
    page = staff_client.get(f"{ADMIN}/sweep/{done_sweep.pk}/change/")

    assert listing.status_code == page.status_code == 200
    best_params = "allow_short=False, fast={fast}, ma=ema, slow={slow}".format(**best.params)
    assert f"sharpe {best.metrics['sharpe']:.4g}: {best_params}" in listing.content.decode()
    assert page.context["has_change_permission"] is False
    inline = page.context["inline_admin_formsets"][0]
    assert [form.original.seq for form in inline] == list(range(done_sweep.combination_count))


@pytest.mark.parametrize(
    "rank_by", ["sharpe", "total_return", "max_drawdown", "max_drawdown_duration", "profit_factor"]
)
def test_the_best_result_column_agrees_with_the_service_ranking(
    user, sample_candles, django_capture_on_commit_callbacks, rank_by
):
    with django_capture_on_commit_callbacks(execute=False):
        sweep = run_sweep(user, sample_candles, rank_by=rank_by)

    assert best_run(sweep) == selectors.sweep_ranking(sweep=sweep, limit=1)[0]


def test_the_sweep_list_filters_by_status_and_strategy(staff_client, done_sweep):
    url = f"{ADMIN}/sweep/"

    assert listed_ids(staff_client, f"{url}?status__exact=done") == {done_sweep.pk}
    assert listed_ids(staff_client, f"{url}?status__exact=queued") == set()
    assert listed_ids(staff_client, f"{url}?strategy__key__exact=ma_cross") == {done_sweep.pk}


def test_re_run_sweeps_queues_the_same_grid_again(
    staff_client, done_sweep, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        response = run_action(staff_client, "sweep", "rerun_sweeps", [done_sweep])

    assert "1 sweep(s) queued again." in shown_messages(response)
    again = Sweep.objects.exclude(pk=done_sweep.pk).get()
    assert again.status == RunStatus.QUEUED
    assert (again.grid, again.params, again.rank_by) == (
        done_sweep.grid,
        done_sweep.params,
        done_sweep.rank_by,
    )
    assert again.combination_count == done_sweep.combination_count
    assert list(again.runs.values_list("params", flat=True)) == list(
        done_sweep.runs.values_list("params", flat=True)
    )


def test_cancel_sweeps_cancels_a_queued_sweep_and_its_combinations(
    staff_client, user, sample_candles, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        sweep = create_sweep(user, sample_candles, grid={"fast": [5, 10]}, params={})

    response = run_action(staff_client, "sweep", "cancel_sweeps", [sweep])

    sweep.refresh_from_db()
    assert sweep.status == RunStatus.CANCELLED
    assert set(sweep.runs.values_list("status", flat=True)) == {RunStatus.CANCELLED}
    assert "1 sweep(s) cancelled." in shown_messages(response)


def test_deleting_a_sweep_deletes_its_combinations(staff_client, done_sweep):
    url = f"{ADMIN}/sweep/{done_sweep.pk}/delete/"

    assert dict(staff_client.get(url).context["model_count"]) == {
        "sweeps": 1,
        "sweep combinations": done_sweep.combination_count,
    }
    assert staff_client.post(url, {"post": "yes"}).status_code == 302
    assert not Sweep.objects.exists()
    assert not SweepRun.objects.exists()


# --- schedules ----------------------------------------------------------------------------------


def test_adding_a_schedule_creates_its_beat_task(staff_client, user, sample_candles):
    response = staff_client.post(
        f"{ADMIN}/backtestschedule/add/", schedule_form(user, sample_candles, cron="15  */6 * * *")
    )

    assert response.status_code == 302
    schedule = BacktestSchedule.objects.get()
    assert (schedule.user_id, schedule.name, schedule.cron) == (user.pk, "hourly", "15 */6 * * *")
    assert schedule.params == {"fast": 12, "slow": 40, "ma": "sma", "allow_short": False}
    task = beat_task(schedule)
    assert schedule.periodic_task_id == task.pk
    assert crontab_fields(task) == ("15", "*/6", "*", "*", "*")
    assert task.crontab is not None
    assert str(task.crontab.timezone) == "UTC"
    assert json.loads(task.kwargs) == {"schedule_id": schedule.pk}
    assert task.task == "backtests.tasks.run_scheduled_backtest_task"
    assert task.enabled is True


def test_editing_a_schedule_re_times_and_pauses_its_beat_task(staff_client, user, sample_candles):
    schedule = create_schedule(user, sample_candles)
    task_id = beat_task(schedule).pk

    response = staff_client.post(
        f"{ADMIN}/backtestschedule/{schedule.pk}/change/",
        schedule_form(user, sample_candles, name="nightly", cron="45 3 * * 1-5", enabled=None),
    )

    assert response.status_code == 302
    task = beat_task(schedule)
    assert task.pk == task_id
    assert crontab_fields(task) == ("45", "3", "*", "*", "1-5")
    assert task.enabled is False
    schedule.refresh_from_db()
    assert (schedule.cron, schedule.enabled, schedule.lookback_days) == ("45 3 * * 1-5", False, 7)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"cron": "61 * * * *"}, "cron"),
        ({"cron": "0 2 * *"}, "cron"),
        ({"params": json.dumps({"fast": 50, "slow": 40})}, "params"),
        ({"params": json.dumps({"speed": 3})}, "params"),
        ({"symbol": "NOPE/USDT"}, "symbol"),
        ({"lookback_days": "0"}, "lookback_days"),
        ({"lookback_days": "5000"}, "lookback_days"),
        ({"leverage": "3"}, "leverage"),  # BTC/USDT is spot
        ({"params": json.dumps({"fast": 12, "slow": 40, "allow_short": True})}, "params"),
        ({"leverage": "0"}, "leverage"),
    ],
)
def test_a_bad_schedule_form_is_shown_again_with_the_error(
    staff_client, user, sample_candles, overrides, field
):
    tasks_before = PeriodicTask.objects.count()

    response = staff_client.post(
        f"{ADMIN}/backtestschedule/add/", schedule_form(user, sample_candles, **overrides)
    )

    assert response.status_code == 200
    assert field in response.context["adminform"].form.errors
    assert not BacktestSchedule.objects.exists()
    assert PeriodicTask.objects.count() == tasks_before


def test_a_bad_cron_on_edit_keeps_the_schedule_and_its_beat_task(
    staff_client, user, sample_candles
):
    schedule = create_schedule(user, sample_candles)

    response = staff_client.post(
        f"{ADMIN}/backtestschedule/{schedule.pk}/change/",
        schedule_form(user, sample_candles, name="nightly", cron="0 2 * * mon#2"),
    )

    assert response.status_code == 200
    assert "cron" in response.context["adminform"].form.errors
    schedule.refresh_from_db()
    assert schedule.cron == "0 2 * * *"
    assert crontab_fields(beat_task(schedule)) == ("0", "2", "*", "*", "*")


def test_a_duplicate_name_for_the_same_user_is_a_form_error(staff_client, user, sample_candles):
    create_schedule(user, sample_candles, name="hourly")

    response = staff_client.post(
        f"{ADMIN}/backtestschedule/add/", schedule_form(user, sample_candles)
    )

    assert response.status_code == 200
    assert response.context["adminform"].form.errors
    assert BacktestSchedule.objects.count() == 1


def test_deleting_a_schedule_deletes_its_beat_task_and_keeps_its_runs(
    staff_client, user, sample_candles
):
    schedule = create_schedule(user, sample_candles, lookback_days=1)
    run = services.schedule_run(schedule_id=schedule.pk, now=sample_candles.end + timedelta(days=9))
    assert run is not None
    task_id = beat_task(schedule).pk
    url = f"{ADMIN}/backtestschedule/{schedule.pk}/delete/"

    assert staff_client.get(url).status_code == 200
    assert staff_client.post(url, {"post": "yes"}).status_code == 302

    assert not BacktestSchedule.objects.exists()
    assert not PeriodicTask.objects.filter(pk=task_id).exists()
    run.refresh_from_db()
    assert run.schedule_id is None


def test_bulk_deleting_schedules_deletes_their_beat_tasks(staff_client, user, sample_candles):
    schedules = [
        create_schedule(user, sample_candles, name=name) for name in ("one", "two", "three")
    ]
    kept = schedules.pop()

    staff_client.post(
        f"{ADMIN}/backtestschedule/",
        {
            "action": "delete_selected",
            "_selected_action": [s.pk for s in schedules],
            "index": 0,
            "post": "yes",
        },
    )

    assert list(BacktestSchedule.objects.values_list("pk", flat=True)) == [kept.pk]
    names = PeriodicTask.objects.filter(task="backtests.tasks.run_scheduled_backtest_task")
    assert list(names.values_list("name", flat=True)) == [f"backtest-schedule-{kept.pk}"]


def test_run_now_queues_a_run_and_reports_paused_schedules(
    staff_client, user, sample_candles, django_capture_on_commit_callbacks
):
    # "now" is the real clock here: the lookback reaches back to the sample's candles
    days = (timezone.now() - sample_candles.start).days + 2
    active = create_schedule(user, sample_candles, name="active", lookback_days=days)
    paused = create_schedule(user, sample_candles, name="paused", enabled=False)

    with django_capture_on_commit_callbacks(execute=False):
        response = run_action(staff_client, "backtestschedule", "run_now", [active, paused])

    run = Backtest.objects.get()
    assert run.schedule_id == active.pk
    assert run.status == RunStatus.QUEUED
    assert run.candle_count == sample_candles.count
    assert set(shown_messages(response)) == {"1 run(s) queued.", "paused: paused, not run."}


def test_run_now_reports_a_firing_without_candles(staff_client, user, sample_candles):
    schedule = create_schedule(user, sample_candles, lookback_days=1)

    response = run_action(staff_client, "backtestschedule", "run_now", [schedule])

    run = Backtest.objects.get()
    assert run.status == RunStatus.FAILED
    assert shown_messages(response) == [f"nightly: {run.error}"]


def test_a_schedule_page_lists_its_last_runs_with_links(staff_client, user, sample_candles):
    schedule = create_schedule(user, sample_candles, lookback_days=1)
    later = sample_candles.end + timedelta(days=30)
    runs = [
        services.schedule_run(schedule_id=schedule.pk, now=later + timedelta(hours=hour))
        for hour in range(RECENT_RUNS + 2)
    ]

    content = staff_client.get(f"{ADMIN}/backtestschedule/{schedule.pk}/change/").content.decode()

    linked = [
        run.pk for run in runs if run and f'href="{ADMIN}/backtest/{run.pk}/change/"' in content
    ]
    newest = sorted((run.pk for run in runs if run), reverse=True)[:RECENT_RUNS]
    assert sorted(linked, reverse=True) == newest
    assert f'href="{ADMIN}/backtest/?schedule__id__exact={schedule.pk}"' in content
    assert listed_ids(staff_client, f"{ADMIN}/backtest/?schedule__id__exact={schedule.pk}") == {
        run.pk for run in runs if run
    }
