"""The backtests admin's audit trail (one admin ``LogEntry`` per object a staff action touched)
and the list of sweep combinations. Actions that would enqueue work run inside
``django_capture_on_commit_callbacks(execute=False)`` so nothing reaches the broker.
"""

from __future__ import annotations

from typing import Any

from django.contrib.admin.models import ADDITION, CHANGE, LogEntry

from backtests import services
from backtests.models import Backtest, RunStatus, Sweep
from tests.backtests.run_helpers import create_backtest, create_schedule
from tests.backtests.test_admin import ADMIN, listed_ids, run_action, shown_messages


def entries(obj: Any, flag: int = CHANGE) -> list[tuple[int, str]]:
    return list(
        LogEntry.objects.filter(
            object_id=str(obj.pk), content_type__model=obj._meta.model_name, action_flag=flag
        )
        .order_by("id")
        .values_list("user_id", "change_message")
    )


def test_cancel_and_re_run_are_in_each_backtests_history(
    staff_client, staff, user, sample_candles, django_capture_on_commit_callbacks
):
    # given: a queued backtest
    queued = create_backtest(user, sample_candles)

    # when: staff cancel it, then re-run it
    run_action(staff_client, "backtest", "cancel_backtests", [queued])
    with django_capture_on_commit_callbacks(execute=False):
        run_action(staff_client, "backtest", "rerun_backtests", [queued])

    # then: the cancel and the re-run on the first, the re-run's origin on the new one
    rerun = Backtest.objects.exclude(pk=queued.pk).get()
    assert entries(queued) == [
        (staff.pk, "Cancelled (admin action)."),
        (staff.pk, f"Re-run (admin action) as backtest #{rerun.pk}."),
    ]
    assert entries(rerun, ADDITION) == [
        (staff.pk, f"Re-run of backtest #{queued.pk} (admin action).")
    ]


def test_cancelling_a_finished_backtest_logs_nothing(staff_client, user, sample_candles):
    queued = create_backtest(user, sample_candles)
    services.backtest_cancel(backtest=queued)

    run_action(staff_client, "backtest", "cancel_backtests", [queued])

    assert entries(queued) == []


def test_re_run_and_cancel_are_in_each_sweeps_history(
    staff_client, staff, done_sweep, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        run_action(staff_client, "sweep", "rerun_sweeps", [done_sweep])
    rerun = Sweep.objects.exclude(pk=done_sweep.pk).get()
    run_action(staff_client, "sweep", "cancel_sweeps", [rerun, done_sweep])

    assert entries(done_sweep) == [(staff.pk, f"Re-run (admin action) as sweep #{rerun.pk}.")]
    assert entries(rerun, ADDITION) == [
        (staff.pk, f"Re-run of sweep #{done_sweep.pk} (admin action).")
    ]
    assert entries(rerun) == [(staff.pk, "Cancelled (admin action).")]


def test_run_now_is_in_the_schedules_history(staff_client, staff, user, sample_candles):
    schedule = create_schedule(user, sample_candles, lookback_days=1)  # no candles that recent

    response = run_action(staff_client, "backtestschedule", "run_now", [schedule])

    run = Backtest.objects.get()
    assert run.status == RunStatus.FAILED
    assert shown_messages(response) == [f"nightly: {run.error}"]
    assert entries(schedule) == [(staff.pk, f"Run now (admin action): backtest #{run.pk}, failed.")]


# --- sweep combinations -------------------------------------------------------------------------


def test_sweep_combinations_are_listed_filtered_and_read_only(staff_client, done_sweep):
    runs = list(done_sweep.runs.order_by("seq"))
    failed = runs[0]
    done_sweep.runs.filter(pk=failed.pk).update(status=RunStatus.FAILED, error="it broke")
    url = f"{ADMIN}/sweeprun/"

    assert listed_ids(staff_client, f"{url}?sweep__id__exact={done_sweep.pk}") == {
        run.pk for run in runs
    }
    assert listed_ids(staff_client, f"{url}?status__exact=failed") == {failed.pk}
    assert listed_ids(staff_client, f"{url}?q={done_sweep.pk}") == {run.pk for run in runs}
    assert "it broke" in staff_client.get(url).content.decode()
    assert staff_client.get(f"{url}{failed.pk}/change/").status_code == 200
    assert staff_client.get(f"{url}add/").status_code == 403
    assert staff_client.post(f"{url}{failed.pk}/delete/", {"post": "yes"}).status_code == 403


def test_a_trader_who_is_not_staff_cannot_see_the_combinations(client, user):
    client.force_login(user)

    response = client.get(f"{ADMIN}/sweeprun/")

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")
