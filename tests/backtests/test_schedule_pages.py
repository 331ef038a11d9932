"""A schedule's page: its next run, run now, edit, pause/resume and delete (the services the API
uses, behind CSRF-protected forms), and the warning when its period has no stored candles."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.test import Client
from django_celery_beat.models import PeriodicTask

from backtests.models import Backtest, BacktestSchedule
from backtests.schedule_status import schedule_coverage, schedule_next_run
from tests.backtests.test_pages import field_errors, find, html, make_schedule, tags, text
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def trader_client(client: Any, user: Any) -> Any:
    client.force_login(user)
    return client


def test_the_next_run_is_celerys_reading_of_the_cron_in_the_traders_time_zone(
    trader_client, user, sample_candles
):
    # given a schedule every Monday at 03:00 UTC, and a trader in Tokyo
    schedule = make_schedule(user, sample_candles, cron="0 3 * * mon")
    user.time_zone = "Asia/Tokyo"
    user.save()
    now = datetime(2026, 12, 9, 12, 0, tzinfo=UTC)  # a Wednesday

    # then the next run is the coming Monday, 03:00 UTC (12:00 in Tokyo)
    assert schedule_next_run(schedule, now) == datetime(2026, 12, 14, 3, 0, tzinfo=UTC)
    upcoming = schedule_next_run(schedule, datetime.now(tz=UTC))
    assert upcoming is not None
    shown = upcoming.astimezone(ZoneInfo("Asia/Tokyo")).strftime("%Y-%m-%d %H:%M JST")
    page = html(trader_client.get(f"/schedules/{schedule.pk}/"))
    assert text(find(page, id="schedule-next-run")) == shown
    row = find(html(trader_client.get("/schedules/")), id=f"schedule-{schedule.pk}")
    assert text(find(row, class_="next-run")) == shown
    # and a paused schedule has none
    schedule.enabled = False
    assert schedule_next_run(schedule, now) is None


def test_run_now_queues_a_backtest_of_the_last_n_days(
    trader_client, user, sample_candles, django_capture_on_commit_callbacks
):
    schedule = make_schedule(user, sample_candles, lookback_days=3650)

    with django_capture_on_commit_callbacks(execute=False):
        response = trader_client.post(f"/schedules/{schedule.pk}/run/")

    backtest = Backtest.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/schedules/{schedule.pk}/"
    assert (backtest.schedule, backtest.status, backtest.user) == (schedule, "queued", user)
    assert backtest.end - backtest.start == timedelta(days=3650)
    page = html(trader_client.get(response["Location"]))
    assert f"Backtest #{backtest.pk} queued" in text(find(page, class_="messages"))


def test_run_now_of_a_paused_schedule_says_so_and_runs_nothing(trader_client, user, sample_candles):
    schedule = make_schedule(user, sample_candles, enabled=False)

    response = trader_client.post(f"/schedules/{schedule.pk}/run/", follow=True)

    assert "is paused: resume it to run it" in text(find(html(response), class_="messages"))
    assert not Backtest.objects.exists()


def test_pause_then_delete_from_the_page(trader_client, user, sample_candles):
    schedule = make_schedule(user, sample_candles)
    task_id = schedule.periodic_task_id
    page = html(trader_client.get(f"/schedules/{schedule.pk}/"))
    actions = find(page, id="schedule-actions")
    forms = {dict(form.attributes)["action"]: form for form in tags(actions, "form")}
    delete = forms[f"/schedules/{schedule.pk}/delete/"]
    assert "Delete the schedule “nightly”?" in dict(delete.attributes)["data-confirm"]
    assert f"/schedules/{schedule.pk}/pause/" in forms

    trader_client.post(f"/schedules/{schedule.pk}/pause/", {"back": "detail"})
    schedule.refresh_from_db()
    assert not schedule.enabled
    response = trader_client.post(f"/schedules/{schedule.pk}/delete/")

    assert response.status_code == 302
    assert response["Location"] == "/schedules/"
    assert not BacktestSchedule.objects.exists()
    assert not PeriodicTask.objects.filter(pk=task_id).exists()


def test_the_actions_need_the_csrf_token(user, sample_candles):
    schedule = make_schedule(user, sample_candles)
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)

    for action in ("run", "delete", "pause"):
        assert client.post(f"/schedules/{schedule.pk}/{action}/").status_code == 403
    assert BacktestSchedule.objects.get().enabled
    assert not Backtest.objects.exists()


@pytest.mark.parametrize("action", ["run", "delete", "pause", "resume", "edit"])
def test_another_traders_schedule_is_a_404_and_stays_untouched(
    trader_client, sample_candles, action
):
    schedule = make_schedule(UserFactory(), sample_candles)

    response = trader_client.post(f"/schedules/{schedule.pk}/{action}/", {"name": "mine"})

    assert response.status_code == 404
    assert trader_client.get(f"/schedules/{schedule.pk}/edit/").status_code == 404
    stored = BacktestSchedule.objects.get()
    assert (stored.name, stored.enabled) == ("nightly", True)
    assert not Backtest.objects.exists()


def test_edit_changes_the_timing_and_its_beat_task(trader_client, user, sample_candles):
    schedule = make_schedule(user, sample_candles)
    page = html(trader_client.get(f"/schedules/{schedule.pk}/edit/"))
    assert dict(find(page, name="cron").attributes)["value"] == "0 2 * * *"

    form = {"name": "weekly", "cron": "30 4 * * sun", "lookback_days": "7", "enabled": "on"}
    response = trader_client.post(f"/schedules/{schedule.pk}/edit/", form)

    schedule.refresh_from_db()
    assert response["Location"] == f"/schedules/{schedule.pk}/"
    assert (schedule.name, schedule.cron, schedule.lookback_days) == ("weekly", "30 4 * * sun", 7)
    crontab = PeriodicTask.objects.get(pk=schedule.periodic_task_id).crontab
    assert (crontab.minute, crontab.hour, crontab.day_of_week) == ("30", "4", "sun")


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"cron": "daily"}, "cron", "give five fields: minute hour day-of-month month day-of-week"),
        ({"lookback_days": "0"}, "lookback_days", "Ensure this value is greater than or equal"),
        ({"name": "taken"}, "name", "already used"),
    ],
)
def test_a_refused_edit_shows_why_next_to_the_field_and_changes_nothing(
    trader_client, user, sample_candles, changes, field, message
):
    schedule = make_schedule(user, sample_candles)
    make_schedule(user, sample_candles, name="taken")
    form = {"name": "nightly", "cron": "0 2 * * *", "lookback_days": "30", "enabled": "on"}

    response = trader_client.post(f"/schedules/{schedule.pk}/edit/", form | changes)

    assert response.status_code == 400
    assert any(message in error for error in field_errors(html(response), field))
    schedule.refresh_from_db()
    assert (schedule.name, schedule.cron, schedule.lookback_days) == ("nightly", "0 2 * * *", 30)


def test_a_period_without_stored_candles_is_warned_about(trader_client, user, sample_candles):
    # given the sample (two weeks of 2023) and a schedule over the last 30 days: none of it
    schedule = make_schedule(user, sample_candles, lookback_days=30)

    page = html(trader_client.get(f"/schedules/{schedule.pk}/"))

    warning = text(find(page, id="schedule-candles-warning"))
    assert "No candles for its period" in warning
    assert "a run now would fail" in warning
    assert f"The stored candles end at {sample_candles.end:%Y-%m-%d}" in warning


def test_a_period_with_part_of_its_candles_is_partial_and_one_within_them_is_full(
    user, sample_candles
):
    schedule = make_schedule(user, sample_candles, lookback_days=30)
    # a run fired just after the sample's last candle closed: the sample is the last 2 weeks
    just_after = sample_candles.end + timedelta(minutes=6)
    coverage = schedule_coverage(schedule, just_after)
    assert coverage.state == "partial"
    assert (coverage.first, coverage.count) == (sample_candles.start, sample_candles.count)
    # and a look-back within the sample is fully covered
    schedule.lookback_days = 3
    assert schedule_coverage(schedule, just_after).state == "full"
